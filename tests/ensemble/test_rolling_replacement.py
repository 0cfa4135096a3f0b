"""A live 3-member Apache ZooKeeper 3.8 ensemble replaced by ours one member at a time, and back.

README "Migrating from Apache ZooKeeper": each member keeps its zoo.cfg (with `storage=zkfiles`,
which Java ignores), dataDir and myid; one member at a time is stopped and the other kind started
on the same files, and the next step waits until every member serves (one leader, the others
following) with the same Zxid in `srvr`. Meanwhile three writer threads run sequential creates and
setData through their own sessions (recording every acknowledged write), each holding an
ephemeral, and a watcher session counts the events of re-armed data watches.

At the end: every acknowledged create is there with czxids increasing in each writer's order,
every acknowledged setData's mzxid increases too and the last one (or a later unacknowledged one)
is the value held; no session was lost and the writers' ephemerals are still theirs; the watches
fired during every step; every member holds the same tree (dumped through each member after sync);
ours, following a Java leader, found its TxnDigests equal to their trees (mntr
zk_digest_mismatches_count 0) and nobody logged "Digests are not matching".

Bounded: pytest-timeout 120 (the test runs ~60 s on 2 cores), seeded, loopback only; every
process is stopped by PID (the ensemble_factory fixture).
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.protocol.states import KazooState
from kazoo.recipe.watchers import DataWatch
from kazoo.retry import KazooRetry

from tests.ensemble.conftest import Ensemble, Member, wait_for

pytestmark = [pytest.mark.needs_zookeeper, pytest.mark.timeout(120)]

SEED = 20261126
WRITERS = 3
ROOT = "/roll"
SESSION_TIMEOUT = 10.0  # the most tickTime 500 allows (20 ticks): outlasts a leader's election


def kazoo(hosts: str) -> KazooClient:
    """A session over `hosts` in the given order; calls are not retried (their outcome is ours)."""
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT, randomize_hosts=False,
                     connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
                     command_retry=None)
    zk.start(timeout=20)
    return zk


def rotated(e: Ensemble, first: int) -> str:
    """The ensemble's connection string starting at member `first`."""
    order = e.members[first - 1:] + e.members[:first - 1]
    return ",".join(m.hosts for m in order)


@dataclass
class Writer:
    """One writer thread: sequential creates under ROOT/w<n> and setData of ROOT/w<n>/counter."""

    n: int
    zk: KazooClient
    go: threading.Event
    stop: threading.Event
    creates: list[str] = field(default_factory=list)  # acknowledged paths, in order
    sets: list[tuple[int, int]] = field(default_factory=list)  # (value, mzxid) acknowledged
    attempts: int = 0
    failures: int = 0
    lost: list[str] = field(default_factory=list)
    idle: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"{ROOT}/w{self.n}"

    def acked(self) -> int:
        return len(self.creates) + len(self.sets)

    def run(self) -> None:
        rng = random.Random(SEED + self.n)
        self.zk.add_listener(lambda state: self.lost.append(state) if state == KazooState.LOST else None)
        value = 0
        while not self.stop.is_set():
            if not self.go.is_set():
                self.idle.set()
                self.go.wait(0.1)
                continue
            self.idle.clear()
            value += 1
            self.attempts += 1
            try:
                if rng.random() < 0.6:
                    path = self.zk.create(f"{self.base}/n-", str(value).encode(), sequence=True)
                    self.creates.append(path)
                else:
                    stat = self.zk.set(f"{self.base}/counter", str(value).encode())
                    self.sets.append((value, stat.mzxid))
            except KazooException:
                self.failures += 1  # unknown outcome (connection loss) or refused while electing
                time.sleep(0.05)
            time.sleep(rng.uniform(0.005, 0.02))
        self.idle.set()


def tree(zk: KazooClient, path: str = ROOT) -> dict[str, tuple[bytes, int, int, int, int]]:
    """path -> (data, czxid, mzxid, version, ephemeralOwner) of `path` and everything below."""
    data, stat = zk.get(path)
    out = {path: (data, stat.czxid, stat.mzxid, stat.version, stat.ephemeralOwner)}
    for child in sorted(zk.get_children(path)):
        out.update(tree(zk, f"{path}/{child}"))
    return out


def mntr(m: Member) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in m.four_letter("mntr").splitlines() if "\t" in line)


def settle(e: Ensemble, writers: list[Writer], go: threading.Event) -> None:
    """Every member serves, one leads; with the writers held, the same Zxid everywhere."""
    e.wait_serving(e.members, timeout=40)
    go.clear()
    try:
        for w in writers:
            assert w.idle.wait(SESSION_TIMEOUT + 5), f"writer {w.n} stuck"

        def same_zxid() -> bool:
            zxids = {m.zxid() for m in e.members}
            return len(zxids) == 1 and None not in zxids

        wait_for(same_zxid, timeout=15, what="the same Zxid on every member")
        modes = sorted(m.mode() or "-" for m in e.members)
        assert modes == ["follower", "follower", "leader"], modes
        for m in e.members:  # ours compare a Java leader's TxnDigests with their trees
            if not m.java:
                assert mntr(m).get("zk_digest_mismatches_count") == "0", f"member {m.sid}: digest mismatches"
    finally:
        go.set()


