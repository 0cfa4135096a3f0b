"""Watches: one-shot (kazoo), persistent and recursive (wire addWatch), check/remove (wire),
and the ordering rule that an event reaches a client before the reply that follows it."""

from __future__ import annotations


from kazoo.protocol.states import EventType

from core.errors import Code
from core.opcodes import AddWatchMode, EventType as ET, KeeperState, OpCode, WatcherType
from core.records import (
    AddWatchRequest, CreateRequest, DeleteRequest, GetDataResponse, PathWatchRequest,
    SetDataRequest, WatchTypeRequest,
)
from harness import Events
from wire import OPEN_ACL_UNSAFE





def kind_path(event) -> tuple:
    return (event.type, event.path)


def notification_zxid_ok(server, zxid: int, txn_zxid: int) -> bool:
    # protocol.md "3.8 vs 3.9": a notification's ReplyHeader.zxid is -1 on 3.8 (apache), the
    # triggering txn's zxid on 3.9.0+ (ours, ZOOKEEPER-4655).
    return zxid == (-1 if server.kind == "apache" else txn_zxid)


# -- one-shot watches through kazoo ----------------------------------------------------------

def test_data_watch_is_one_shot(zk, zk_factory, server, root):
    p = zk.create(f"{root}/d", b"0")
    other = zk_factory(server)
    ev = Events()
    zk.get(p, watch=ev)
    other.set(p, b"1")
    e = ev.next()
    assert (e.type, e.path, e.state) == (EventType.CHANGED, p, "CONNECTED")
    other.set(p, b"2")
    zk.sync(p)
    assert ev.none()


def test_exists_watch_on_missing_and_existing_node(zk, zk_factory, server, root):
    p = f"{root}/x"
    other = zk_factory(server)
    ev = Events()
    assert zk.exists(p, watch=ev) is None
    other.create(p, b"")
    assert kind_path(ev.next()) == (EventType.CREATED, p)
    ev2 = Events()
    assert zk.exists(p, watch=ev2) is not None
    other.set(p, b"y")
    assert kind_path(ev2.next()) == (EventType.CHANGED, p)
    ev3 = Events()
    zk.exists(p, watch=ev3)
    other.delete(p)
    assert kind_path(ev3.next()) == (EventType.DELETED, p)


def test_child_watch(zk, zk_factory, server, root):
    other = zk_factory(server)
    ev = Events()
    assert zk.get_children(root, watch=ev) == []
    other.set(root, b"data change is not a child change")
    other.create(f"{root}/kid")
    e = ev.next()
    assert (e.type, e.path) == (EventType.CHILD, root)
    assert ev.none()
    ev2 = Events()
    zk.get_children(root, watch=ev2)
    other.delete(f"{root}/kid")
    e = ev2.next()
    assert (e.type, e.path) == (EventType.CHILD, root)


def test_delete_fires_data_and_child_watchers(zk, zk_factory, server, root):
    p = zk.create(f"{root}/gone", b"")
    other = zk_factory(server)
    data_ev, child_ev, parent_ev = Events(), Events(), Events()
    zk.get(p, watch=data_ev)
    zk.get_children(p, watch=child_ev)
    zk.get_children(root, watch=parent_ev)
    other.delete(p)
    for ev in (data_ev, child_ev):
        e = ev.next()
        assert (e.type, e.path) == (EventType.DELETED, p)
    e = parent_ev.next()
    assert (e.type, e.path) == (EventType.CHILD, root)
    for ev in (data_ev, child_ev, parent_ev):
        assert ev.none(0.1)


# -- the ordering rule, on the wire ------------------------------------------------------------

def test_watch_event_precedes_reply_of_following_read(server, wire_factory, root, zk):
    p = zk.create(f"{root}/o", b"old")
    a = wire_factory(server)
    b = wire_factory(server)
    r = a.call(OpCode.getData, PathWatchRequest(p, True))
    assert r.err == 0 and r.decode(GetDataResponse).data == b"old"
    w = b.call(OpCode.setData, SetDataRequest(p, b"new", -1))
    assert w.err == 0
    # a's next read sees the new data, so its event must already have come, before that reply
    r = a.call(OpCode.getData, PathWatchRequest(p, False))
    assert r.decode(GetDataResponse).data == b"new"
    assert len(a.events) == 1
    n = a.events[0]
    assert (n.type, n.path, n.event.state) == (ET.NodeDataChanged, p, KeeperState.SyncConnected)
    assert notification_zxid_ok(server, n.zxid, w.zxid)


