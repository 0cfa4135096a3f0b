"""Watches: one-shot data/exist/child watches and persistent (recursive) ones (WatchManager).

Indexed by path and by watcher, so a closing connection drops all of its watches in time
proportional to what it holds. Triggers come from the tree while a txn is applied; each event
is filtered by READ permission on the governing ACL and then handed to the delivery chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from core.interfaces import WatchDelivery, WatchEvent, Watcher
from core.opcodes import EventType, KeeperState, WatcherType
from core.paths import parent_of
from core.records import ACL, Id

DATA, CHILD, PERSISTENT, RECURSIVE = 0, 1, 2, 3
_KINDS = (DATA, CHILD, PERSISTENT, RECURSIVE)
# members compared with per request, bound once (see core.opcodes)
_NODE_CREATED, _NODE_DATA_CHANGED = EventType.NodeCreated, EventType.NodeDataChanged
_NODE_CHILDREN_CHANGED = EventType.NodeChildrenChanged
_DATA_EVENTS = frozenset((_NODE_CREATED, _NODE_DATA_CHANGED))


class WatchingClient(Protocol):
    """A watcher as the manager needs it: its session, its ids for READ filtering, a sink."""

    session_id: int

    @property
    def auth_ids(self) -> Sequence[Id]: ...

    def send_event(self, event: WatchEvent) -> None: ...


class WatchManager:
    """Every watch of every connection on this member."""

    def __init__(self, readable: Callable[[Sequence[ACL], Sequence[Id]], bool]) -> None:
        self._readable = readable
        self._by_path: tuple[dict[str, set[WatchingClient]], ...] = ({}, {}, {}, {})
        self._by_watcher: dict[WatchingClient, set[tuple[int, str]]] = {}
        self.delivery: list[WatchDelivery] = []

    # -- registration ---------------------------------------------------------------------

    def add(self, kind: int, path: str, watcher: WatchingClient) -> None:
        """Register `watcher` for `kind` (DATA covers exists watches too) at `path`."""
        self._by_path[kind].setdefault(path, set()).add(watcher)
        self._by_watcher.setdefault(watcher, set()).add((kind, path))

    def _discard(self, kind: int, path: str, watcher: WatchingClient) -> bool:
        holders = self._by_path[kind].get(path)
        if holders is None or watcher not in holders:
            return False
        holders.discard(watcher)
        if not holders:
            del self._by_path[kind][path]
        own = self._by_watcher.get(watcher)
        if own is not None:
            own.discard((kind, path))
            if not own:
                del self._by_watcher[watcher]
        return True

    def remove_watcher(self, watcher: WatchingClient) -> None:
        """Drop every watch of a connection that went away."""
        for kind, path in self._by_watcher.pop(watcher, ()):
            holders = self._by_path[kind].get(path)
            if holders is not None:
                holders.discard(watcher)
                if not holders:
                    del self._by_path[kind][path]

    @staticmethod
    def _kinds_for(watcher_type: int) -> Iterable[int]:
        if watcher_type == WatcherType.Children:
            return (CHILD,)
        if watcher_type == WatcherType.Data:
            return (DATA,)
        if watcher_type == WatcherType.Persistent:
            return (PERSISTENT,)
        if watcher_type == WatcherType.PersistentRecursive:
            return (RECURSIVE,)
        return _KINDS

    def contains(self, path: str, watcher_type: int, watcher: WatchingClient) -> bool:
        """checkWatches: whether `watcher` holds a watch of that type at `path`."""
        return any(watcher in self._by_path[k].get(path, ()) for k in self._kinds_for(watcher_type))

    def remove(self, path: str, watcher_type: int, watcher: WatchingClient) -> bool:
        """removeWatches: drop the watcher's watches of that type at `path`; False if none."""
        removed = False
        for k in self._kinds_for(watcher_type):
            removed = self._discard(k, path, watcher) or removed
        return removed

    def count(self) -> int:
        """Number of (path, watcher) watch registrations."""
        return sum(len(h) for table in self._by_path for h in table.values())

    def paths(self, kind: int) -> dict[str, set[WatchingClient]]:
        """The path index of one kind (for operations endpoints)."""
        return self._by_path[kind]

    def of(self, watcher: WatchingClient) -> set[tuple[int, str]]:
        """The (kind, path) watches a watcher holds."""
        return self._by_watcher.get(watcher, set())

    # -- triggering -----------------------------------------------------------------------

    def triggered(self, path: str, event_type: int, zxid: int, acl: tuple[ACL, ...]) -> None:
        """TreeListener: fire the watches `event_type` at `path` reaches, as WatchManager does."""
        if not self._by_watcher:  # nobody watches anything (the common case under write load)
            return
        by_path = self._by_path
        recursive = by_path[RECURSIVE]
        if not recursive and path not in by_path[DATA] and path not in by_path[CHILD] \
                and path not in by_path[PERSISTENT]:
            return  # watches elsewhere, none on this path (nor recursive ones above it)
        found: set[WatchingClient] = set()
        one_shot = (DATA,) if event_type in _DATA_EVENTS else (
            (CHILD,) if event_type == _NODE_CHILDREN_CHANGED else (DATA, CHILD))
        for kind in one_shot:
            holders = by_path[kind].pop(path, None)
            if holders:
                for w in holders:
                    own = self._by_watcher.get(w)
                    if own is not None:
                        own.discard((kind, path))
                        if not own:
                            del self._by_watcher[w]
                found |= holders
        persistent = by_path[PERSISTENT].get(path)
        if persistent:
            found |= persistent
        if recursive and event_type != _NODE_CHILDREN_CHANGED:
            p = path
            while True:
                holders = recursive.get(p)
                if holders:
                    found |= holders
                if p == "/":
                    break
                p = parent_of(p)
        if found:
            self.deliver(WatchEvent(event_type, KeeperState.SyncConnected, path, zxid), found, acl)

    def deliver(self, event: WatchEvent, watchers: Iterable[WatchingClient], acl: Sequence[ACL] | None) -> None:
        """Filter by READ on `acl` (None: no filtering) and pass through the delivery chain."""
        chosen: list[Watcher] = [w for w in watchers if acl is None or self._readable(acl, w.auth_ids)]
        for stage in self.delivery:
            if not chosen:
                return
            chosen = stage.deliver(event, chosen)


class ConnectionDelivery:
    """The last stage of watch delivery: write each event to its client connection."""

    def deliver(self, event: WatchEvent, watchers: list[Watcher]) -> list[Watcher]:
        for w in watchers:
            w.send_event(event)
        return []
