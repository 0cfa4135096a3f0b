"""The data tree: znodes in memory, changed only by applying committed txns (DataTree.java).

`DataTree.apply(txn)` is deterministic: every member applies the same txns in zxid order and
ends with the same tree. Watch triggers go to a `TreeListener` exactly where ZooKeeper's
DataTree triggers its data and child watch managers.

Applying is tolerant, as ZooKeeper's processTxn: a create whose node exists or whose parent is
missing, and a delete or setData of a missing node, change nothing (beyond what ZooKeeper
changes: see `_create` and `_delete`) and report NODEEXISTS / NONODE in the TxnResult. That is
what replaying the log over a fuzzy snapshot needs (quorum.md 4.4); there is no separate
replay mode.

The tree also keeps ZooKeeper's tree digest (quorum.md 3.2) up to date on every change; each
node holds its own part, so a change costs one CRC.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core import native
from core.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from core.errors import Code
from core.opcodes import CONTAINER_EPHEMERAL_OWNER, TTL_MASK, EventType, OpCode, ttl_owner
from core.paths import child_name, parent_of
from core.records import ACL, ACL_LISTS, CreateTxn, DeleteTxn, GetChildrenResponse, Id, SetDataTxn, Stat
from core.txn import Txn

ZOOKEEPER = "/zookeeper"
QUOTA = "/zookeeper/quota"
CONFIG = "/zookeeper/config"
SPECIAL_PATHS = frozenset({"/", ZOOKEEPER, QUOTA, CONFIG})  # DataTree.isSpecialPath
DIGEST_VERSION = 2

NO_CHILDREN: frozenset[str] = frozenset()  # every childless node's children
_MASK64 = (1 << 64) - 1
_DIGEST_STAT = struct.Struct(">qqqqqiiiq")


_STAT = struct.Struct(">qqqqiiiqiiq")  # Stat
_LEN = struct.Struct(">i")
STAT_SIZE = _STAT.size
# members compared with per request, bound once (see core.opcodes)
_CREATE, _CREATE_CONTAINER, _CREATE_TTL = OpCode.create, OpCode.createContainer, OpCode.createTTL
_ERROR = OpCode.error
_NODE_CREATED, _NODE_DELETED = EventType.NodeCreated, EventType.NodeDeleted
_NODE_DATA_CHANGED, _NODE_CHILDREN_CHANGED = EventType.NodeDataChanged, EventType.NodeChildrenChanged
_NOT_IN_MULTI = frozenset((OpCode.multi, OpCode.createSession, OpCode.closeSession))


class TreeListener(Protocol):
    """Told of every watch trigger while a txn is applied (the watch manager)."""

    def triggered(self, path: str, event_type: int, zxid: int, acl: tuple[ACL, ...]) -> None:
        """`event_type` (EventType) happened at `path` by the txn `zxid`. `acl` is the ACL that
        governs delivery: the node's own, or the parent's for NodeChildrenChanged."""


class _Silent:
    """The listener of a tree nobody watches."""

    def triggered(self, path: str, event_type: int, zxid: int, acl: tuple[ACL, ...]) -> None:
        pass


def kind_of_owner(owner: int) -> int:
    """Classify a persisted ephemeralOwner: 0 plain, 1 session ephemeral, 2 container, 3 TTL
    (EphemeralType.get with extended types on; a TTL owner has the top byte 0xff and the
    reserved bits clear, which no session id of a member with sid <= 254 has)."""
    if owner == 0:
        return 0
    if owner == CONTAINER_EPHEMERAL_OWNER:
        return 2
    if owner & -0x10000000000 == TTL_MASK:  # 0xffffff0000000000: marker + reserved bits
        return 3
    return 1


@native.fast_constructor(untracked=True)  # its fields never refer back to it: no cycles
@dataclass(slots=True, eq=False)
class Node:
    """One znode. Persisted stat values (ZooKeeper's StatPersisted): `cversion` counts child
    creates only; `ephemeral_owner` holds the container/TTL markers. `stat()` is the client view.
    Compared by identity. With the accelerator, nodes stay out of the garbage collector.

    `children` is a shared empty frozenset while the node has no child, a set of child names
    otherwise: iterate it and take its len(), never change it outside the tree."""

    data: bytes
    acl: tuple[ACL, ...]
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    pzxid: int
    children: set[str] | frozenset[str] = NO_CHILDREN  # child names (not paths)
    digest: int = 0  # this node's part of the tree digest, kept by the tree that holds it
    reply: bytes | None = None  # data_reply() once built; the tree clears it whenever the view changes
    children_reply: bytes | None = None  # children_list() once built; cleared when a child comes or goes

    def stat_bytes(self) -> bytes:
        """The Stat a client sees (DataNode.copyStat), encoded: the read and reply paths take
        it as bytes, past a Stat object."""
        n = len(self.children)
        cversion = self.cversion * 2 - n
        if not -0x80000000 <= cversion <= 0x7FFFFFFF:
            cversion = (cversion + 0x80000000) % 0x100000000 - 0x80000000  # Java int arithmetic
        owner = self.ephemeral_owner
        if owner < 0 and kind_of_owner(owner) > 1:
            owner = 0
        return _STAT.pack(self.czxid, self.mzxid, self.ctime, self.mtime, self.version, cversion,
                          self.aversion, owner, len(self.data), n, self.pzxid)

    def stat(self) -> Stat:
        """The Stat a client sees, as a record."""
        return Stat.decode(self.stat_bytes())[0]

    def data_reply(self) -> bytes:
        """GetDataResponse's bytes (data, then the Stat), built once per change of the node:
        a getData is a lookup and a header."""
        reply = self.reply
        if reply is None:
            data = self.data
            reply = self.reply = _LEN.pack(len(data)) + data + self.stat_bytes()
        return reply

    def children_list(self) -> bytes:
        """GetChildrenResponse's bytes (the child names), built once per change of the
        children: a getChildren of a big node is a lookup and a header."""
        reply = self.children_reply
        if reply is None:
            reply = self.children_reply = GetChildrenResponse(list(self.children)).encode()
        return reply


def py_node_digest(path: str, node: Node) -> int:
    """ZooKeeper's DigestCalculator: CRC32 of the path ("" for the root), continued over the
    data and the persisted stat; 0 for nodes under /zookeeper/."""
    if path.startswith("/zookeeper/"):
        return 0
    crc = zlib.crc32(b"" if path == "/" else path.encode("utf-8", "surrogatepass"))
    return zlib.crc32(_DIGEST_STAT.pack(
        node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime, node.version, node.cversion,
        node.aversion, node.ephemeral_owner), zlib.crc32(node.data, crc))


# With the C accelerator, a node's digest, Stat bytes and snapshot records are made in C
# (core.native); the Python functions stay for what it hands back to them, and for the tests.
PY_STAT_BYTES = Node.stat_bytes
NODE_VIEW = None if native.MODULE is None else native.MODULE.NodeView(Node, py_node_digest, PY_STAT_BYTES)
node_digest: Callable[[str, Node], int] = py_node_digest if NODE_VIEW is None else NODE_VIEW.digest
if NODE_VIEW is not None:
    Node.stat_bytes = native.method(NODE_VIEW.stat_bytes)  # type: ignore[method-assign]


@native.fast_constructor
@dataclass(slots=True)
class TxnResult:
    """What applying one txn (or one sub-txn of a multi) produced, for the reply.

    `err` is 0 or the error code of an ErrorTxn (or NONODE/NODEEXISTS for a txn that no longer
    fits the tree; a multi's own err is always 0); `type` the (sub-)txn type; `path` the
    created path for creates; `stat_bytes` the node's new Stat, encoded, for creates, setData
    and setACL; `multi` the sub-results of a multi, in order."""

    type: int
    err: int = 0
    path: str | None = None
    stat_bytes: bytes | None = None
    multi: list[TxnResult] | None = None

    @property
    def stat(self) -> Stat | None:
        """`stat_bytes` decoded."""
        return None if self.stat_bytes is None else Stat.decode(self.stat_bytes)[0]


_Op = Callable[[int, Any, int, int, int], TxnResult]


class DataTree:
    """All znodes, by full path. Starts with `/`, `/zookeeper`, `/zookeeper/quota` and
    `/zookeeper/config`.

    As in ZooKeeper, `nodes` holds the root under both "/" and "" (so `len(nodes)` is
    ZooKeeper's node count: 5 for an empty tree, and `get("")` is the root). `digest` is the
    tree digest of quorum.md 3.2 (signed 64-bit)."""

    # the attributes the C accelerator reads by their slots (core/_native.c); the rest in __dict__
    __slots__ = ("_ops", "last_zxid", "nodes", "_digest", "listener", "__dict__", "__weakref__")

    nodes: dict[str, Node]
    last_zxid: int
    ephemerals: dict[int, set[str]]  # session id -> paths of its ephemeral nodes
    containers: set[str]
    ttls: set[str]

    def __init__(self, listener: TreeListener | None = None) -> None:
        self.listener: TreeListener = listener if listener is not None else _Silent()
        self.last_zxid = 0
        self.ephemerals = {}
        self.containers = set()
        self.ttls = set()
        self._digest = 0
        # server-made nodes hold OPEN_ACL_UNSAFE itself (snapshot ref -1, as Java); a client's
        # open ACL is interned apart and gets a ref of its own, as in Java's ACL cache
        self._acls: dict[tuple[tuple[int, str, str], ...], tuple[ACL, ...]] = {}
        self._acl_of: dict[int, tuple[ACL, ...]] = {}  # id(an ACL_LISTS tuple) -> the tree's own
        root = Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        self.nodes = {"/": root, "": root}
        self._ops: dict[int, _Op] = {
            OpCode.create: self._create, OpCode.create2: self._create,
            OpCode.createContainer: self._create, OpCode.createTTL: self._create,
            OpCode.delete: self._delete, OpCode.deleteContainer: self._delete,
            OpCode.setData: self._set_data, OpCode.reconfig: self._set_data,
            OpCode.setACL: self._set_acl, OpCode.check: self._check,
            OpCode.createSession: self._no_change, OpCode.closeSession: self._close_session,
            OpCode.error: self._error, OpCode.multi: self._multi,
        }
        root.digest = self._digest = node_digest("/", root)
        for path in (ZOOKEEPER, QUOTA, CONFIG):
            self.add_node(path, Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        config = self.nodes[CONFIG]
        config.acl = READ_ACL_UNSAFE  # ZOOKEEPER-2014: setACL(READ_ACL_UNSAFE, -1)
        config.aversion = -1

    # -- reading ------------------------------------------------------------------------------

    def get(self, path: str) -> Node | None:
        """The node at `path`, or None."""
        return self.nodes.get(path)

    @property
    def digest(self) -> int:
        """The tree digest (sum of node digests, wrapping signed 64-bit)."""
        d = self._digest & _MASK64
        return d - (1 << 64) if d >= 1 << 63 else d

    def descendants_count(self, path: str) -> int:
        """Nodes below `path` (getAllChildrenNumber); 0 for a missing node."""
        if path == "/":
            return len(self.nodes) - 2
        if path not in self.nodes:
            return 0
        count = 0
        stack = [path]
        while stack:
            p = stack.pop()
            node = self.nodes.get(p)
            if node is None:
                continue
            prefix = "" if p == "/" else p
            for name in node.children:
                count += 1
                stack.append(f"{prefix}/{name}")
        return count

    def session_ephemerals(self, session_id: int) -> set[str]:
        """A copy of the paths of the session's ephemeral nodes."""
        return set(self.ephemerals.get(session_id, ()))

    def intern_acl(self, acl: Sequence[ACL] | None) -> tuple[ACL, ...]:
        """One shared tuple per distinct ACL list, in order (nodes share it)."""
        interned = ACL_LISTS.holds(acl)  # decoded from a txn: known by identity once seen
        if interned:
            found = self._acl_of.get(id(acl))
            if found is not None:
                return found
        key = tuple((a.perms, a.id.scheme, a.id.id) for a in acl or ())
        found = self._acls.get(key)
        if found is None:
            found = self._acls[key] = tuple(ACL(p, Id(s, i)) for p, s, i in key)
        if interned:
            self._acl_of[id(acl)] = found
        return found

    # -- building -----------------------------------------------------------------------------

    def add_node(self, path: str, node: Node) -> None:
        """Insert `node` at `path` under its existing parent, as read from a snapshot: indexes
        its owner and counts its digest, changes no stat and triggers nothing. The root ("" or
        "/") replaces the current root, as does a node at a path already present. Raises
        ValueError when the parent is missing."""
        nodes = self.nodes
        if path in nodes or not path:
            self._replace_node(path, node)
            return
        parent = nodes.get(parent_of(path))
        if parent is None:
            raise ValueError(f"no parent for {path!r}")
        self._add_child(parent, child_name(path))
        nodes[path] = node
        self._remember(path, node)

    def count_digests(self, total: int) -> None:
        """Count the digests of nodes the snapshot reader placed itself (`NODE_VIEW`'s
        read_plain_nodes: each node holds its own, as `add_node` leaves it)."""
        self._digest += total

    def _replace_node(self, path: str, node: Node) -> None:
        """add_node for the root or a path already present: the node takes over the children."""
        if path in ("", "/"):
            old = self.nodes["/"]
            node.children = old.children
            node.digest = old.digest
            self._changed("/", node)
            self.nodes["/"] = self.nodes[""] = node
            return
        existing = self.nodes[path]
        self._forget(path, existing)
        node.children = existing.children
        self.nodes[path] = node
        self._remember(path, node)

    def set_config(self, data: bytes, time: int, zxid: int = 0) -> None:
        """Rewrite /zookeeper/config from the local configuration, as ZooKeeper does at start
        and after SNAP when reconfig is disabled (ZKDatabase.initConfigInZKDatabase: version -1,
        mzxid = the config version)."""
        self._set_data(OpCode.setData, SetDataTxn(CONFIG, data, -1), 0, zxid, time)

    # -- applying -----------------------------------------------------------------------------

    def apply(self, txn: Txn) -> TxnResult:
        """Apply one committed txn (any type) and report what it did; see the module doc for
        how a txn that no longer fits the tree is handled."""
        t = txn.type
        op = self._ops.get(t)
        if op is None:
            raise ValueError(f"unknown txn type {t}")
        zxid = txn.zxid
        result = op(t, txn.body, txn.clientId, zxid, txn.time)
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        return result

    def _create(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        """DataTree.createNode. An existing node gets the txn's ACL (as ZooKeeper) and, for a
        plain create, its parent's cversion/pzxid are raised (processTxn's NODEEXISTS rule)."""
        path: str = body.path
        if t == _CREATE_CONTAINER:
            owner = CONTAINER_EPHEMERAL_OWNER
        elif t == _CREATE_TTL:
            owner = ttl_owner(body.ttl)
        else:
            owner = client_id if body.ephemeral else 0
        parent_path = parent_of(path)
        nodes = self.nodes
        parent = nodes.get(parent_path)
        if parent is None:
            return TxnResult(t, Code.NONODE, path)
        acl = self.intern_acl(body.acl)
        existing = nodes.get(path)
        if existing is not None:
            existing.acl = acl
            if t == _CREATE:
                self._raise_cversion(parent_path, parent, body.parentCVersion, zxid)
            return TxnResult(t, Code.NODEEXISTS, path)
        self._raise_cversion(parent_path, parent, body.parentCVersion, zxid)
        self._add_child(parent, child_name(path))
        node = Node(body.data or b"", acl, zxid, zxid, time, time, 0, 0, 0, owner, zxid)
        nodes[path] = node
        self._remember(path, node)
        listener = self.listener
        listener.triggered(path, _NODE_CREATED, zxid, acl)
        listener.triggered(parent_path, _NODE_CHILDREN_CHANGED, zxid, parent.acl)
        return TxnResult(t, 0, path, node.stat_bytes())

    def _raise_cversion(self, path: str, node: Node, cversion: int, zxid: int) -> None:
        """Set the parent's persisted cversion and pzxid, only if the txn's cversion is higher
        (-1 means one more than now)."""
        if cversion == -1:
            cversion = node.cversion + 1
        if cversion > node.cversion:
            node.cversion = cversion
            node.pzxid = zxid
            self._changed(path, node)

    def _delete(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        """DataTree.deleteNode: the parent loses the child name and its pzxid is raised even
        when the node is already gone (then NONODE)."""
        path: str = body.path
        parent_path = parent_of(path)
        nodes = self.nodes
        parent = nodes.get(parent_path)
        if parent is None:
            return TxnResult(t, Code.NONODE, path)
        name = child_name(path)
        if zxid > parent.pzxid:
            parent.pzxid = zxid
            self._changed(parent_path, parent)
        children = parent.children
        if name in children:
            parent.reply = parent.children_reply = None
            if len(children) == 1:
                parent.children = NO_CHILDREN
            else:
                children.remove(name)  # type: ignore[union-attr]
        node = nodes.pop(path, None)
        if node is None:
            return TxnResult(t, Code.NONODE, path)
        self._forget(path, node)
        listener = self.listener
        listener.triggered(path, _NODE_DELETED, zxid, node.acl)
        listener.triggered(parent_path, _NODE_CHILDREN_CHANGED, zxid, parent.acl)
        return TxnResult(t, 0, path)

    def _set_data(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        """DataTree.setData (also reconfig's txn)."""
        path: str = body.path
        node = self.nodes.get(path)
        if node is None:
            return TxnResult(t, Code.NONODE, path)
        node.data = body.data or b""
        node.mtime = time
        node.mzxid = zxid
        node.version = body.version
        self._changed(path, node)
        self.listener.triggered(path, _NODE_DATA_CHANGED, zxid, node.acl)
        return TxnResult(t, 0, path, node.stat_bytes())

    def _set_acl(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        """DataTree.setACL: new ACL and aversion, no watch."""
        path: str = body.path
        node = self.nodes.get(path)
        if node is None:
            return TxnResult(t, Code.NONODE, path)
        node.aversion = body.version
        node.acl = self.intern_acl(body.acl)
        self._changed(path, node)
        return TxnResult(t, 0, path, node.stat_bytes())

    def _check(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        return TxnResult(t, 0, body.path)

    def _no_change(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        return TxnResult(t)

    def _error(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        return TxnResult(t, body.err)

    def _close_session(self, t: int, body: Any, client_id: int, zxid: int,
                       time: int) -> TxnResult:
        """DataTree.killSession: delete the txn's paths, then any other ephemeral the tree
        still holds for the session (a missing node is skipped)."""
        local = self.ephemerals.pop(client_id, None)
        listed: Iterable[str] = (body.paths2Delete or ()) if body is not None else ()
        for path in listed:
            self._delete(OpCode.delete, DeleteTxn(path), client_id, zxid, time)
            if local is not None:
                local.discard(path)
        for path in sorted(local or ()):
            self._delete(OpCode.delete, DeleteTxn(path), client_id, zxid, time)
        return TxnResult(t)

    def _multi(self, t: int, body: Any, client_id: int, zxid: int, time: int) -> TxnResult:
        """All sub-txns in order, or, when one is an error, none: the ones before it report 0
        (rolled back), the error its code, the ones after RUNTIMEINCONSISTENCY. The multi's own
        err stays 0 (its ReplyHeader.err is 0); the sub-results carry the errors."""
        results: list[TxnResult] = []
        if _ERROR in [st for st, _ in body]:  # a list, not any(): no generator per multi
            failed = False
            for st, record in body:
                if st == _ERROR:
                    failed = True
                    code = record.err
                else:
                    code = Code.RUNTIMEINCONSISTENCY if failed else 0
                results.append(TxnResult(OpCode.error, code))
            return TxnResult(t, multi=results)
        for st, record in body:
            op = self._ops.get(st)
            if op is None or st in _NOT_IN_MULTI:
                raise ValueError(f"txn type {st} inside a multi")
            results.append(op(st, record, client_id, zxid, time))
        return TxnResult(t, multi=results)

    # -- indices ------------------------------------------------------------------------------

    @staticmethod
    def _add_child(parent: Node, name: str) -> None:
        parent.reply = parent.children_reply = None
        if parent.children:
            parent.children.add(name)  # type: ignore[union-attr]
        else:
            parent.children = {name}

    def _remember(self, path: str, node: Node) -> None:
        """Index a node just placed in `nodes` and count its digest."""
        owner = node.ephemeral_owner
        if owner:
            kind = kind_of_owner(owner)
            if kind == 1:
                self.ephemerals.setdefault(owner, set()).add(path)
            elif kind == 2:
                self.containers.add(path)
            elif kind == 3:
                self.ttls.add(path)
        digest = node.digest = node_digest(path, node)
        self._digest += digest

    def _forget(self, path: str, node: Node) -> None:
        """Unindex a node removed from `nodes` and uncount its digest."""
        kind = kind_of_owner(node.ephemeral_owner)
        if kind == 1:
            paths = self.ephemerals.get(node.ephemeral_owner)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self.ephemerals[node.ephemeral_owner]
        elif kind == 2:
            self.containers.discard(path)
        elif kind == 3:
            self.ttls.discard(path)
        self._digest -= node.digest

    def _changed(self, path: str, node: Node) -> None:
        """Recount the digest of a node whose persisted fields changed; drop its reply."""
        digest = node_digest(path, node)
        self._digest += digest - node.digest
        node.digest = digest
        node.reply = None


# With the C accelerator, the dispatch of a txn, a multi without an error sub-txn and the common
# cases of setData, create and delete are applied in C (core.native); the Python methods stay
# for what it hands back, and for the tests.
PY_APPLY = DataTree.apply
PY_MULTI = DataTree._multi
PY_SET_DATA = DataTree._set_data
PY_CREATE = DataTree._create
PY_DELETE = DataTree._delete
if NODE_VIEW is not None:
    assert native.MODULE is not None
    DataTree.apply = native.method(native.MODULE.tree_applier(Txn, DataTree, PY_APPLY))  # type: ignore[method-assign]
    DataTree._multi = native.method(native.MODULE.multi_applier(  # type: ignore[method-assign]
        DataTree, TxnResult, PY_MULTI, int(_ERROR), _NOT_IN_MULTI))
    DataTree._set_data = native.method(native.MODULE.set_data_applier(  # type: ignore[method-assign]
        NODE_VIEW, SetDataTxn, TxnResult, PY_SET_DATA, int(_NODE_DATA_CHANGED), DataTree))
    DataTree._create = native.method(native.MODULE.create_applier(  # type: ignore[method-assign]
        NODE_VIEW, CreateTxn, TxnResult, PY_CREATE, frozenset({OpCode.create, OpCode.create2}),
        int(_NODE_CREATED), int(_NODE_CHILDREN_CHANGED), DataTree))
    DataTree._delete = native.method(native.MODULE.delete_applier(  # type: ignore[method-assign]
        NODE_VIEW, DeleteTxn, TxnResult, PY_DELETE, NO_CHILDREN, int(_NODE_DELETED),
        int(_NODE_CHILDREN_CHANGED), DataTree))