def test_watch_event_precedes_reply_of_own_write(server, wire_factory, root, zk):
    p = zk.create(f"{root}/o", b"")
    a = wire_factory(server)
    assert a.call(OpCode.getData, PathWatchRequest(p, True)).err == 0
    assert a.call(OpCode.exists, PathWatchRequest(f"{p}/kid", True)).err == Code.NONODE
    assert a.call(OpCode.getChildren, PathWatchRequest(p, True)).err == 0
    w = a.call(OpCode.setData, SetDataRequest(p, b"x", -1))
    assert w.err == 0
    assert [(n.type, n.path) for n in a.events] == [(ET.NodeDataChanged, p)]
    c = a.call(OpCode.create, CreateRequest(f"{p}/kid", b"", OPEN_ACL_UNSAFE, 0))
    assert c.err == 0
    assert sorted((n.type, n.path) for n in a.events[1:]) == sorted([
        (ET.NodeCreated, f"{p}/kid"), (ET.NodeChildrenChanged, p)])
    assert all(notification_zxid_ok(server, n.zxid, c.zxid) for n in a.events[1:])


# -- persistent watches (kazoo 2.11 has no add_watch: wire) -----------------------------------

def _mutate(w, root):
    """Writes under root; returns their zxids in order."""
    ops = [
        (OpCode.create, CreateRequest(f"{root}/a", b"", OPEN_ACL_UNSAFE, 0)),
        (OpCode.create, CreateRequest(f"{root}/a/b", b"", OPEN_ACL_UNSAFE, 0)),
        (OpCode.setData, SetDataRequest(f"{root}/a/b", b"1", -1)),
        (OpCode.setData, SetDataRequest(root, b"r", -1)),
        (OpCode.setData, SetDataRequest(f"{root}/a/b", b"2", -1)),
        (OpCode.delete, DeleteRequest(f"{root}/a/b", -1)),
        (OpCode.delete, DeleteRequest(f"{root}/a", -1)),
    ]
    zxids = []
    for op, rec in ops:
        r = w.call(op, rec)
        assert r.err == 0, (op, rec, r)
        zxids.append(r.zxid)
    return zxids


def test_persistent_watch(server, wire_factory, zk, root):
    a = wire_factory(server)
    b = wire_factory(server)
    r = a.call(OpCode.addWatch, AddWatchRequest(root, AddWatchMode.PERSISTENT))
    assert r.err == 0 and r.body == b"\0\0\0\0"  # ErrorResponse{0}
    z = _mutate(b, root)
    a.ping()
    got = [(n.type, n.path) for n in a.events]
    # the node itself and its children list; nothing deeper; it stays after firing
    assert got == [
        (ET.NodeChildrenChanged, root),
        (ET.NodeDataChanged, root),
        (ET.NodeChildrenChanged, root),
    ]
    assert [notification_zxid_ok(server, n.zxid, zx) for n, zx in zip(a.events, (z[0], z[3], z[6]))] == [True] * 3


def test_persistent_recursive_watch(server, wire_factory, zk, root):
    a = wire_factory(server)
    b = wire_factory(server)
    r = a.call(OpCode.addWatch, AddWatchRequest(root, AddWatchMode.PERSISTENT_RECURSIVE))
    assert r.err == 0
    z = _mutate(b, root)
    a.ping()
    got = [(n.type, n.path) for n in a.events]
    # every node at or below root; no child events
    assert got == [
        (ET.NodeCreated, f"{root}/a"),
        (ET.NodeCreated, f"{root}/a/b"),
        (ET.NodeDataChanged, f"{root}/a/b"),
        (ET.NodeDataChanged, root),
        (ET.NodeDataChanged, f"{root}/a/b"),
        (ET.NodeDeleted, f"{root}/a/b"),
        (ET.NodeDeleted, f"{root}/a"),
    ]
    assert all(notification_zxid_ok(server, n.zxid, zx) for n, zx in zip(a.events, z))


def test_persistent_watch_on_missing_node(server, wire_factory, zk, root):
    a = wire_factory(server)
    b = wire_factory(server)
    p = f"{root}/later"
    assert a.call(OpCode.addWatch, AddWatchRequest(p, AddWatchMode.PERSISTENT)).err == 0
    assert b.call(OpCode.create, CreateRequest(p, b"", OPEN_ACL_UNSAFE, 0)).err == 0
    assert b.call(OpCode.delete, DeleteRequest(p, -1)).err == 0
    assert b.call(OpCode.create, CreateRequest(p, b"", OPEN_ACL_UNSAFE, 0)).err == 0
    a.ping()
    assert [(n.type, n.path) for n in a.events] == [
        (ET.NodeCreated, p), (ET.NodeDeleted, p), (ET.NodeCreated, p)]


