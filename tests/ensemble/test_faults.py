"""Fault tests of our ZAB ensemble, judged by the linearizability checker.

Several kazoo clients, each homed on a different member (its other members after it, in a fixed
order), run a seeded mix of conditional setData (expected version = the last one it saw, or -1),
sync + getData and create on a few keys while members are killed (-9) and restarted, paused
(SIGSTOP/SIGCONT), or cut from each other by the fault-injecting proxies of tests/ensemble/
proxy.py. The recorded history must be linearizable (tests/linearizability.py): no
acknowledged write lost or reordered, no failed write visible, no stale read after an
acknowledged write. At the end every member must hold the same tree (a full dump through each
member after sync, and the same tree digests in `hash` for the zxids they share).

Every test is bounded (pytest-timeout 60, each runs ~15-30 s on 2 cores), every process is
stopped by PID (the ensemble_factory fixture), proxies are stopped in finally, and the seeds
and counts are fixed.
"""

from __future__ import annotations

import random
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from linearizability import History, check  # noqa: E402
from tests.ensemble.conftest import Ensemble, Member, close, wait_for  # noqa: E402
from tests.ensemble.proxy import ProxyMesh  # noqa: E402

pytestmark = pytest.mark.timeout(60)

KEYS = ("/lin/a", "/lin/b", "/lin/c")
CREATE_KEYS = tuple(f"/lin/new{i}" for i in range(6))
INITIAL = b"init"


def kazoo(hosts: str, read_only: bool = False) -> KazooClient:
    # no automatic retries: every call's own outcome is recorded
    zk = KazooClient(hosts=hosts, timeout=4.0, randomize_hosts=False, read_only=read_only,
                     connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
                     command_retry=None)
    zk.start(timeout=15)
    return zk




class Workload:
    """Client threads recording a History until `stop()`."""

    def __init__(self, e: Ensemble, homes: list[Member], seed: int, pause: float = 0.01) -> None:
        self.e = e
        self.history = History()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.clients: list[KazooClient] = []
        self.errors: list[BaseException] = []
        self.pause = pause
        setup = kazoo(e.hosts)
        try:
            setup.ensure_path("/lin")
            for key in KEYS:
                setup.create(key, INITIAL)
        finally:
            close(setup)
        for i, home in enumerate(homes):
            order = [home] + [m for m in e.members if m is not home]
            zk = kazoo(",".join(m.hosts for m in order))
            self.clients.append(zk)
            t = threading.Thread(target=self._run, args=(i, zk, random.Random(seed * 100 + i)), daemon=True)
            self.threads.append(t)

    def start(self) -> Workload:
        for t in self.threads:
            t.start()
        return self

    def _run(self, client: int, zk: KazooClient, rng: random.Random) -> None:
        h = self.history
        seen: dict[str, int] = {}
        n = 0
        try:
            while not self.stopping.is_set():
                n += 1
                r = rng.random()
                if r < 0.08:
                    key = rng.choice(CREATE_KEYS)
                    value = f"c{client}-{n}".encode()
                    h.run(client, "create", key, lambda: zk.create(key, value), value)
                elif r < 0.55:
                    key = rng.choice(KEYS)
                    value = f"c{client}-{n}".encode()
                    version = seen.get(key, -1) if rng.random() < 0.7 else -1
                    op = h.run(client, "set", key, lambda: zk.set(key, value, version), value, version)
                    if isinstance(op.result, tuple):
                        seen[key] = op.result[1]
                    elif op.result == "badversion":
                        seen.pop(key, None)
                else:
                    key = rng.choice(KEYS + CREATE_KEYS[:2])

                    def read() -> Any:
                        zk.sync(key)
                        return zk.get(key)
                    op = h.run(client, "read", key, read)
                    if isinstance(op.result, tuple):
                        seen[key] = op.result[2]
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)

    def count(self, predicate: Any = None) -> int:
        with self.history.lock:
            return sum(1 for op in self.history.ops if (predicate or (lambda o: not o.unknown))(op))

    def acked_writes(self) -> int:
        return self.count(lambda o: o.kind in ("set", "create") and not o.unknown and o.result not in
                          ("badversion", "exists", "nonode", "failed"))

    def progress(self, more: int, timeout: float, what: str) -> None:
        """Until `more` further writes are acknowledged."""
        target = self.acked_writes() + more
        wait_for(lambda: self.acked_writes() >= target, timeout=timeout, what=what)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(20)
        close(*self.clients)
        assert not self.errors, self.errors
        assert not any(t.is_alive() for t in self.threads), "a client thread is stuck"

    def check(self) -> None:
        initial = {key: (INITIAL, 0) for key in KEYS}
        result = check(self.history.ops, initial)
        counts = self.history.counts()
        assert result.ok, f"{result.explain()}\nop counts: {counts}"
        print(f"history: {len(self.history.ops)} ops {counts}; {result.explain()}")
        assert self.acked_writes() > 20, counts


# -- the final state ---------------------------------------------------------------------------

def dump(zk: KazooClient, path: str = "/") -> dict[str, tuple[bytes, int, int, int]]:
    """Every node below `path` (but /zookeeper): data, version, mzxid, ephemeralOwner."""
    out: dict[str, tuple[bytes, int, int, int]] = {}
    for child in sorted(zk.get_children(path)):
        full = f"{path.rstrip('/')}/{child}"
        if full == "/zookeeper":
            continue
        data, stat = zk.get(full)
        out[full] = (data, stat.version, stat.mzxid, stat.ephemeralOwner)
        out.update(dump(zk, full))
    return out


