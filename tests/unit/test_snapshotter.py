"""The snapshotter: the forked serializer (the child's bytes are serialize()'s, a failing child
is an error), a stop during a snapshot, and a snapshot due while one is being taken."""

from __future__ import annotations

import os

import pytest

from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher

from core.config import parse
from core.opcodes import OpCode
from core.records import ACL, CreateTxn, Id, SetDataTxn
from core.snapshot import deserialize, serialize
from core.server import ZKServer
from core.snapshotter import read_child, serialize_in_child
from core.storage_thread import StorageThread
from core.tree import DataTree
from core.txn import Txn

pytestmark = [pytest.mark.timeout(30),
              pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform cannot fork")]

OPEN = [ACL(31, Id("world", "anyone"))]


def tree_of(n: int) -> DataTree:
    tree = DataTree()
    for i in range(n):
        tree.apply(Txn(1, i, i + 1, 1000 + i, OpCode.create,
                       CreateTxn(f"/n{i:05d}", b"v" * (i % 200), OPEN, False, -1)))
    return tree


def test_the_child_writes_what_serialize_makes() -> None:
    tree = tree_of(3000)  # several 64 KiB chunks
    sessions = {0x1234: 30000}
    expected = b"".join(serialize(tree, sessions, tree.last_zxid))
    pid, read_end = serialize_in_child(tree, sessions, tree.last_zxid)
    got = b"".join(read_child(pid, read_end))
    assert got == expected
    loaded, loaded_sessions, _ = deserialize(got)
    assert len(loaded.nodes) == len(tree.nodes) and loaded_sessions == sessions


def test_the_child_sees_the_tree_as_it_was_at_the_fork() -> None:
    tree = tree_of(10)
    zxid = tree.last_zxid
    expected = b"".join(serialize(tree, {}, zxid))
    pid, read_end = serialize_in_child(tree, {}, zxid)
    tree.apply(Txn(1, 99, zxid + 1, 5000, OpCode.setData, SetDataTxn("/n00001", b"changed", 1)))
    assert b"".join(read_child(pid, read_end)) == expected


def test_a_failing_child_is_an_error() -> None:
    tree = tree_of(2)
    tree.nodes["/n00001"].data = None  # type: ignore[assignment]  # serialize fails on it
    pid, read_end = serialize_in_child(tree, {}, tree.last_zxid)
    with pytest.raises(OSError, match="snapshot child"):
        read_child(pid, read_end)


def test_stopping_waits_for_the_snapshot_being_taken_then_takes_one_of_what_came_after() -> None:
    """final() while a snapshot is being serialized: it fires only once that snapshot is saved,
    and a txn logged meanwhile gets a snapshot of its own (none is dropped at a stop)."""
    clock = Clock()
    server = ZKServer(parse("tickTime=2000\nclientPort=0\nstorage=memory\n"), clock)
    server.storage = StorageThread(clock, threaded=False)  # serialized in slices on the clock
    server.store.open()
    for i in range(2000):
        server.tree.apply(Txn(1, i, i + 1, 1000, OpCode.create, CreateTxn(f"/n{i}", b"v", OPEN, False, -1)))
    snapshotter = server.snapshotter
    first = snapshotter.take()
    stopping = snapshotter.final()
    assert stopping is not None and not first.called and not stopping.called
    server.tree.apply(Txn(1, 9, 2001, 1000, OpCode.setData, SetDataTxn("/n1", b"w", 1)))
    snapshotter.txn_logged()  # while the first is being taken: no second one yet
    for _ in range(10_000):
        if stopping.called:
            break
        clock.advance(0)
    assert first.called and stopping.called
    assert sorted(server.store._snapshots) == [2000, 2001]
    assert snapshotter.final() is None  # nothing logged since


def test_a_snapshot_due_while_one_is_being_taken_is_skipped_and_counted_afresh() -> None:
    """As ZooKeeper's SyncRequestProcessor: the threshold passed while a snapshot is being taken
    skips this one, with one line ("Too busy to snap, skipping"), and the count starts again;
    the next threshold passed after that snapshot is saved takes one."""
    clock = Clock()
    server = ZKServer(parse("tickTime=2000\nclientPort=0\nstorage=memory\nsnapCount=10\n"), clock)
    server.storage = StorageThread(clock, threaded=False)  # serialized in slices on the clock
    server.store.open()
    server.tree.apply(Txn(1, 1, 1, 1000, OpCode.create, CreateTxn("/a", b"v", OPEN, False, -1)))
    snapshotter = server.snapshotter
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        first = snapshotter.take()
        assert snapshotter.running and not first.called
        due = snapshotter.threshold
        for _ in range(due):
            snapshotter.txn_logged()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert [formatEvent(e) for e in events if e.get("log_level") == LogLevel.warn] == ["Too busy to snap, skipping"]
    assert snapshotter.logged == 0 and 5 <= snapshotter.threshold < 10
    for _ in range(1000):
        if first.called:
            break
        clock.advance(0)
    assert first.called and sorted(server.store._snapshots) == [1]
    server.tree.apply(Txn(1, 2, 2, 1000, OpCode.setData, SetDataTxn("/a", b"w", 1)))
    for _ in range(snapshotter.threshold):
        snapshotter.txn_logged()
    assert snapshotter.running
    for _ in range(1000):
        if not snapshotter.running:
            break
        clock.advance(0)
    assert sorted(server.store._snapshots) == [1, 2]
