"""ZooKeeper's op codes (ZooDefs.OpCode), create modes, permissions and watch-event constants.

On Python 3.11 looking up a member on its enum class (`OpCode.setData`) costs about 0.1 µs (the
metaclass has a `__getattr__`), so the modules on the request path bind the members they compare
with per request to module constants once.
"""

from __future__ import annotations

import enum


class OpCode(enum.IntEnum):
    """ZooDefs.OpCode: RequestHeader.type, TxnHeader.type and MultiHeader.type."""

    notification = 0
    create = 1
    delete = 2
    exists = 3
    getData = 4
    setData = 5
    getACL = 6
    setACL = 7
    getChildren = 8
    sync = 9
    ping = 11
    getChildren2 = 12
    check = 13
    multi = 14
    create2 = 15
    reconfig = 16
    checkWatches = 17
    removeWatches = 18
    createContainer = 19
    deleteContainer = 20
    createTTL = 21
    multiRead = 22
    auth = 100
    setWatches = 101
    sasl = 102
    getEphemerals = 103
    getAllChildrenNumber = 104
    setWatches2 = 105
    addWatch = 106
    whoAmI = 107
    createSession = -10
    closeSession = -11
    error = -1


# CreateMode flags (0 persistent, 1 ephemeral, 2 persistent sequential, 3 ephemeral sequential,
# 4 container, 5 persistent with TTL, 6 persistent sequential with TTL), by property; plain ints:
# creates are on the write path
SEQUENTIAL_FLAGS = frozenset({2, 3, 6})
EPHEMERAL_FLAGS = frozenset({1, 3})
TTL_FLAGS = frozenset({5, 6})


class Perm:
    """ZooDefs.Perms: plain int bits (not an enum: ACL checks are on every request's path)."""

    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class EventType(enum.IntEnum):
    """Watcher.Event.EventType."""

    None_ = -1
    NodeCreated = 1
    NodeDeleted = 2
    NodeDataChanged = 3
    NodeChildrenChanged = 4
    DataWatchRemoved = 5
    ChildWatchRemoved = 6
    PersistentWatchRemoved = 7


class KeeperState(enum.IntEnum):
    """Watcher.Event.KeeperState."""

    Unknown = -1
    Disconnected = 0
    SyncConnected = 3
    AuthFailed = 4
    ConnectedReadOnly = 5
    SaslAuthenticated = 6
    Closed = 7
    Expired = -112


class WatcherType(enum.IntEnum):
    """Watcher.WatcherType, for checkWatches/removeWatches."""

    Children = 1
    Data = 2
    Any = 3
    Persistent = 4
    PersistentRecursive = 5


class AddWatchMode(enum.IntEnum):
    """AddWatchMode of addWatch."""

    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


# ephemeralOwner markers of EphemeralType (persisted; clients see 0 for both)
CONTAINER_EPHEMERAL_OWNER = -0x8000000000000000
TTL_MASK = -0x100000000000000  # 0xff00000000000000 as a signed long
MAX_TTL = (1 << 40) - 1


def ttl_owner(ttl: int) -> int:
    """The persisted ephemeralOwner of a TTL node (EphemeralType.TTL.toEphemeralOwner)."""
    return TTL_MASK | ttl