def test_rolling_replacement_java_to_ours_and_back(ensemble_factory) -> None:
    e = ensemble_factory(3, java=(1, 2, 3), storage="zkfiles", tick=500).start(timeout=60)
    go, stop = threading.Event(), threading.Event()
    go.set()
    writers: list[Writer] = []
    threads: list[threading.Thread] = []
    watcher: KazooClient | None = None
    events: list[str] = []
    try:
        setup = kazoo(e.hosts)
        setup.ensure_path(ROOT)
        for n in range(WRITERS):
            setup.create(f"{ROOT}/w{n}")
            setup.create(f"{ROOT}/w{n}/counter", b"0")
        setup.stop()
        setup.close()

        for n in range(WRITERS):
            zk = kazoo(rotated(e, n + 1))  # writer n starts on member n+1
            zk.create(f"{ROOT}/eph-w{n}", b"", ephemeral=True)
            writers.append(Writer(n, zk, go, stop))
        watcher = kazoo(rotated(e, 3))
        watcher_lost: list[str] = []
        watcher.add_listener(lambda state: watcher_lost.append(state) if state == KazooState.LOST else None)
        for n in range(WRITERS):
            DataWatch(watcher, f"{ROOT}/w{n}/counter",
                      func=lambda data, stat, event: events.append(event.type) if event else None)
        threads = [threading.Thread(target=w.run, name=f"writer-{w.n}", daemon=True) for w in writers]
        for t in threads:
            t.start()

        steps: list[tuple[Member, bool]] = [(m, False) for m in e.members] + [(m, True) for m in e.members]
        for member, java in steps:
            before_events, before_acked = len(events), [w.acked() for w in writers]
            member.replace(java=java)
            settle(e, writers, go)
            assert member.kind == ("java" if java else "ours")
            print(f"step: member {member.sid} -> {member.kind}; leader {e.leader().sid}; "
                  f"zxid {e[1].zxid():#x}; acked {[w.acked() for w in writers]}")
            wait_for(lambda: len(events) > before_events, timeout=20,
                     what=f"a watch event while member {member.sid} became {member.kind}")
            wait_for(lambda: all(w.acked() > a for w, a in zip(writers, before_acked)), timeout=20,
                     what="every writer acknowledged again")
        assert e[1].java and e[2].java and e[3].java

        stop.set()
        for t in threads:
            t.join(SESSION_TIMEOUT + 5)
            assert not t.is_alive(), t.name

        dumps = []
        for m in e.members:
            c = kazoo(m.hosts)
            try:
                c.sync(ROOT)
                dumps.append(tree(c))
            finally:
                c.stop()
                c.close()
        for m, dump in zip(e.members[1:], dumps[1:]):
            assert dump == dumps[0], f"member {m.sid}'s tree differs from member 1's"
        final = dumps[0]

        for w in writers:
            assert not w.lost, f"writer {w.n}'s session was lost"
            assert w.zk.state == KazooState.CONNECTED
            eph = final.get(f"{ROOT}/eph-w{w.n}")
            assert eph is not None and eph[4] == w.zk.client_id[0], f"writer {w.n}'s ephemeral"
            czxids = []
            for path in w.creates:
                assert path in final, f"acknowledged create {path} lost"
                czxids.append(final[path][1])
            assert czxids == sorted(czxids) and len(set(czxids)) == len(czxids), f"writer {w.n}: creates out of order"
            mzxids = [z for _, z in w.sets]
            assert mzxids == sorted(mzxids) and len(set(mzxids)) == len(mzxids), f"writer {w.n}: sets out of order"
            if w.sets:
                held = int(final[f"{w.base}/counter"][0])
                assert held >= w.sets[-1][0], f"writer {w.n}: last acknowledged set {w.sets[-1][0]} lost ({held})"
            assert len(w.creates) > 20 and len(w.sets) > 10, (len(w.creates), len(w.sets))
        assert len(events) >= len(steps) and not watcher_lost
        for m in e.members:  # each member's log holds both kinds' runs (appended)
            log = m.log_text()
            recovered = [int(n) for n in re.findall(r"recovered (\d+) txns up to zxid", log)]
            assert recovered and recovered[-1] > 0, f"ours on member {m.sid} did not load Java's files"
            loaded = re.findall(r"Snapshot loaded in \d+ ms, highest zxid is (0x[0-9a-f]+)", log)
            assert len(loaded) == 2 and int(loaded[-1], 16) > 0, f"Java on member {m.sid} did not load our files"
            for complaint in ("Digests are not matching", "Unexpected exception causing shutdown",
                              "Follower is ahead", "supposed to be an ACK", "#critical]", "Traceback"):
                assert complaint not in log, f"member {m.sid}: {complaint}"
        print(f"events={len(events)} " + " ".join(
            f"w{w.n}: attempts={w.attempts} creates={len(w.creates)} sets={len(w.sets)} failures={w.failures}"
            for w in writers))
    finally:
        stop.set()
        go.set()
        for t in threads:
            t.join(SESSION_TIMEOUT + 5)
        for zk in [w.zk for w in writers] + ([watcher] if watcher else []):
            try:
                zk.stop()
                zk.close()
            except Exception:  # noqa: BLE001 - cleanup
                pass
