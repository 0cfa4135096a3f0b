"""core.prep: PrepRequestProcessor semantics, pipelining and multi rollback."""

from __future__ import annotations

from typing import Any

import pytest

from core.acl import OPEN_ACL_UNSAFE, AccessControl
from core.errors import Code
from core.interfaces import PeerInfo, Request
from core.opcodes import CONTAINER_EPHEMERAL_OWNER, MAX_TTL, OpCode, ttl_owner
from core.prep import Prep
from core.records import (
    ACL, CheckVersionRequest, CheckVersionTxn, CloseSessionTxn, CreateContainerTxn,
    CreateRequest, CreateSessionTxn, CreateTTLRequest, CreateTTLTxn, CreateTxn, DeleteRequest,
    DeleteTxn, ErrorTxn, Id, PathRequest, PathWatchRequest, ReconfigRequest, SetACLRequest,
    SetACLTxn, SetDataRequest, SetDataTxn,
)
from core.sessions import SessionTracker
from core.tree import DataTree, TxnResult
from core.txn import Txn, decode_txn, encode_txn

OPEN = list(OPEN_ACL_UNSAFE)
ALICE = Id("digest", "alice:hash")
ALICE_ONLY = [ACL(31, ALICE)]
NOW = 1_700_000_000_000


class DigestLike:
    """A minimal authenticated scheme: ids match when equal."""

    scheme = "digest"
    is_authenticated = True

    def authenticate(self, peer: PeerInfo, auth: bytes) -> list[Id] | None:
        return [Id("digest", auth.decode())]

    def matches(self, id: str, acl_id: str) -> bool:
        return id == acl_id

    def is_valid(self, acl_id: str) -> bool:
        return ":" in acl_id


class World:
    """A tree, sessions and a Prep, with helpers that prep and apply like a standalone server."""

    def __init__(self, extended_types: bool = False) -> None:
        self.tree = DataTree()
        self.sessions = SessionTracker(1, 2000, 0)
        self.access = AccessControl({"digest": DigestLike()})
        self.prep = Prep(self.tree, self.access, self.sessions, extended_types, lambda: NOW)
        self.zxid = 0
        self.cxid = 0
        self.sid = self.new_session()

    def new_session(self) -> int:
        sid = self.sessions.new_session_id()
        self.sessions.add(sid, 30000, 0)
        return sid

    def make(self, t: int, record: Any, sid: int | None = None,
             auth: list[Id] | None = None) -> Txn:
        """Prep without applying (the txn stays outstanding)."""
        self.zxid += 1
        self.cxid += 1
        req = Request(self.sid if sid is None else sid, self.cxid, t, record, b"", auth or [])
        return self.prep.prep(req, self.zxid)

    def commit(self, txn: Txn) -> TxnResult:
        result = self.tree.apply(txn)
        self.prep.applied(txn.zxid)
        return result

    def do(self, t: int, record: Any, **kw: Any) -> tuple[Txn, TxnResult]:
        txn = self.make(t, record, **kw)
        return txn, self.commit(txn)

    def create(self, path: str, flags: int = 0, data: bytes = b"", acl: list[ACL] | None = None,
               t: int = OpCode.create, **kw: Any) -> Txn:
        txn, _ = self.do(t, CreateRequest(path, data, OPEN if acl is None else acl, flags), **kw)
        return txn


def err(txn: Txn) -> int:
    assert txn.type == OpCode.error, txn
    return int(txn.body.err)


@pytest.fixture
def w() -> World:
    return World()


@pytest.fixture
def wx() -> World:
    return World(extended_types=True)


# -- create -----------------------------------------------------------------------------------


def test_create_txn_fixes_header_and_parent_cversion(w: World) -> None:
    txn = w.create("/a", data=b"v")
    assert (txn.clientId, txn.cxid, txn.zxid, txn.time, txn.type) == (w.sid, 1, 1, NOW, OpCode.create)
    assert txn.body == CreateTxn("/a", b"v", tuple(OPEN), False, 1)
    txn = w.create("/b", t=OpCode.create2)
    assert txn.type == OpCode.create2 and txn.body.parentCVersion == 2
    assert w.tree.get("/b").ctime == NOW