# -- checkWatches / removeWatches ---------------------------------------------------------------

def test_check_and_remove_watches(server, wire_factory, zk, root):
    p = zk.create(f"{root}/w", b"")
    a = wire_factory(server)
    b = wire_factory(server)
    check = lambda path, t: a.call(OpCode.checkWatches, WatchTypeRequest(path, t)).err  # noqa: E731
    remove = lambda path, t: a.call(OpCode.removeWatches, WatchTypeRequest(path, t)).err  # noqa: E731

    assert check(p, WatcherType.Any) == Code.NOWATCHER
    assert check(f"{root}/missing", WatcherType.Data) == Code.NOWATCHER
    assert remove(p, WatcherType.Any) == Code.NOWATCHER

    assert a.call(OpCode.getData, PathWatchRequest(p, True)).err == 0
    assert check(p, WatcherType.Data) == 0
    assert check(p, WatcherType.Any) == 0
    assert check(p, WatcherType.Children) == Code.NOWATCHER
    assert a.call(OpCode.getChildren, PathWatchRequest(p, True)).err == 0
    assert check(p, WatcherType.Children) == 0

    # removing the data watch leaves the child watch
    assert remove(p, WatcherType.Data) == 0
    assert check(p, WatcherType.Data) == Code.NOWATCHER
    assert check(p, WatcherType.Children) == 0
    assert remove(p, WatcherType.Data) == Code.NOWATCHER
    assert b.call(OpCode.setData, SetDataRequest(p, b"x", -1)).err == 0
    a.ping()
    assert a.events == []  # the server sends nothing for a removed watch (the client makes DataWatchRemoved)

    # an exists watch on a missing node counts as a data watch
    assert a.call(OpCode.exists, PathWatchRequest(f"{p}-x", True)).err == Code.NONODE
    assert check(f"{p}-x", WatcherType.Data) == 0
    assert remove(f"{p}-x", WatcherType.Any) == 0
    assert check(f"{p}-x", WatcherType.Any) == Code.NOWATCHER

    assert remove(p, WatcherType.Any) == 0
    assert check(p, WatcherType.Any) == Code.NOWATCHER
    assert b.call(OpCode.create, CreateRequest(f"{p}/kid", b"", OPEN_ACL_UNSAFE, 0)).err == 0
    a.ping()
    assert a.events == []
    # another session's watch on the path. Not in protocol.md's list, observed on 3.8.0:
    # checkWatches answers OK for a watch of *any* session on the path (3.6-3.8's
    # WatchManager.containsWatcher looks at the path's watcher set, not the caller's entry;
    # 3.9's per-watcher table answers NOWATCHER, and ours follows 3.9). removeWatches is per
    # watcher on both.
    assert b.call(OpCode.getData, PathWatchRequest(p, True)).err == 0
    assert check(p, WatcherType.Data) == (0 if server.kind == "apache" else Code.NOWATCHER)
    assert check(p, WatcherType.Children) == Code.NOWATCHER
    assert remove(p, WatcherType.Data) == Code.NOWATCHER
    assert remove(p, WatcherType.Any) == Code.NOWATCHER
    assert b.call(OpCode.setData, SetDataRequest(p, b"y", -1)).err == 0
    b.ping()
    assert [(n.type, n.path) for n in b.events] == [(ET.NodeDataChanged, p)]  # b's watch survived


def test_check_watches_persistent_types(server, wire_factory, zk, root):
    a = wire_factory(server)
    assert a.call(OpCode.addWatch, AddWatchRequest(root, AddWatchMode.PERSISTENT)).err == 0
    r4 = a.call(OpCode.checkWatches, WatchTypeRequest(root, WatcherType.Persistent)).err
    r5 = a.call(OpCode.checkWatches, WatchTypeRequest(root, WatcherType.PersistentRecursive)).err
    if server.kind == "apache":
        # protocol.md "3.8 vs 3.9": types 4/5 are 3.9.0+; 3.8 answers MARSHALLINGERROR
        assert (r4, r5) == (Code.MARSHALLINGERROR, Code.MARSHALLINGERROR)
    else:
        assert (r4, r5) == (0, Code.NOWATCHER)
    # type Any covers persistent watches on both
    assert a.call(OpCode.checkWatches, WatchTypeRequest(root, WatcherType.Any)).err == 0
    assert a.call(OpCode.removeWatches, WatchTypeRequest(root, WatcherType.Any)).err == 0
    assert a.call(OpCode.checkWatches, WatchTypeRequest(root, WatcherType.Any)).err == Code.NOWATCHER
    zk.set(root, b"after removal")
    a.ping()
    assert a.events == []
