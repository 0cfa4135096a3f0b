"""ZAB ensembles of member processes: ours alone, and ours leading a Java ZooKeeper 3.8 follower.

Every test is bounded (pytest-timeout), every member is stopped by PID when it ends (the
ensemble_factory fixture), and counts are small: the whole file runs in well under 4 minutes
on 2 cores.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.protocol.states import KazooState

from tests.ensemble.conftest import Ensemble, wait_for

pytestmark = pytest.mark.timeout(90)


def client(hosts: str, **kwargs: object) -> KazooClient:
    zk = KazooClient(hosts=hosts, timeout=6.0, **kwargs)
    zk.start(timeout=15)
    return zk


def close(*clients: KazooClient) -> None:
    for zk in clients:
        try:
            zk.stop()
            zk.close()
        except Exception:  # noqa: BLE001 - cleanup
            pass


def leader_log_lines(e: Ensemble, pattern: str) -> list[str]:
    return [line for m in e.members if not m.java for line in m.log_text().splitlines() if re.search(pattern, line)]


# -- ours only --------------------------------------------------------------------------------

def test_writes_replicate_and_watches_fire_on_every_member(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="memory").start()
    clients = [client(m.hosts) for m in e.members]
    try:
        fired = [threading.Event() for _ in clients]
        for zk, event in zip(clients, fired):
            zk.exists("/w", watch=lambda ev, event=event: event.set())
        clients[0].create("/w", b"from-1")
        for i, zk in enumerate(clients):
            assert fired[i].wait(10), f"no watch event on member {i + 1}"
            zk.sync("/w")
            assert zk.get("/w")[0] == b"from-1"
        # a write through each member, read through every member
        for i, zk in enumerate(clients):
            zk.create(f"/by{i + 1}", str(i).encode())
        for zk in clients:
            zk.sync("/")
            assert sorted(c for c in zk.get_children("/") if c.startswith("by")) == ["by1", "by2", "by3"]
        zxids = {m.zxid() for m in e.members}
        assert len(zxids) == 1, zxids
    finally:
        close(*clients)


def test_client_fails_over_keeping_its_session_and_ephemerals(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="memory").start()
    follower, other = e.followers()[:2]
    others = [other, e.leader()]  # the other follower first: it asks the leader (REVALIDATE)
    zk = KazooClient(hosts=",".join([follower.hosts] + [m.hosts for m in others]), timeout=6.0,
                     randomize_hosts=False)
    zk.start(timeout=15)
    watcher = client(others[0].hosts)
    try:
        session = zk.client_id[0]
        zk.create("/eph", b"mine", ephemeral=True)
        states: list[str] = []
        zk.add_listener(states.append)
        follower.kill()
        wait_for(lambda: zk.state == KazooState.CONNECTED and KazooState.SUSPENDED in states,
                 timeout=20, what="reconnect to another member")
        assert zk.client_id[0] == session  # the same session, revalidated by the leader
        assert zk.exists("/eph") is not None
        watcher.sync("/eph")
        assert watcher.get("/eph")[1].ephemeralOwner == session
        zk.create("/after", b"x")
        assert KazooState.LOST not in states
    finally:
        close(zk, watcher)


def test_killing_the_leader_elects_another_and_loses_no_acknowledged_write(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="sqlite").start()
    old = e.leader()
    survivors = [m for m in e.members if m is not old]
    zk = client(",".join(m.hosts for m in survivors))
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            path = f"/k{i:04d}"
            try:
                zk.create(path, b"v")
                acked.append(path)
            except NodeExistsError:
                acked.append(path)  # a retried create that had committed
            except Exception:  # noqa: BLE001 - connection loss during the election
                time.sleep(0.05)
                continue
            i += 1

    t = threading.Thread(target=writer, daemon=True)
    try:
        t.start()
        wait_for(lambda: len(acked) >= 30, timeout=15, what="writes before the kill")
        old.kill()
        new = e.wait_serving(survivors, timeout=30)
        assert new is not old
        n = len(acked)
        wait_for(lambda: len(acked) >= n + 30, timeout=20, what="writes under the new leader")
        stop.set()
        t.join(15)
        for m in survivors:
            c = client(m.hosts)
            try:
                c.sync("/")
                children = set(c.get_children("/"))
                missing = [p for p in acked if p[1:] not in children]
                assert not missing, f"member {m.sid} lost acknowledged writes: {missing[:5]}"
            finally:
                close(c)
        # the old leader comes back as a follower and catches up
        old.start()
        e.wait_serving(timeout=30)
        assert old.mode() == "follower"
        c = client(old.hosts)
        try:
            c.sync("/")
            assert {p[1:] for p in acked} <= set(c.get_children("/"))
        finally:
            close(c)
    finally:
        stop.set()
        close(zk)


def test_paused_leader_is_replaced_and_rejoins_as_follower(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="memory").start()
    old = e.leader()
    survivors = [m for m in e.members if m is not old]
    old.pause()  # SIGSTOP: its followers hear nothing for syncLimit ticks
    try:
        new = e.wait_serving(survivors, timeout=30)
        zk = client(new.hosts)
        try:
            zk.create("/while-paused", b"p")
        finally:
            close(zk)
    finally:
        old.resume()
    # the old leader finds no synced quorum, steps down and follows the new one
    wait_for(lambda: old.mode() == "follower", timeout=30, what="old leader following")
    e.wait_serving(timeout=30)
    c = client(old.hosts)
    try:
        c.sync("/while-paused")
        assert c.get("/while-paused")[0] == b"p"
    finally:
        close(c)


def test_observer_serves_reads_and_forwards_writes(ensemble_factory) -> None:
    e = ensemble_factory(4, storage="memory", observers=(4,)).start()
    observer = e[4]
    assert observer.mode() == "observer"
    zk = client(observer.hosts)
    other = client(e.leader().hosts)
    try:
        zk.create("/via-observer", b"o")
        other.sync("/via-observer")
        assert other.get("/via-observer")[0] == b"o"
        other.create("/to-observer", b"t")
        zk.sync("/to-observer")
        assert zk.get("/to-observer")[0] == b"t"
        # the observer does not count: the two other voters still make a quorum with the leader
        follower = e.followers()[0]
        follower.kill()
        other.create("/without-one-follower", b"w")
        zk.sync("/without-one-follower")
        assert zk.exists("/without-one-follower") is not None
    finally:
        close(zk, other)


def test_restarted_follower_catches_up_by_diff(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="sqlite").start()
    leader = e.leader()
    follower = e.followers()[0]
    zk = client(leader.hosts)
    try:
        zk.create("/before", b"1")
        follower.stop()
        for i in range(20):
            zk.create(f"/missed{i}", b"x")
        follower.start()
        e.wait_serving(timeout=30)
        lines = leader_log_lines(e, rf"synchronizing follower sid {follower.sid}: (DIFF|TRUNC|SNAP)")
        assert lines and "DIFF" in lines[-1] and "20 txns" in lines[-1], lines
        c = client(follower.hosts)
        try:
            assert c.exists("/missed19") is not None and c.exists("/before") is not None
        finally:
            close(c)
    finally:
        close(zk)


def test_wiped_follower_is_synced_by_snap(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="sqlite").start()
    leader = e.leader()
    follower = e.followers()[0]
    zk = client(leader.hosts)
    try:
        for i in range(10):
            zk.create(f"/n{i}", str(i).encode())
        zk.create("/eph", b"e", ephemeral=True)
        follower.stop()
        follower.wipe()
        follower.start()
        e.wait_serving(timeout=30)
        lines = leader_log_lines(e, rf"synchronizing follower sid {follower.sid}: (DIFF|TRUNC|SNAP)")
        assert lines and "SNAP" in lines[-1], lines
        c = client(follower.hosts)
        try:
            assert c.get("/n9")[0] == b"9"
            assert c.get("/eph")[1].ephemeralOwner == zk.client_id[0]
            zk.create("/later", b"l")
            c.sync("/later")
            assert c.exists("/later") is not None
        finally:
            close(c)
    finally:
        close(zk)


# -- byte compatibility: ours leading a Java ZooKeeper 3.8 follower -----------------------------

def _tree(zk: KazooClient, path: str = "/") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for child in sorted(zk.get_children(path)):
        full = f"{path.rstrip('/')}/{child}"
        if full == "/zookeeper":
            continue
        out[full] = zk.get(full)[0]
        out.update(_tree(zk, full))
    return out


@pytest.mark.needs_zookeeper
@pytest.mark.timeout(150)
def test_java_member_follows_our_leader_by_snap_then_diff(ensemble_factory) -> None:
    e = ensemble_factory(3, java=(1,), storage="sqlite")
    java, ours = e[1], [e[2], e[3]]
    for m in ours:
        m.start()
    e.wait_serving(ours, timeout=30)
    zk = client(ours[0].hosts)
    jzk = None
    try:
        zk.create("/mixed", b"root")
        for i in range(10):
            zk.create(f"/mixed/n{i}", f"v{i}".encode())
        zk.create("/mixed/eph", b"e", ephemeral=True)
        zk.create("/mixed/seq-", b"s", sequence=True)
        java.start()  # an empty Java member: SNAP from our leader
        leader = e.wait_serving(timeout=60)
        assert not leader.java and java.mode() == "follower"
        assert "Getting a snapshot from leader" in java.log_text()
        jzk = client(java.hosts)
        jzk.sync("/mixed")
        assert _tree(jzk) == _tree(zk)
        jzk.create("/mixed/from-java", b"j")  # forwarded by the Java follower to our leader
        zk.sync("/mixed")
        assert zk.get("/mixed/from-java")[0] == b"j"
        close(jzk)
        jzk = None
        # restarted: DIFF
        java.stop()
        for i in range(5):
            zk.set(f"/mixed/n{i}", b"changed")
        java.start()
        e.wait_serving(timeout=60)
        log = java.log_text()
        assert "Getting a diff from the leader" in log.split("Getting a snapshot from leader")[-1]
        jzk = client(java.hosts)
        jzk.sync("/mixed")
        assert _tree(jzk) == _tree(zk)
        assert jzk.get("/mixed/eph")[1].ephemeralOwner == zk.client_id[0]
        # we send no TxnDigest, so Java has nothing to compare: no mismatch may be logged
        assert "Digests are not matching" not in java.log_text()
    finally:
        close(zk, *([jzk] if jzk else []))


@pytest.mark.needs_zookeeper
@pytest.mark.timeout(120)
def test_our_members_follow_a_java_leader(ensemble_factory) -> None:
    """The other way round: Java (sid 3) leads; ours forward writes, apply its txns, and a
    wiped member of ours is synced by the Java leader's SNAP."""
    e = ensemble_factory(3, java=(3,), storage="sqlite").start(timeout=60)
    assert e.leader() is e[3]
    zk = client(e[1].hosts)
    jzk = client(e[3].hosts)
    try:
        zk.create("/j", b"via-ours")
        zk.create("/j/eph", b"", ephemeral=True)
        jzk.sync("/j")
        assert jzk.get("/j")[0] == b"via-ours" and jzk.get("/j/eph")[1].ephemeralOwner == zk.client_id[0]
        jzk.create("/j/from-java", b"x")
        zk.sync("/j")
        assert zk.get("/j/from-java")[0] == b"x"
        e[2].stop()
        jzk.create("/j/missed", b"m")
        e[2].wipe()
        e[2].start()
        e.wait_serving(timeout=30)
        c = client(e[2].hosts)
        try:
            c.sync("/j")
            assert _tree(c) == _tree(jzk)
        finally:
            close(c)
        for m in (e[1], e[2]):  # the Java leader's TxnDigests equal our trees after each txn
            mntr = dict(line.split("\t", 1) for line in m.four_letter("mntr").splitlines() if "\t" in line)
            assert mntr["zk_digest_mismatches_count"] == "0"
            assert "Digests are not matching" not in m.log_text()
        log = e[3].log_text()  # (an EOFException is logged when our member 2 stops: normal)
        for complaint in ("supposed to be an ACK", "from a different epoch", "Follower is ahead",
                          "Digests are not matching", "Unexpected exception causing shutdown"):
            assert complaint not in log, complaint
    finally:
        close(zk, jzk)