def test_sequential_suffix_is_the_parents_persisted_cversion(w: World) -> None:
    w.create("/p")
    w.create("/p/x")
    w.do(OpCode.delete, DeleteRequest("/p/x", -1))
    assert w.create("/p/s-", flags=2).body.path == "/p/s-0000000001"
    assert w.create("/p/s-", flags=2).body.path == "/p/s-0000000002"
    assert w.tree.get("/p").stat().cversion == 4  # 3 creates + 1 delete, as 2*3 - 2
    assert w.tree.get("/p").cversion == 3


def test_trailing_slash_with_sequential_flag_creates_a_numbered_child(w: World) -> None:
    w.create("/a")
    for _ in range(7):
        w.create("/a/n", flags=2)
    assert w.create("/a/", flags=2).body.path == "/a/0000000007"
    assert "/a/0000000007" in w.tree.nodes


def test_create_path_errors(w: World) -> None:
    assert err(w.create("/")) == Code.NODEEXISTS
    assert err(w.create("/missing/")) == Code.NONODE  # parent looked up before validation
    w.create("/a")
    assert err(w.create("/a/")) == Code.BADARGUMENTS
    assert err(w.create("a")) == Code.BADARGUMENTS
    assert err(w.create("")) == Code.BADARGUMENTS
    assert err(w.create("/a\x00b")) == Code.BADARGUMENTS
    assert err(w.create("/a/.")) == Code.BADARGUMENTS
    assert err(w.create("/a/\U0001f600")) == Code.BADARGUMENTS
    assert err(w.create("/a")) == Code.NODEEXISTS
    assert err(w.create("/x/y")) == Code.NONODE


def test_create_acl_and_permission_errors(w: World) -> None:
    assert err(w.create("/a", acl=[])) == Code.INVALIDACL
    assert err(w.create("/missing/b", acl=[])) == Code.INVALIDACL  # fixupACL before the parent
    assert err(w.create("/a", acl=[ACL(31, Id("nosuch", "x"))])) == Code.INVALIDACL
    assert err(w.create("/a", acl=[ACL(31, Id("auth", ""))])) == Code.INVALIDACL
    w.create("/locked", acl=ALICE_ONLY, auth=[ALICE])
    assert err(w.create("/locked/c")) == Code.NOAUTH
    assert w.create("/locked/c", auth=[ALICE]).type == OpCode.create
    assert err(w.create("/locked/c", auth=[ALICE])) == Code.NODEEXISTS


def test_auth_acl_expands_to_the_callers_ids(w: World) -> None:
    txn = w.create("/mine", acl=[ACL(31, Id("auth", ""))], auth=[ALICE])
    assert txn.body.acl == tuple(ALICE_ONLY)


def test_no_children_for_ephemerals(w: World) -> None:
    txn = w.create("/e", flags=1)
    assert txn.body.ephemeral is True
    assert w.tree.get("/e").ephemeral_owner == w.sid
    assert err(w.create("/e/c")) == Code.NOCHILDRENFOREPHEMERALS
    assert err(w.create("/e/c", flags=2)) == Code.NOCHILDRENFOREPHEMERALS


def test_container_parent_takes_children(w: World) -> None:
    w.create("/c", t=OpCode.createContainer)
    assert w.create("/c/x").type == OpCode.create


# -- create flags and node kinds --------------------------------------------------------------


@pytest.mark.parametrize("flags", [-1, 7, 100])
def test_unknown_flag_is_badarguments(w: World, flags: int) -> None:
    assert err(w.create("/a", flags=flags)) == Code.BADARGUMENTS


def test_outside_multi_the_op_code_decides(w: World) -> None:
    txn = w.create("/plain", flags=4)
    assert txn.type == OpCode.create and isinstance(txn.body, CreateTxn)
    assert w.tree.get("/plain").ephemeral_owner == 0 and w.tree.containers == set()
    txn = w.create("/cont", flags=0, t=OpCode.createContainer)
    assert txn.type == OpCode.createContainer
    assert txn.body == CreateContainerTxn("/cont", b"", tuple(OPEN), 2)
    assert w.tree.get("/cont").ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    assert w.create("/cseq", flags=2, t=OpCode.createContainer).body.path == "/cseq0000000002"


