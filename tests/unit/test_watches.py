"""The watch manager: which watches an event reaches, one-shot vs persistent, READ filtering."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.interfaces import WatchEvent
from core.opcodes import EventType, WatcherType
from core.records import ACL, Id
from core.watches import CHILD, DATA, PERSISTENT, RECURSIVE, ConnectionDelivery, WatchManager

OPEN = (ACL(31, Id("world", "anyone")),)
SECRET = (ACL(31, Id("digest", "u:x")),)


@dataclass(eq=False)
class FakeClient:
    session_id: int
    auth_ids: list[Id] = field(default_factory=list)
    events: list[tuple[int, str, int]] = field(default_factory=list)

    def send_event(self, event: WatchEvent) -> None:
        self.events.append((event.type, event.path, event.zxid))


def manager() -> WatchManager:
    wm = WatchManager(lambda acl, ids: any(a.id.scheme == "world" for a in acl) or any(i.scheme == "digest" for i in ids))
    wm.delivery = [ConnectionDelivery()]
    return wm


def test_one_shot_data_watch_fires_once() -> None:
    wm, c = manager(), FakeClient(1)
    wm.add(DATA, "/a", c)
    wm.triggered("/a", EventType.NodeDataChanged, 5, OPEN)
    wm.triggered("/a", EventType.NodeDataChanged, 6, OPEN)
    assert c.events == [(EventType.NodeDataChanged, "/a", 5)]
    assert wm.count() == 0


def test_delete_reaches_data_and_child_watches_of_the_node() -> None:
    wm, c, d = manager(), FakeClient(1), FakeClient(2)
    wm.add(DATA, "/a", c)
    wm.add(CHILD, "/a", d)
    wm.triggered("/a", EventType.NodeDeleted, 7, OPEN)
    assert c.events == [(EventType.NodeDeleted, "/a", 7)]
    assert d.events == [(EventType.NodeDeleted, "/a", 7)]


def test_child_event_does_not_reach_data_watches() -> None:
    wm, c = manager(), FakeClient(1)
    wm.add(DATA, "/a", c)
    wm.triggered("/a", EventType.NodeChildrenChanged, 3, OPEN)
    assert c.events == []
    assert wm.contains("/a", WatcherType.Data, c)


def test_persistent_stays_and_recursive_sees_descendants_but_no_child_events() -> None:
    wm, p, r = manager(), FakeClient(1), FakeClient(2)
    wm.add(PERSISTENT, "/a", p)
    wm.add(RECURSIVE, "/a", r)
    wm.triggered("/a", EventType.NodeDataChanged, 1, OPEN)
    wm.triggered("/a", EventType.NodeDataChanged, 2, OPEN)
    wm.triggered("/a", EventType.NodeChildrenChanged, 3, OPEN)
    wm.triggered("/a/b/c", EventType.NodeCreated, 4, OPEN)
    assert p.events == [(3, "/a", 1), (3, "/a", 2), (4, "/a", 3)]
    assert r.events == [(3, "/a", 1), (3, "/a", 2), (1, "/a/b/c", 4)]


def test_events_need_read_permission() -> None:
    wm, anon, user = manager(), FakeClient(1), FakeClient(2, [Id("digest", "u:x")])
    wm.add(DATA, "/s", anon)
    wm.add(DATA, "/s", user)
    wm.triggered("/s", EventType.NodeDataChanged, 9, SECRET)
    assert anon.events == []
    assert user.events == [(3, "/s", 9)]


def test_remove_watcher_drops_everything_it_holds() -> None:
    wm, c, other = manager(), FakeClient(1), FakeClient(2)
    for i in range(100):
        wm.add(DATA, f"/n{i}", c)
        wm.add(CHILD, f"/n{i}", c)
    wm.add(DATA, "/n0", other)
    wm.remove_watcher(c)
    assert wm.count() == 1
    assert wm.of(c) == set()


def test_remove_and_check_by_watcher_type() -> None:
    wm, c = manager(), FakeClient(1)
    wm.add(CHILD, "/a", c)
    assert not wm.contains("/a", WatcherType.Data, c)
    assert wm.contains("/a", WatcherType.Any, c)
    assert not wm.remove("/a", WatcherType.Data, c)
    assert wm.remove("/a", WatcherType.Children, c)
    assert not wm.contains("/a", WatcherType.Any, c)
