"""Making txns from write requests: ZooKeeper's PrepRequestProcessor.

`Prep.prep(request, zxid)` validates a write against the tree *plus* the changes of txns
already made but not yet applied (ZooKeeper's outstandingChanges: writes are pipelined, so a
create and a create of its child in one batch both succeed), fixes every nondeterministic value
(zxid, time, sequence suffix, ephemeral owner, new versions) and returns the Txn. A failing
write becomes an error txn carrying its zxid (TxnHeader type -1, ErrorTxn(code)); a failing
multi becomes a MultiTxn (the sub-txns made before the failure, ErrorTxn(code), then
ErrorTxn(-2) for the rest). ZooKeeper errors never escape as exceptions.

After `tree.apply(txn)`, call `applied(txn.zxid)` so the change records of that txn are dropped
and the tree is consulted again.

Request records, by op: create/create2/createContainer CreateRequest, createTTL
CreateTTLRequest, delete DeleteRequest, setData SetDataRequest, setACL SetACLRequest,
deleteContainer anything with `.path` (PathRequest from a 3.9 client, DeleteTxn from the
server's container cleanup), reconfig ReconfigRequest, createSession CreateSessionTxn(timeout),
closeSession None, multi a sequence of (MultiHeader.type, op record) pairs.

Where ours departs from ZooKeeper (protocol.md "3.8 vs 3.9"): deleteContainer from a client
(session id != 0) needs a live session and DELETE on the parent; session id 0 is the server's
own container/TTL cleanup and is not checked. A top-level check (13) is UNIMPLEMENTED, as in
3.9.3+. Change records carry the owner the tree will really give a node (ZooKeeper's record of
a createContainer with an ephemeral flag names the session).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import native
from core.acl import AccessControl
from core.errors import Code, ZKError
from core.interfaces import Request
from core.opcodes import (
    CONTAINER_EPHEMERAL_OWNER, EPHEMERAL_FLAGS, MAX_TTL, SEQUENTIAL_FLAGS, TTL_FLAGS, OpCode, Perm, ttl_owner,
)
from core.paths import parent_of, validate_path
from core.records import (
    ACL, CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateTTLTxn, CreateTxn, DeleteTxn,
    CreateRequest, DeleteRequest, ErrorTxn, SetACLTxn, SetDataRequest, SetDataTxn,
)
from core.sessions import Session, SessionTracker
from core.tree import NODE_VIEW, SPECIAL_PATHS, DataTree, Node, kind_of_owner
from core.txn import Txn

_CREATES = (OpCode.create, OpCode.create2, OpCode.createContainer)
_MULTI_PLAIN = frozenset({OpCode.delete, OpCode.setData, OpCode.check})
# ops whose session ZooKeeper does not check in prep (deleteContainer: see the module doc)
_NO_SESSION_CHECK = frozenset({OpCode.createSession, OpCode.closeSession, OpCode.deleteContainer})
# members compared with per request, bound once (see core.opcodes)
_MULTI, _CHECK, _CLOSE_SESSION = OpCode.multi, OpCode.check, OpCode.closeSession
_CREATE_TTL, _CREATE_CONTAINER = OpCode.createTTL, OpCode.createContainer
_DELETE_CONTAINER = OpCode.deleteContainer
_PERM_CREATE, _PERM_DELETE, _PERM_WRITE = Perm.CREATE, Perm.DELETE, Perm.WRITE


@native.fast_constructor
@dataclass(slots=True, eq=False)
class _Change:
    """A pending change to one path (ZooKeeper's ChangeRecord): the node as it will be once
    the txn `zxid` is applied, or `exists` False for a delete. Compared by identity."""

    zxid: int
    path: str
    exists: bool
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    acl: tuple[ACL, ...]
    nchildren: int


_Record = Node | _Change
_Handler = Callable[[int, Any, Request, int], Any]


def _error_txn(request: Request, zxid: int, now: int, code: int) -> Txn:
    """The error txn a write that failed in prep becomes (ErrorTxn(code), with its zxid)."""
    return Txn(request.session_id, request.cxid, zxid, now, OpCode.error, ErrorTxn(code))


def _nchildren(rec: _Record) -> int:
    return rec.nchildren if type(rec) is _Change else len(rec.children)  # type: ignore[union-attr]


def _next_version(current: int, expected: int) -> int:
    """checkAndIncVersion: BADVERSION unless `expected` is -1 or `current`; the next version
    wraps as a Java int and skips -1 (ZOOKEEPER-4743)."""
    if expected != -1 and expected != current:
        raise ZKError(Code.BADVERSION)
    n = current + 1
    if n > 0x7FFFFFFF:
        n = -0x80000000
    return 0 if n == -1 else n


def _check_delete_path(path: str | None) -> str:
    """getParentPathAndValidate: the parent path, or BADARGUMENTS for a path without `/`,
    with a NUL, or one of `/`, /zookeeper, /zookeeper/quota, /zookeeper/config."""
    if path is None or "/" not in path or "\0" in path or path in SPECIAL_PATHS:
        raise ZKError(Code.BADARGUMENTS, path)
    return parent_of(path)


class Prep:
    """PrepRequestProcessor: turns write requests into txns; see the module doc."""

    # the attributes the C accelerator reads by their slots (core/_native.c); the rest in __dict__
    __slots__ = ("_handlers", "sessions", "now_ms", "_order", "_pending", "_undo", "tree", "__dict__", "__weakref__")

    def __init__(self, tree: DataTree, access: AccessControl, sessions: SessionTracker,
                 extended_types: bool, now_ms: Callable[[], int]) -> None:
        self.tree = tree
        self.access = access
        self.sessions = sessions
        self.extended_types = extended_types
        self.now_ms = now_ms
        self._pending: dict[str, _Change] = {}
        self._order: deque[_Change] = deque()
        self._undo: list[tuple[str, _Change | None]] | None = None
        self._handlers: dict[int, _Handler] = {
            OpCode.create: self._create, OpCode.create2: self._create,
            OpCode.createContainer: self._create, OpCode.createTTL: self._create,
            OpCode.delete: self._delete, OpCode.deleteContainer: self._delete_container,
            OpCode.setData: self._set_data, OpCode.setACL: self._set_acl,
            OpCode.check: self._check, OpCode.reconfig: self._reconfig,
            OpCode.createSession: self._create_session, OpCode.closeSession: self._close_session,
        }

    # -- public -------------------------------------------------------------------------------

    def prep(self, request: Request, zxid: int) -> Txn:
        """The txn for `request`, numbered `zxid` (see the module doc). Raises ValueError only
        for a request type that makes no txn (reads, sync, ping...)."""
        t = request.type
        now = self.now_ms()
        if t == _MULTI:
            return self._multi(request, zxid, now)
        handler = self._handlers.get(t)
        if handler is None:
            raise ValueError(f"request type {t} makes no txn")
        try:
            if t not in _NO_SESSION_CHECK or (t == _DELETE_CONTAINER and request.session_id):
                self.sessions.check(request.session_id)
            if request.record is None and t != _CLOSE_SESSION:
                raise ZKError(Code.MARSHALLINGERROR)
            if t == _CHECK:
                raise ZKError(Code.UNIMPLEMENTED)
            body = handler(t, request.record, request, zxid)
        except ZKError as e:
            return _error_txn(request, zxid, now, e.code)
        return Txn(request.session_id, request.cxid, zxid, now, t, body)

    def applied(self, zxid: int) -> None:
        """Forget the change records of every txn up to `zxid` (it is in the tree now)."""
        order = self._order
        pending = self._pending
        while order and order[0].zxid <= zxid:
            c = order.popleft()
            if pending.get(c.path) is c:
                del pending[c.path]

    def pending_count(self) -> int:
        """How many change records are outstanding (for metrics and tests)."""
        return len(self._order)

    # -- records ------------------------------------------------------------------------------

    def _lookup(self, path: str) -> _Record | None:
        """The node as the pending txns will leave it, or None if it will not exist."""
        c = self._pending.get(path)
        if c is not None:
            return c if c.exists else None
        return self.tree.nodes.get(path)

    def _get(self, path: str) -> _Record:
        rec = self._lookup(path)
        if rec is None:
            raise ZKError(Code.NONODE, path)
        return rec

    def _existing(self, path: str) -> _Record:
        """The record at a client's path: BADARGUMENTS for an invalid path, else NONODE when
        missing (validatePath, then getRecordForPath). A node of the tree or of a pending create
        has a valid path, so only a miss is validated."""
        rec = self._lookup(path) if path else None
        if rec is None:
            validate_path(path)
            raise ZKError(Code.NONODE, path)
        return rec

    def _add(self, change: _Change) -> None:
        if self._undo is not None:
            self._undo.append((change.path, self._pending.get(change.path)))
        self._pending[change.path] = change
        self._order.append(change)

    def _add_deleted(self, zxid: int, path: str, parent_path: str) -> None:
        """Record the delete of `path` and its parent's loss of a child."""
        parent = self._lookup(parent_path)
        if parent is not None:
            self._add(_Change(zxid, parent_path, True, parent.version, parent.cversion,
                              parent.aversion, parent.ephemeral_owner, parent.acl,
                              _nchildren(parent) - 1))
        self._add(_Change(zxid, path, False, 0, 0, 0, 0, (), 0))

    def _rollback(self) -> None:
        """Undo the change records added since `_undo` was started (a failed multi)."""
        undo = self._undo or []
        pending = self._pending
        for path, previous in reversed(undo):
            self._order.pop()
            if previous is None:
                pending.pop(path, None)
            else:
                pending[path] = previous
        undo.clear()

    # -- ops ----------------------------------------------------------------------------------

    def _create(self, t: int, rec: Any, request: Request, zxid: int) -> Any:
        """pRequest2TxnCreate; the op code decides the node kind, the flags only its mode."""
        flags: int = rec.flags
        if not 0 <= flags <= 6:
            raise ZKError(Code.BADARGUMENTS, rec.path)  # CreateMode.fromFlag
        ephemeral = flags in EPHEMERAL_FLAGS
        ttl: int = rec.ttl if t == _CREATE_TTL else -1
        if flags in TTL_FLAGS:
            if not self.extended_types:
                raise ZKError(Code.UNIMPLEMENTED, rec.path)
            if not 1 <= ttl <= MAX_TTL:
                raise ZKError(Code.BADARGUMENTS, rec.path)
        elif ttl >= 0 or t == _CREATE_TTL:
            raise ZKError(Code.BADARGUMENTS, rec.path)
        path: str | None = rec.path
        if path is None or "/" not in path or "\0" in path:
            raise ZKError(Code.BADARGUMENTS, path)
        parent_path = parent_of(path)
        acl = self.access.fixup(rec.acl, request.auth)
        parent = self._get(parent_path)
        self.access.check(parent.acl, request.auth, _PERM_CREATE)
        if flags in SEQUENTIAL_FLAGS:
            path = f"{path}{parent.cversion:010d}"
        validate_path(path)
        if self._lookup(path) is not None:
            raise ZKError(Code.NODEEXISTS, path)
        if kind_of_owner(parent.ephemeral_owner) == 1:
            raise ZKError(Code.NOCHILDRENFOREPHEMERALS, path)
        cversion = parent.cversion + 1 if parent.cversion < 0x7FFFFFFF else -0x80000000
        body: Any
        if t == _CREATE_CONTAINER:
            body = CreateContainerTxn(path, rec.data, acl, cversion)
            owner = CONTAINER_EPHEMERAL_OWNER
        elif t == _CREATE_TTL:
            body = CreateTTLTxn(path, rec.data, acl, cversion, ttl)
            owner = ttl_owner(ttl)
        else:
            body = CreateTxn(path, rec.data, acl, ephemeral, cversion)
            owner = request.session_id if ephemeral else 0
        self._add(_Change(zxid, parent_path, True, parent.version, cversion, parent.aversion,
                          parent.ephemeral_owner, parent.acl, _nchildren(parent) + 1))
        self._add(_Change(zxid, path, True, 0, 0, 0, owner, acl, 0))
        return body

    def _delete(self, t: int, rec: Any, request: Request, zxid: int) -> DeleteTxn:
        path: str = rec.path
        parent_path = _check_delete_path(path)
        parent = self._get(parent_path)
        self.access.check(parent.acl, request.auth, _PERM_DELETE)
        node = self._get(path)
        _next_version(node.version, rec.version)
        if _nchildren(node):
            raise ZKError(Code.NOTEMPTY, path)
        self._add_deleted(zxid, path, parent_path)
        return DeleteTxn(path)

    def _delete_container(self, t: int, rec: Any, request: Request, zxid: int) -> DeleteTxn:
        """3.9: any empty node but a session's ephemeral (BADVERSION for those)."""
        path: str = rec.path
        parent_path = _check_delete_path(path)
        parent = self._get(parent_path)
        if request.session_id:
            self.access.check(parent.acl, request.auth, _PERM_DELETE)
        node = self._get(path)
        if _nchildren(node):
            raise ZKError(Code.NOTEMPTY, path)
        if kind_of_owner(node.ephemeral_owner) == 1:
            raise ZKError(Code.BADVERSION, path)
        self._add_deleted(zxid, path, parent_path)
        return DeleteTxn(path)

    def _set_data(self, t: int, rec: Any, request: Request, zxid: int) -> SetDataTxn:
        path: str = rec.path
        node = self._existing(path)
        self.access.check(node.acl, request.auth, _PERM_WRITE)
        version = _next_version(node.version, rec.version)
        self._add(_Change(zxid, path, True, version, node.cversion, node.aversion,
                          node.ephemeral_owner, node.acl, _nchildren(node)))
        return SetDataTxn(path, rec.data, version)

    def _set_acl(self, t: int, rec: Any, request: Request, zxid: int) -> SetACLTxn:
        path: str = rec.path
        validate_path(path)
        acl = self.access.fixup(rec.acl, request.auth)  # INVALIDACL before NONODE
        node = self._get(path)
        self.access.check(node.acl, request.auth, Perm.ADMIN)
        aversion = _next_version(node.aversion, rec.version)
        self._add(_Change(zxid, path, True, node.version, node.cversion, aversion,
                          node.ephemeral_owner, acl, _nchildren(node)))
        return SetACLTxn(path, acl, aversion)

    def _check(self, t: int, rec: Any, request: Request, zxid: int) -> CheckVersionTxn:
        """check in a multi: READ permission and the version; the txn holds the next version."""
        path: str = rec.path
        node = self._existing(path)
        self.access.check(node.acl, request.auth, Perm.READ)
        return CheckVersionTxn(path, _next_version(node.version, rec.version))

    def _reconfig(self, t: int, rec: Any, request: Request, zxid: int) -> Any:
        raise ZKError(Code.RECONFIGDISABLED)

    def _create_session(self, t: int, rec: Any, request: Request, zxid: int) -> Any:
        """The session is tracked from here on, as PrepRequestProcessor does, so requests
        ordered behind its createSession are valid before it commits."""
        self.sessions.add(request.session_id, rec.timeOut, self.now_ms())
        return rec

    def _close_session(self, t: int, rec: Any, request: Request, zxid: int) -> CloseSessionTxn:
        """Every ephemeral of the session, pending creates and deletes included; the session
        is marked closing so that its later requests fail."""
        sid = request.session_id
        paths = set(self.tree.ephemerals.get(sid, ()))
        for c in self._order:
            if not c.exists:
                paths.discard(c.path)
            elif c.ephemeral_owner == sid:
                paths.add(c.path)
        doomed = sorted(paths)
        for path in doomed:
            self._add_deleted(zxid, path, parent_of(path))
        self.sessions.set_closing(sid)
        return CloseSessionTxn(doomed)

    # -- multi --------------------------------------------------------------------------------

    def _multi(self, request: Request, zxid: int, now: int) -> Txn:
        """All ops with one zxid, atomically: the first failure rolls back the change records
        the multi made and turns the rest into ErrorTxn(-2)."""
        try:
            plan = self._multi_plan(request.record)
        except ZKError as e:
            return _error_txn(request, zxid, now, e.code)
        failed: int | None = None
        if plan:
            try:
                self.sessions.check(request.session_id)
            except ZKError as e:
                failed = e.code
        subs: list[tuple[int, Any]] = []
        self._undo = []
        try:
            for t, rec in plan:
                if failed is not None:
                    subs.append((OpCode.error, ErrorTxn(
                        failed if not subs else Code.RUNTIMEINCONSISTENCY)))
                    continue
                try:
                    subs.append((t, self._handlers[t](t, rec, request, zxid)))
                except ZKError as e:
                    failed = e.code
                    subs.append((OpCode.error, ErrorTxn(e.code)))
                    self._rollback()
        finally:
            self._undo = None
        return Txn(request.session_id, request.cxid, zxid, now, _MULTI, subs)

    def _multi_plan(self, ops: Any) -> list[tuple[int, Any]]:
        """The (txn type, record) of each op, or MARSHALLINGERROR for the whole request: a
        read or unknown op, or a create flag the op cannot take (3.9: the flags pick a
        container, the op code a plain create's type; TTL flags only under createTTL)."""
        if ops is None:
            raise ZKError(Code.MARSHALLINGERROR)
        plan: list[tuple[int, Any]] = []
        for t, rec in ops:
            if t in _MULTI_PLAIN:
                plan.append((t, rec))
                continue
            if t not in _CREATES and t != _CREATE_TTL:
                raise ZKError(Code.MARSHALLINGERROR)
            flags = rec.flags
            if not 0 <= flags <= 6 or (flags in (5, 6)) != (t == _CREATE_TTL):
                raise ZKError(Code.MARSHALLINGERROR)
            plan.append((_CREATE_CONTAINER if flags == 4 else t, rec))
        return plan


# With the C accelerator, a request's dispatch, the forgetting of applied changes and the common
# cases of setData, create and delete are prepped in C (core.native); the Python methods stay
# for what it hands back, and for the tests. The dispatch in C takes the types whose session is
# checked and whose record is made into a txn by their handler (not check, or the types of
# _NO_SESSION_CHECK), and the multis whose ops _multi_plan passes unchanged: setData, delete,
# check, and create or create2 of a plain, ephemeral or sequential node.
PY_PREP = Prep.prep
PY_APPLIED = Prep.applied
PY_SET_DATA = Prep._set_data
PY_CREATE = Prep._create
PY_DELETE = Prep._delete
if native.MODULE is not None and NODE_VIEW is not None:
    Prep.applied = native.method(native.MODULE.applier(Prep, _Change, PY_APPLIED))  # type: ignore[method-assign]
    Prep.prep = native.method(native.MODULE.prepper(  # type: ignore[method-assign]
        Request, Txn, Prep, SessionTracker, Session, _NO_SESSION_CHECK | {_CHECK}, PY_PREP, ZKError,
        _error_txn, int(_MULTI), _MULTI_PLAIN, frozenset({OpCode.create, OpCode.create2}), CreateRequest))
    Prep._set_data = native.method(native.MODULE.set_data_prepper(  # type: ignore[method-assign]
        NODE_VIEW, _Change, SetDataRequest, SetDataTxn, PY_SET_DATA, int(_PERM_WRITE), Prep, DataTree))
    Prep._create = native.method(native.MODULE.create_prepper(  # type: ignore[method-assign]
        NODE_VIEW, _Change, CreateRequest, CreateTxn, PY_CREATE, int(_PERM_CREATE),
        frozenset({OpCode.create, OpCode.create2}), Prep, DataTree))
    Prep._delete = native.method(native.MODULE.delete_prepper(  # type: ignore[method-assign]
        NODE_VIEW, _Change, DeleteRequest, DeleteTxn, PY_DELETE, int(_PERM_DELETE), Prep, DataTree))