def test_ttl_flags_without_extended_types(w: World) -> None:
    assert err(w.create("/a", flags=5)) == Code.UNIMPLEMENTED
    assert err(w.create("/a", flags=6, t=OpCode.create2)) == Code.UNIMPLEMENTED
    ttl = CreateTTLRequest("/t", b"", OPEN, 5, 1000)
    assert err(w.make(OpCode.createTTL, ttl)) == Code.UNIMPLEMENTED
    ttl = CreateTTLRequest("/t", b"", OPEN, 0, 1000)
    assert err(w.make(OpCode.createTTL, ttl)) == Code.BADARGUMENTS


def test_ttl_rules_with_extended_types(wx: World) -> None:
    assert err(wx.create("/a", flags=5)) == Code.BADARGUMENTS  # create/create2 with a TTL flag
    for flags, ttl in [(5, 0), (5, -1), (6, MAX_TTL + 1), (0, 1000), (0, -1), (1, 5), (4, 5)]:
        txn = wx.make(OpCode.createTTL, CreateTTLRequest("/t", b"", OPEN, flags, ttl))
        assert err(txn) == Code.BADARGUMENTS, (flags, ttl)
    txn, r = wx.do(OpCode.createTTL, CreateTTLRequest("/t", b"x", OPEN, 5, MAX_TTL))
    assert txn.body == CreateTTLTxn("/t", b"x", tuple(OPEN), 1, MAX_TTL)
    assert wx.tree.get("/t").ephemeral_owner == ttl_owner(MAX_TTL) and r.stat.ephemeralOwner == 0
    txn, _ = wx.do(OpCode.createTTL, CreateTTLRequest("/s-", b"", OPEN, 6, 10))
    assert txn.body.path == "/s-0000000001" and wx.tree.ttls == {"/t", "/s-0000000001"}


# -- pipelining -------------------------------------------------------------------------------


def test_create_then_child_before_apply(w: World) -> None:
    t1 = w.make(OpCode.create, CreateRequest("/a", b"", OPEN, 0))
    t2 = w.make(OpCode.create, CreateRequest("/a/b", b"", OPEN, 0))
    t3 = w.make(OpCode.create, CreateRequest("/a/s", b"", OPEN, 2))
    assert (t1.type, t2.type, t3.type) == (1, 1, 1)
    assert (t2.body.parentCVersion, t3.body.path, t3.body.parentCVersion) == (1, "/a/s0000000001", 2)
    assert err(w.make(OpCode.create, CreateRequest("/a/b", b"", OPEN, 0))) == Code.NODEEXISTS
    assert err(w.make(OpCode.delete, DeleteRequest("/a", -1))) == Code.NOTEMPTY
    for t in (t1, t2, t3):
        assert w.commit(t).err == 0
    assert w.prep.pending_count() == 0
    assert sorted(w.tree.get("/a").children) == ["b", "s0000000001"]


def test_pipelined_versions_and_deletes(w: World) -> None:
    w.create("/a")
    s1 = w.make(OpCode.setData, SetDataRequest("/a", b"1", 0))
    s2 = w.make(OpCode.setData, SetDataRequest("/a", b"2", 1))
    assert (s1.body.version, s2.body.version) == (1, 2)
    assert err(w.make(OpCode.setData, SetDataRequest("/a", b"3", 1))) == Code.BADVERSION
    d = w.make(OpCode.delete, DeleteRequest("/a", 2))
    assert d.type == OpCode.delete
    assert err(w.make(OpCode.setData, SetDataRequest("/a", b"", -1))) == Code.NONODE
    c = w.make(OpCode.create, CreateRequest("/a", b"again", OPEN, 0))
    assert c.type == OpCode.create and c.body.parentCVersion == 2
    for t in (s1, s2, d, c):
        assert w.commit(t).err == 0
    assert w.tree.get("/a").data == b"again" and w.tree.get("/a").version == 0


