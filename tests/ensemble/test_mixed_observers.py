"""Observers across implementations: a Java ZooKeeper 3.8 observer of an ensemble led by ours,
and an observer of ours in an ensemble of Java voters.

Each test syncs the observer, reads through it what the voters hold, writes through it (the
observer forwards to the leader), and kills it to show that it never counted towards a quorum.
Bounded (pytest-timeout; each runs in well under 40 s on 2 cores), loopback only, every member
stopped by PID by the ensemble_factory fixture; skipped without Debian's zookeeper package
unless CI=true (then failed).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from tests.ensemble.conftest import Member, close

pytestmark = [pytest.mark.needs_zookeeper, pytest.mark.timeout(60)]


def client(hosts: str) -> KazooClient:
    zk = KazooClient(hosts=hosts, timeout=6.0)
    zk.start(timeout=15)
    return zk




def _tree(zk: KazooClient, path: str = "/obs") -> dict[str, bytes]:
    out = {path: zk.get(path)[0]}
    for child in sorted(zk.get_children(path)):
        out.update(_tree(zk, f"{path.rstrip('/')}/{child}"))
    return out


def _mntr(m: Member) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in m.four_letter("mntr").splitlines() if "\t" in line)


def _exercise_observer(observer: Member, voters: list[Member],
                       before_kill: Callable[[], object] | None = None) -> None:
    """Reads via the observer equal the voters' after sync; a write through the observer is
    applied by every voter; killing the observer leaves the voters serving writes."""
    zk = client(voters[0].hosts)
    ozk = None
    try:
        zk.create("/obs", b"root")
        for i in range(8):
            zk.create(f"/obs/n{i}", f"v{i}".encode())
        zk.create("/obs/eph", b"e", ephemeral=True)
        zk.create("/obs/seq-", b"s", sequence=True)
        zk.set("/obs/n0", b"changed")
        zk.delete("/obs/n7")
        ozk = client(observer.hosts)
        ozk.sync("/obs")
        expected = _tree(zk)
        assert _tree(ozk) == expected
        assert ozk.get("/obs/eph")[1].ephemeralOwner == zk.client_id[0]
        assert ozk.get("/obs/n0")[1].version == 1

        ozk.create("/obs/via-observer", b"o")  # forwarded by the observer to the leader
        assert ozk.get("/obs/via-observer")[0] == b"o"  # read-your-writes on the observer
        for v in voters:
            vzk = client(v.hosts)
            try:
                vzk.sync("/obs")
                assert vzk.get("/obs/via-observer")[0] == b"o", v
                assert _tree(vzk) == _tree(ozk), v
            finally:
                close(vzk)

        zk.create("/obs/to-observer", b"t")
        ozk.sync("/obs")
        assert ozk.get("/obs/to-observer")[0] == b"t"
        close(ozk)
        ozk = None

        if before_kill is not None:
            before_kill()
        # the observer never voted: without it the two voters are still a quorum
        observer.kill()
        e = observer.ensemble
        e.wait_serving(voters, timeout=15)
        zk.create("/obs/without-observer", b"w")
        zk.sync("/obs")
        assert zk.exists("/obs/without-observer") is not None
        assert all(v.alive() for v in voters)
    finally:
        close(zk, ozk)


def test_java_observer_of_our_ensemble(ensemble_factory) -> None:
    e = ensemble_factory(3, java=(3,), observers=(3,), storage="sqlite")
    ours, observer = [e[1], e[2]], e[3]
    for m in ours:
        m.start()
    leader = e.wait_serving(ours, timeout=30)
    assert not leader.java
    observer.start()
    assert e.wait_serving(timeout=30) is leader
    assert observer.mode() == "observer"
    assert sorted(m.mode() or "" for m in ours) == ["follower", "leader"]
    _exercise_observer(observer, ours)
    log = observer.log_text()
    assert "Observing" in log
    for complaint in ("Digests are not matching", "Unexpected exception causing shutdown"):
        assert complaint not in log, complaint
    for m in ours:
        assert "Traceback" not in m.log_text(), m.log_tail()


def test_our_observer_of_a_java_ensemble(ensemble_factory) -> None:
    e = ensemble_factory(3, java=(1, 2), observers=(3,), storage="sqlite")
    voters, observer = [e[1], e[2]], e[3]
    for m in voters:
        m.start()
    leader = e.wait_serving(voters, timeout=30)
    assert leader.java
    observer.start()
    assert e.wait_serving(timeout=30) is leader
    assert observer.mode() == "observer"
    mntr: dict[str, str] = {}
    # read just before the observer is killed, after it has applied every txn of the test
    _exercise_observer(observer, voters, before_kill=lambda: mntr.update(_mntr(observer)))
    assert mntr.get("zk_server_state") == "observer", mntr
    assert mntr["zk_digest_mismatches_count"] == "0", mntr
    log = observer.log_text()
    assert "Digests are not matching" not in log
    assert "Traceback" not in log, observer.log_tail()
    for v in voters:
        vlog = v.log_text()
        for complaint in ("Digests are not matching", "Unexpected exception causing shutdown",
                          "supposed to be an ACK", "from a different epoch"):
            assert complaint not in vlog, (v, complaint)