def digests(m: Member) -> dict[int, int]:
    return {int(z, 16): int(d) for z, d in re.findall(r"^([0-9a-f]+): (-?\d+)$", m.four_letter("hash"), re.M)}


def assert_same_trees(e: Ensemble, members: list[Member] | None = None) -> None:
    members = members if members is not None else e.members
    e.wait_serving(members, timeout=30)
    # the same last zxid everywhere once a write through each member has been synced
    dumps = {}
    for m in members:
        zk = kazoo(m.hosts)
        try:
            zk.create("/lin/barrier-", b"", sequence=True)
        finally:
            close(zk)
    for m in members:
        zk = kazoo(m.hosts)
        try:
            zk.sync("/")
            dumps[m.sid] = dump(zk)
        finally:
            close(zk)
    first = members[0].sid
    for sid, d in dumps.items():
        if d != dumps[first]:
            diff = sorted(set(d.items()) ^ set(dumps[first].items()))[:6]
            raise AssertionError(f"member {sid} and member {first} differ: {diff}")
    hashes = {m.sid: digests(m) for m in members}
    for a in members:
        for b in members:
            common = hashes[a.sid].keys() & hashes[b.sid].keys()
            for z in common:
                assert hashes[a.sid][z] == hashes[b.sid][z], f"digest at 0x{z:x}: {a.sid} vs {b.sid}"


# -- the tests ---------------------------------------------------------------------------------

def test_leader_killed_under_write_load(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="sqlite").start()
    old = e.leader()
    w = Workload(e, e.members, seed=1).start()
    try:
        w.progress(40, 15, "writes before the kill")
        old.kill()
        survivors = [m for m in e.members if m is not old]
        new = e.wait_serving(survivors, timeout=30)
        assert new is not old
        w.progress(40, 20, "writes under the new leader")
        old.start()
        e.wait_serving(timeout=30)
        w.progress(30, 20, "writes with the old leader back")
    finally:
        w.stop()
    w.check()
    assert old.mode() == "follower"
    assert_same_trees(e)


def test_followers_killed_and_restarted(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="sqlite").start()
    w = Workload(e, e.members, seed=2).start()
    try:
        w.progress(30, 15, "writes before")
        for round_ in range(2):
            follower = e.followers()[0]
            follower.kill()
            w.progress(30, 20, f"writes without follower {follower.sid} (round {round_})")
            follower.start()
            e.wait_serving(timeout=30)
            w.progress(20, 20, f"writes after follower {follower.sid} came back")
    finally:
        w.stop()
    w.check()
    assert_same_trees(e)


def test_members_paused_and_resumed(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="memory").start()
    w = Workload(e, e.members, seed=3).start()
    try:
        w.progress(30, 15, "writes before")
        follower = e.followers()[0]
        follower.pause()  # longer than syncLimit: the leader drops it
        w.progress(30, 20, "writes with a paused follower")
        time.sleep(2.0)
        follower.resume()
        e.wait_serving(timeout=30)
        leader = e.leader()
        leader.pause()
        survivors = [m for m in e.members if m is not leader]
        e.wait_serving(survivors, timeout=30)
        w.progress(30, 20, "writes under the new leader")
        leader.resume()
        e.wait_serving(timeout=30)
        w.progress(20, 20, "writes with everyone back")
    finally:
        w.stop()
    w.check()
    assert_same_trees(e)


@pytest.mark.parametrize("mode", ["drop", "blackhole"])
def test_leader_isolated_by_the_network(ensemble_factory, mode: str) -> None:
    """The leader's links to both followers are cut: the followers elect one of them, the old
    leader steps down (it serves nothing once it misses its quorum), nothing acknowledged is
    lost, and after healing it follows and holds the same tree."""
    e = ensemble_factory(3, storage="sqlite")
    mesh = ProxyMesh(e).start()
    w = None
    try:
        e.start()
        old = e.leader()
        w = Workload(e, e.members, seed=4 if mode == "drop" else 5).start()
        w.progress(30, 15, "writes before the partition")
        mesh.isolate(old.sid, mode)
        t0 = time.monotonic()
        majority = [m for m in e.members if m is not old]
        new = e.wait_serving(majority, timeout=30)
        assert new is not old
        elected = time.monotonic() - t0
        wait_for(lambda: old.mode() != "leader", timeout=10, what="the old leader stepping down")
        w.progress(30, 20, "writes on the majority side")
        assert old.mode() is None  # LOOKING: not serving
        mesh.heal_all()
        e.wait_serving(timeout=30)
        assert old.mode() == "follower" and e.leader() is new
        w.progress(20, 20, "writes after healing")
        w.stop()
        w.check()
        w = None
        assert_same_trees(e)
        assert elected < 15
    finally:
        if w is not None:
            w.stopping.set()
            close(*w.clients)
        mesh.stop()


def test_follower_cut_from_leader_only(ensemble_factory) -> None:
    """One follower loses its link to the leader but still sees the other follower: the
    leader keeps its quorum; the cut follower cannot join any quorum until healed."""
    e = ensemble_factory(3, storage="memory")
    mesh = ProxyMesh(e).start()
    w = None
    try:
        e.start()
        leader = e.leader()
        follower = e.followers()[0]
        w = Workload(e, e.members, seed=6).start()
        w.progress(30, 15, "writes before")
        mesh.cut(leader.sid, follower.sid)
        w.progress(40, 20, "writes with one link cut")
        assert leader.mode() == "leader"
        mesh.heal_all()
        e.wait_serving(timeout=30)
        w.progress(20, 20, "writes after healing")
        w.stop()
        w.check()
        w = None
        assert_same_trees(e)
    finally:
        if w is not None:
            w.stopping.set()
            close(*w.clients)
        mesh.stop()