def test_applied_keeps_later_records(w: World) -> None:
    w.create("/a")
    t1 = w.make(OpCode.setData, SetDataRequest("/a", b"1", -1))
    w.make(OpCode.setData, SetDataRequest("/a", b"2", -1))  # still pending after t1 commits
    w.commit(t1)
    assert w.prep.pending_count() == 1
    assert w.make(OpCode.setData, SetDataRequest("/a", b"3", 2)).body.version == 3


def test_set_acl_applies_to_requests_prepped_after_it(w: World) -> None:
    w.create("/a")
    w.make(OpCode.setACL, SetACLRequest("/a", ALICE_ONLY, -1))
    assert err(w.make(OpCode.setData, SetDataRequest("/a", b"", -1))) == Code.NOAUTH
    assert w.make(OpCode.setData, SetDataRequest("/a", b"", -1), auth=[ALICE]).type == 5


# -- delete -----------------------------------------------------------------------------------


def test_delete(w: World) -> None:
    w.create("/p")
    w.create("/p/c")
    assert err(w.make(OpCode.delete, DeleteRequest("/p", -1))) == Code.NOTEMPTY
    assert err(w.make(OpCode.delete, DeleteRequest("/p/c", 3))) == Code.BADVERSION
    assert err(w.make(OpCode.delete, DeleteRequest("/p/x", -1))) == Code.NONODE
    assert err(w.make(OpCode.delete, DeleteRequest("/q/x", -1))) == Code.NONODE
    txn, r = w.do(OpCode.delete, DeleteRequest("/p/c", 0))
    assert txn.body == DeleteTxn("/p/c") and r.err == 0
    assert w.do(OpCode.delete, DeleteRequest("/p", -1))[1].err == 0


@pytest.mark.parametrize("path", ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config",
                                  "", "nodash", "/a\x00"])
def test_delete_special_or_bad_paths_is_badarguments(w: World, path: str) -> None:
    assert err(w.make(OpCode.delete, DeleteRequest(path, -1))) == Code.BADARGUMENTS


def test_delete_below_quota_is_allowed(w: World) -> None:
    w.create("/zookeeper/quota/x")
    assert w.do(OpCode.delete, DeleteRequest("/zookeeper/quota/x", -1))[1].err == 0


def test_delete_needs_delete_on_the_parent(w: World) -> None:
    w.create("/p", acl=[ACL(31 & ~8, Id("world", "anyone"))])
    w.create("/p/c", acl=ALICE_ONLY, auth=[ALICE])
    assert err(w.make(OpCode.delete, DeleteRequest("/p/c", -1), auth=[ALICE])) == Code.NOAUTH
    assert err(w.make(OpCode.delete, DeleteRequest("/p/gone", -1))) == Code.NOAUTH  # before NONODE


# -- setData, setACL, check -------------------------------------------------------------------


def test_set_data(w: World) -> None:
    w.create("/a")
    txn, r = w.do(OpCode.setData, SetDataRequest("/a", b"x", 0))
    assert txn.body == SetDataTxn("/a", b"x", 1) and r.stat.version == 1
    assert err(w.make(OpCode.setData, SetDataRequest("/a", b"x", 0))) == Code.BADVERSION
    assert err(w.make(OpCode.setData, SetDataRequest("/b", b"x", -1))) == Code.NONODE
    assert err(w.make(OpCode.setData, SetDataRequest("/a/", b"x", -1))) == Code.BADARGUMENTS
    assert err(w.make(OpCode.setData, SetDataRequest("/zookeeper/config", b"", -1))) == Code.NOAUTH


def test_version_wraps_and_skips_minus_one(w: World) -> None:
    w.create("/a")
    w.tree.get("/a").version = 0x7FFFFFFF
    txn, _ = w.do(OpCode.setData, SetDataRequest("/a", b"", 0x7FFFFFFF))
    assert txn.body.version == -0x80000000
    w.tree.get("/a").version = -2
    txn, _ = w.do(OpCode.setData, SetDataRequest("/a", b"", -2))
    assert txn.body.version == 0  # ZOOKEEPER-4743: never -1


