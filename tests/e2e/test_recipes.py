"""kazoo's recipes on both servers: lock, election, party, queue, barrier, counter, TreeCache.

Each recipe leans on a different mix of sequential ephemerals, child and exists watches,
versioned sets and session ends; they are what client code actually runs.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.exceptions import LockTimeout
from kazoo.recipe.lock import Lock
from kazoo.recipe.party import Party, ShallowParty
from kazoo.recipe.queue import LockingQueue, Queue

WAIT = 10.0


def test_lock_second_contender_gets_it_after_release(zk, zk_factory, server, root):
    other = zk_factory(server)
    first = Lock(zk, f"{root}/lock", "first")
    second = Lock(other, f"{root}/lock", "second")
    assert first.acquire(timeout=WAIT)
    got = threading.Event()

    def contend() -> None:
        if second.acquire(timeout=WAIT * 2):
            got.set()

    t = threading.Thread(target=contend, daemon=True)
    t.start()
    deadline = time.monotonic() + WAIT
    while len(first.contenders()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert first.contenders() == ["first", "second"]
    assert not got.wait(0.3)
    first.release()
    assert got.wait(WAIT)
    assert second.contenders() == ["second"]
    second.release()
    t.join(WAIT)
    assert zk.get_children(f"{root}/lock") == []


def test_lock_is_freed_when_the_holder_session_closes(zk, zk_factory, server, root):
    holder = zk_factory(server)
    assert Lock(holder, f"{root}/lock", "h").acquire(timeout=WAIT)
    waiter = Lock(zk, f"{root}/lock", "w")
    with pytest.raises(LockTimeout):
        waiter.acquire(timeout=0.3)
    holder.stop()
    assert waiter.acquire(timeout=WAIT)
    waiter.release()


def test_election_leader_runs_and_the_second_takes_over(zk, zk_factory, server, root):
    other = zk_factory(server)
    path = f"{root}/election"
    leaders: queue.Queue = queue.Queue()
    release = {"a": threading.Event(), "b": threading.Event()}

    def lead(name: str) -> None:
        leaders.put(name)
        release[name].wait(WAIT * 2)

    ea, eb = Election(zk, path, "a"), Election(other, path, "b")
    ta = threading.Thread(target=ea.run, args=(lead, "a"), daemon=True)
    ta.start()
    assert leaders.get(timeout=WAIT) == "a"
    tb = threading.Thread(target=eb.run, args=(lead, "b"), daemon=True)
    tb.start()
    deadline = time.monotonic() + WAIT
    while len(ea.contenders()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert ea.contenders() == ["a", "b"]
    with pytest.raises(queue.Empty):
        leaders.get(timeout=0.3)
    ea.cancel()
    release["a"].set()  # the leader function returns: "a" leaves the election
    ta.join(WAIT)
    assert leaders.get(timeout=WAIT) == "b"
    release["b"].set()
    tb.join(WAIT)


@pytest.mark.parametrize("cls", [Party, ShallowParty])
def test_party_members_come_and_go(zk, zk_factory, server, root, cls):
    other = zk_factory(server)
    p1, p2 = cls(zk, f"{root}/party", "one"), cls(other, f"{root}/party", "two")
    p1.join()
    p2.join()
    assert sorted(p1) == ["one", "two"] and len(p1) == 2
    p1.leave()
    assert list(p2) == ["two"]
    other.stop()  # ephemeral membership ends with the session
    assert list(p1) == []


def test_queue_keeps_put_order_and_priorities(zk, zk_factory, server, root):
    other = zk_factory(server)
    q_put, q_get = Queue(zk, f"{root}/q"), Queue(other, f"{root}/q")
    for i in range(5):
        q_put.put(b"item-%d" % i)
    q_put.put(b"urgent", priority=10)  # a lower number goes first; 100 is the default
    assert len(q_get) == 6
    assert [q_get.get() for _ in range(6)] == [b"urgent"] + [b"item-%d" % i for i in range(5)]
    assert q_get.get() is None


def test_locking_queue_consumers_share_the_items(zk, zk_factory, server, root):
    other = zk_factory(server)
    producer = LockingQueue(zk, f"{root}/lq")
    c1, c2 = LockingQueue(zk, f"{root}/lq"), LockingQueue(other, f"{root}/lq")
    producer.put_all([b"a", b"b", b"c"])
    first = c1.get(timeout=WAIT)
    second = c2.get(timeout=WAIT)
    assert {first, second} <= {b"a", b"b", b"c"} and first != second
    assert c1.consume() and c2.consume()
    assert c1.get(timeout=WAIT) == ({b"a", b"b", b"c"} - {first, second}).pop()
    assert c1.consume()
    assert len(producer) == 0


def test_barrier_holds_until_removed(zk, zk_factory, server, root):
    other = zk_factory(server)
    b = Barrier(zk, f"{root}/barrier")
    b.create()
    passed = threading.Event()
    t = threading.Thread(target=lambda: Barrier(other, f"{root}/barrier").wait(WAIT * 2) and passed.set(),
                         daemon=True)
    t.start()
    assert not passed.wait(0.3)
    assert b.remove()
    assert passed.wait(WAIT)
    t.join(WAIT)


def test_double_barrier_enters_and_leaves_together(zk, zk_factory, server, root):
    other = zk_factory(server)
    path = f"{root}/dbar"
    entered, left = threading.Event(), threading.Event()
    b2 = DoubleBarrier(other, path, 2, identifier="two")

    def second() -> None:
        b2.enter()
        entered.set()
        b2.leave()
        left.set()

    b1 = DoubleBarrier(zk, path, 2, identifier="one")
    t = threading.Thread(target=second, daemon=True)
    t.start()
    assert not entered.wait(0.3)  # one of two: nobody enters
    b1.enter()
    assert entered.wait(WAIT)
    assert not left.wait(0.3)  # "one" is still in: "two" cannot leave
    b1.leave()
    assert left.wait(WAIT)
    t.join(WAIT)


def test_counter_concurrent_increments(zk, zk_factory, server, root):
    other = zk_factory(server)
    path = f"{root}/counter"
    counters = [Counter(zk, path), Counter(other, path)]
    n = 50
    errors: list[BaseException] = []

    def bump(c: Counter) -> None:
        try:
            for _ in range(n):
                c += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=bump, args=(c,), daemon=True) for c in counters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    assert not errors
    assert Counter(zk, path).value == 2 * n
    assert zk.get(path)[1].version == 2 * n  # every increment was one versioned set
    f = Counter(zk, f"{root}/fcounter", default=0.0)
    f += 1.5
    f -= 0.25
    assert f.value == 1.25


def test_tree_cache_follows_create_set_delete(zk, zk_factory, server, root):
    other = zk_factory(server)
    base = f"{root}/tree"
    zk.create(f"{base}/a", b"a0", makepath=True)
    events: queue.Queue = queue.Queue()
    cache = TreeCache(zk, base)
    cache.listen(events.put)
    cache.start()
    try:
        seen = []
        while True:
            e = events.get(timeout=WAIT)
            seen.append(e.event_type)
            if e.event_type == TreeEvent.INITIALIZED:
                break
        assert TreeEvent.NODE_ADDED in seen
        assert cache.get_data(f"{base}/a").data == b"a0"

        def next_event(kind: int):
            deadline = time.monotonic() + WAIT
            while True:
                e = events.get(timeout=max(deadline - time.monotonic(), 0.01))
                if e.event_type == kind:
                    return e

        other.create(f"{base}/b", b"b0")
        e = next_event(TreeEvent.NODE_ADDED)
        assert (e.event_data.path, e.event_data.data) == (f"{base}/b", b"b0")
        other.create(f"{base}/b/deep", b"d0")
        e = next_event(TreeEvent.NODE_ADDED)
        assert e.event_data.path == f"{base}/b/deep"
        other.set(f"{base}/a", b"a1")
        e = next_event(TreeEvent.NODE_UPDATED)
        assert (e.event_data.path, e.event_data.data) == (f"{base}/a", b"a1")
        other.delete(f"{base}/b", recursive=True)
        removed = {next_event(TreeEvent.NODE_REMOVED).event_data.path for _ in range(2)}
        assert removed == {f"{base}/b", f"{base}/b/deep"}
        assert sorted(cache.get_children(base)) == ["a"]
    finally:
        cache.close()