def test_set_acl(w: World) -> None:
    w.create("/a")
    txn, r = w.do(OpCode.setACL, SetACLRequest("/a", ALICE_ONLY, 0))
    assert txn.body == SetACLTxn("/a", tuple(ALICE_ONLY), 1) and r.stat.aversion == 1
    assert err(w.make(OpCode.setACL, SetACLRequest("/a", OPEN, -1))) == Code.NOAUTH
    assert err(w.make(OpCode.setACL, SetACLRequest("/a", OPEN, 0), auth=[ALICE])) == Code.BADVERSION
    assert err(w.make(OpCode.setACL, SetACLRequest("/a", [], -1), auth=[ALICE])) == Code.INVALIDACL
    assert err(w.make(OpCode.setACL, SetACLRequest("/b", OPEN, -1))) == Code.NONODE
    txn, _ = w.do(OpCode.setACL, SetACLRequest("/zookeeper/config", OPEN, -1), auth=[Id("super", "")])
    assert txn.body.version == 0  # config's aversion starts at -1


def test_top_level_check_is_unimplemented(w: World) -> None:
    assert err(w.make(OpCode.check, CheckVersionRequest("/zookeeper", 0))) == Code.UNIMPLEMENTED


def test_reconfig_is_disabled(w: World) -> None:
    txn = w.make(OpCode.reconfig, ReconfigRequest(None, None, "server.1=x", -1))
    assert err(txn) == Code.RECONFIGDISABLED
    assert txn.zxid == 1


# -- sessions ---------------------------------------------------------------------------------


def test_create_session(w: World) -> None:
    sid = w.sessions.new_session_id()
    txn = w.make(OpCode.createSession, CreateSessionTxn(20000), sid=sid)
    assert txn.type == OpCode.createSession and txn.body == CreateSessionTxn(20000)
    assert txn.clientId == sid


def test_expired_or_unknown_session_is_sessionexpired(w: World) -> None:
    assert err(w.create("/a", sid=12345)) == Code.SESSIONEXPIRED
    w.sessions.set_closing(w.sid)
    txn = w.create("/a")
    assert err(txn) == Code.SESSIONEXPIRED
    assert (txn.zxid, txn.cxid, txn.clientId) == (2, 2, w.sid)


def test_close_session_lists_applied_and_pending_ephemerals(w: World) -> None:
    other = w.new_session()
    w.create("/e1", flags=1)
    w.create("/e2", flags=1)
    w.create("/theirs", flags=1, sid=other)
    w.create("/p")
    pending_create = w.make(OpCode.create, CreateRequest("/p/e3", b"", OPEN, 3))
    pending_delete = w.make(OpCode.delete, DeleteRequest("/e2", -1))
    close = w.make(OpCode.closeSession, None)
    assert close.type == OpCode.closeSession
    assert close.body == CloseSessionTxn(["/e1", "/p/e30000000000"])
    assert w.sessions.sessions[w.sid].closing
    assert err(w.create("/late")) == Code.SESSIONEXPIRED
    # the close empties /p for requests prepped after it
    delete_parent = w.make(OpCode.delete, DeleteRequest("/p", -1), sid=other)
    assert delete_parent.type == OpCode.delete
    for t in (pending_create, pending_delete, close, delete_parent):
        assert w.commit(t).err == 0
    assert "/theirs" in w.tree.nodes
    assert not {"/e1", "/e2", "/p/e30000000000", "/p"} & set(w.tree.nodes)
    assert w.tree.ephemerals == {other: {"/theirs"}}


def test_close_session_of_expiring_session_succeeds(w: World) -> None:
    w.create("/e", flags=1)
    w.sessions.set_closing(w.sid)  # the expiry path marks it first
    txn, _ = w.do(OpCode.closeSession, None)
    assert txn.body == CloseSessionTxn(["/e"]) and "/e" not in w.tree.nodes
    txn = w.make(OpCode.closeSession, None)
    assert txn.body == CloseSessionTxn([])


# -- deleteContainer --------------------------------------------------------------------------


def test_delete_container_from_the_server(w: World) -> None:
    w.create("/c", t=OpCode.createContainer, acl=ALICE_ONLY, auth=[ALICE])
    w.create("/c/x", auth=[ALICE])
    assert err(w.make(OpCode.deleteContainer, PathRequest("/c"), sid=0)) == Code.NOTEMPTY
    w.do(OpCode.delete, DeleteRequest("/c/x", -1), auth=[ALICE])
    txn, r = w.do(OpCode.deleteContainer, DeleteTxn("/c"), sid=0)
    assert txn.type == OpCode.deleteContainer and txn.body == DeleteTxn("/c") and r.err == 0
    assert txn.clientId == 0


def test_delete_container_from_a_client(w: World) -> None:
    w.create("/locked", acl=[ACL(31 & ~8, Id("world", "anyone"))])
    w.create("/locked/plain")
    w.create("/e", flags=1)
    assert err(w.make(OpCode.deleteContainer, PathRequest("/locked/plain"))) == Code.NOAUTH
    assert w.make(OpCode.deleteContainer, PathRequest("/locked/plain"), sid=0).type == 20
    assert err(w.make(OpCode.deleteContainer, PathRequest("/e"))) == Code.BADVERSION
    assert err(w.make(OpCode.deleteContainer, PathRequest("/zookeeper"))) == Code.BADARGUMENTS
    assert err(w.make(OpCode.deleteContainer, PathRequest("/nope"))) == Code.NONODE
    assert err(w.make(OpCode.deleteContainer, PathRequest("/e"), sid=999)) == Code.SESSIONEXPIRED


# -- multi ------------------------------------------------------------------------------------


def multi(*ops: tuple[int, Any]) -> list[tuple[int, Any]]:
    return list(ops)


def test_multi_success(w: World) -> None:
    w.create("/a")
    txn, r = w.do(OpCode.multi, multi(
        (OpCode.create, CreateRequest("/m", b"", OPEN, 0)),
        (OpCode.create2, CreateRequest("/m/c", b"", OPEN, 2)),
        (OpCode.check, CheckVersionRequest("/a", 0)),
        (OpCode.setData, SetDataRequest("/m", b"x", 0)),
        (OpCode.delete, DeleteRequest("/a", -1)),
    ))
    assert txn.type == OpCode.multi and txn.time == NOW
    assert [t for t, _ in txn.body] == [1, 15, 13, 5, 2]
    assert txn.body[1][1].path == "/m/c0000000000"
    assert txn.body[2][1] == CheckVersionTxn("/a", 1)  # the current version + 1
    assert txn.body[3][1] == SetDataTxn("/m", b"x", 1)
    assert r.err == 0 and [s.err for s in r.multi] == [0] * 5
    assert "/a" not in w.tree.nodes and w.tree.get("/m").data == b"x"
    assert decode_txn(encode_txn(txn)) == txn


def test_failed_multi_keeps_prepped_subtxns_and_rolls_back_records(w: World) -> None:
    w.create("/p")
    w.create("/p/seq", flags=2)
    txn = w.make(OpCode.multi, multi(
        (OpCode.create, CreateRequest("/p/new", b"", OPEN, 0)),
        (OpCode.create, CreateRequest("/p/s", b"", OPEN, 2)),
        (OpCode.setData, SetDataRequest("/p", b"", 5)),
        (OpCode.delete, DeleteRequest("/p", -1)),
    ))
    assert txn.type == OpCode.multi and txn.zxid == 3
    assert [t for t, _ in txn.body] == [1, 1, -1, -1]
    assert txn.body[1][1].path == "/p/s0000000002"
    assert txn.body[2][1] == ErrorTxn(Code.BADVERSION)
    assert txn.body[3][1] == ErrorTxn(Code.RUNTIMEINCONSISTENCY)
    assert w.prep.pending_count() == 0
    # nothing of the multi is pending: the sequence number and the node are free again
    assert err(w.make(OpCode.create, CreateRequest("/p/new/x", b"", OPEN, 0))) == Code.NONODE
    assert w.make(OpCode.create, CreateRequest("/p/s", b"", OPEN, 2)).body.path == "/p/s0000000001"
    r = w.commit(txn)
    assert r.err == 0
    assert [(s.type, s.err) for s in r.multi] == [(-1, 0), (-1, 0), (-1, -103), (-1, -2)]
    assert "/p/new" not in w.tree.nodes


def test_failed_multi_restores_earlier_pending_records(w: World) -> None:
    w.create("/p")
    outside = w.make(OpCode.setData, SetDataRequest("/p", b"", 0))
    w.make(OpCode.multi, multi(
        (OpCode.setData, SetDataRequest("/p", b"", 1)),
        (OpCode.create, CreateRequest("/p/c", b"", OPEN, 2)),
        (OpCode.check, CheckVersionRequest("/p", 99)),
    ))
    assert outside.body.version == 1
    assert w.make(OpCode.setData, SetDataRequest("/p", b"", 1)).body.version == 2
    assert w.make(OpCode.create, CreateRequest("/p/c", b"", OPEN, 2)).body.path == "/p/c0000000000"


def test_multi_error_codes(w: World) -> None:
    w.create("/e", flags=1)
    for op, code in [
        ((OpCode.create, CreateRequest("/e/x", b"", OPEN, 0)), Code.NOCHILDRENFOREPHEMERALS),
        ((OpCode.check, CheckVersionRequest("/nope", -1)), Code.NONODE),
        ((OpCode.check, CheckVersionRequest("/e", 3)), Code.BADVERSION),
        ((OpCode.delete, DeleteRequest("/zookeeper", -1)), Code.BADARGUMENTS),
    ]:
        txn = w.make(OpCode.multi, multi(op))
        assert txn.body == [(OpCode.error, ErrorTxn(code))]


def test_multi_create_flags_follow_39(w: World, wx: World) -> None:
    txn = w.make(OpCode.multi, multi(
        (OpCode.create, CreateRequest("/c1", b"", OPEN, 4)),
        (OpCode.create2, CreateRequest("/c2", b"", OPEN, 4)),
        (OpCode.createContainer, CreateRequest("/c3", b"", OPEN, 0)),
        (OpCode.create2, CreateRequest("/p2", b"", OPEN, 0)),
        (OpCode.create, CreateRequest("/p1", b"", OPEN, 1)),
    ))
    assert [t for t, _ in txn.body] == [19, 19, 19, 15, 1]
    assert isinstance(txn.body[0][1], CreateContainerTxn) and txn.body[4][1].ephemeral
    txn = wx.make(OpCode.multi, multi(
        (OpCode.createTTL, CreateTTLRequest("/t", b"", OPEN, 5, 100)),
    ))
    assert txn.body == [(OpCode.createTTL, CreateTTLTxn("/t", b"", tuple(OPEN), 1, 100))]
    txn = w.make(OpCode.multi, multi(
        (OpCode.createTTL, CreateTTLRequest("/t", b"", OPEN, 5, 100)),
    ))
    assert txn.body == [(OpCode.error, ErrorTxn(Code.UNIMPLEMENTED))]


@pytest.mark.parametrize("op", [
    (OpCode.getData, PathWatchRequest("/", False)),
    (OpCode.getChildren, PathWatchRequest("/", False)),
    (OpCode.setACL, SetACLRequest("/", OPEN, -1)),
    (OpCode.multi, []),
    (OpCode.create, CreateRequest("/a", b"", OPEN, 5)),
    (OpCode.create2, CreateRequest("/a", b"", OPEN, 9)),
    (OpCode.createTTL, CreateTTLRequest("/a", b"", OPEN, 0, 10)),
])
def test_multi_marshalling_errors_fail_the_whole_request(wx: World, op: tuple[int, Any]) -> None:
    ok = (OpCode.create, CreateRequest("/ok", b"", OPEN, 0))
    txn = wx.make(OpCode.multi, multi(ok, op))
    assert txn.type == OpCode.error and txn.body == ErrorTxn(Code.MARSHALLINGERROR)
    assert wx.prep.pending_count() == 0


def test_multi_of_expired_session(w: World) -> None:
    txn = w.make(OpCode.multi, multi(
        (OpCode.create, CreateRequest("/a", b"", OPEN, 0)),
        (OpCode.create, CreateRequest("/b", b"", OPEN, 0)),
    ), sid=4242)
    assert txn.body == [(OpCode.error, ErrorTxn(Code.SESSIONEXPIRED)),
                        (OpCode.error, ErrorTxn(Code.RUNTIMEINCONSISTENCY))]


def test_empty_multi(w: World) -> None:
    txn, r = w.do(OpCode.multi, [])
    assert txn.type == OpCode.multi and txn.body == [] and r.multi == []


# -- misc -------------------------------------------------------------------------------------


def test_missing_record_is_marshallingerror(w: World) -> None:
    assert err(w.make(OpCode.setData, None)) == Code.MARSHALLINGERROR
    assert err(w.make(OpCode.multi, None)) == Code.MARSHALLINGERROR


def test_requests_that_make_no_txn_raise(w: World) -> None:
    with pytest.raises(ValueError):
        w.make(OpCode.getData, PathWatchRequest("/", False))


def test_error_txns_encode(w: World) -> None:
    txn = w.create("/")
    assert decode_txn(encode_txn(txn)) == txn


# -- pipelining is invisible: batches prepped ahead of apply give the serial txns --------------

PATHS = ["/a", "/a", "/d", "/d", "/a/b", "/a/b", "/a/b/c", "/d/", "/a/"]


def _op_strategy() -> Any:
    """(session index, op type, record): session 1 may close; session 0 never does."""
    from hypothesis import strategies as st

    path = st.sampled_from(PATHS)
    version = st.sampled_from([-1, -1, -1, 0, 1])
    single = st.one_of(
        st.builds(lambda p, f: (OpCode.create, CreateRequest(p, b"", OPEN, f)),
                  path, st.sampled_from([0, 1, 2, 3])),
        st.builds(lambda p, v: (OpCode.delete, DeleteRequest(p, v)), path, version),
        st.builds(lambda p, v: (OpCode.setData, SetDataRequest(p, b"x", v)), path, version),
    )
    multi_op = st.lists(st.one_of(single, st.builds(
        lambda p, v: (OpCode.check, CheckVersionRequest(p, v)), path, version)), max_size=3)
    op = st.one_of(single, st.builds(lambda ops: (OpCode.multi, ops), multi_op))
    close = (1, (OpCode.closeSession, None))
    return st.builds(lambda who, o, roll: close if roll == 0 else (who, o),
                     st.sampled_from([0, 1]), op, st.integers(0, 15))


def test_pipelined_prep_matches_serial_prep() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    @given(st.lists(_op_strategy(), max_size=30), st.integers(min_value=1, max_value=8))
    def check(ops: list[tuple[int, tuple[int, Any]]], batch: int) -> None:
        serial, piped = World(), World()
        sids = [serial.sid, serial.new_session()]
        assert piped.new_session() == sids[1]
        serial_txns = []
        for who, (t, rec) in ops:
            txn = serial.make(t, rec, sid=sids[who])
            serial.commit(txn)
            serial_txns.append(txn)
        piped_txns: list[Txn] = []
        for start in range(0, len(ops), batch):
            made = [piped.make(t, rec, sid=sids[who]) for who, (t, rec) in ops[start:start + batch]]
            for txn in made:
                piped.commit(txn)
            piped_txns.extend(made)
        assert piped_txns == serial_txns
        assert piped.tree.digest == serial.tree.digest
        assert sorted(piped.tree.nodes) == sorted(serial.tree.nodes)
        assert piped.tree.ephemerals == serial.tree.ephemerals
        assert piped.prep.pending_count() == 0

    check()
