"""core.tree: DataTree.apply with ZooKeeper's DataTree semantics."""

from __future__ import annotations

from typing import Any

import pytest

from core.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from core.errors import Code
from core.opcodes import CONTAINER_EPHEMERAL_OWNER, EventType, OpCode, ttl_owner
from core.records import (
    ACL, CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTTLTxn,
    CreateTxn, DeleteTxn, ErrorTxn, GetChildrenResponse, Id, SetACLTxn, SetDataTxn,
)
from core.tree import DataTree, Node, node_digest
from core.txn import Txn, decode_txn, encode_txn

SESSION = 0x0100000000000001
OPEN = list(OPEN_ACL_UNSAFE)
DIGEST_ACL = [ACL(31, Id("digest", "u:x"))]


class Recorder:
    """A TreeListener keeping every trigger."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int, tuple[ACL, ...]]] = []

    def triggered(self, path: str, event_type: int, zxid: int, acl: tuple[ACL, ...]) -> None:
        self.events.append((path, event_type, zxid, acl))


def txn(t: int, body: Any, zxid: int, client: int = SESSION, time: int | None = None) -> Txn:
    return Txn(client, zxid, zxid, 1000 + zxid if time is None else time, t, body)


def create(path: str, zxid: int, cversion: int, data: bytes = b"d", ephemeral: bool = False,
           acl: list[ACL] | None = None, t: int = OpCode.create) -> Txn:
    return txn(t, CreateTxn(path, data, acl or OPEN, ephemeral, cversion), zxid)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def tree(rec: Recorder) -> DataTree:
    return DataTree(rec)


def full_digest(tree: DataTree) -> int:
    total = sum(node_digest(p, n) for p, n in tree.nodes.items() if p != "")
    total &= (1 << 64) - 1
    return total - (1 << 64) if total >= 1 << 63 else total


# -- the initial tree -------------------------------------------------------------------------


def test_initial_nodes(tree: DataTree) -> None:
    assert sorted(tree.nodes) == ["", "/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]
    assert tree.get("") is tree.get("/")
    assert len(tree.nodes) == 5  # ZooKeeper's srvr "Node count: 5"
    assert set(tree.get("/").children) == {"zookeeper"}
    assert set(tree.get("/zookeeper").children) == {"quota", "config"}
    assert tree.get("/zookeeper/quota").acl == OPEN_ACL_UNSAFE
    config = tree.get("/zookeeper/config")
    assert config.acl == READ_ACL_UNSAFE
    assert config.aversion == -1
    assert tree.get("/").stat().numChildren == 1
    assert tree.last_zxid == 0
    assert tree.descendants_count("/") == 3


def test_initial_digest_counts_root_and_zookeeper_only(tree: DataTree) -> None:
    assert tree.digest == full_digest(tree)
    assert node_digest("/zookeeper/quota", tree.get("/zookeeper/quota")) == 0
    assert node_digest("/zookeeper", tree.get("/zookeeper")) != 0


# -- create -----------------------------------------------------------------------------------


def test_create_sets_stat_and_parent(tree: DataTree, rec: Recorder) -> None:
    r = tree.apply(create("/a", 5, cversion=1, data=b"hello"))
    assert (r.type, r.err, r.path) == (OpCode.create, 0, "/a")
    node = tree.get("/a")
    assert node.data == b"hello"
    s = r.stat
    assert (s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime) == (5, 5, 5, 1005, 1005)
    assert (s.version, s.cversion, s.aversion, s.ephemeralOwner) == (0, 0, 0, 0)
    assert (s.dataLength, s.numChildren) == (5, 0)
    root = tree.get("/")
    assert (root.cversion, root.pzxid) == (1, 5)
    assert tree.last_zxid == 5
    assert rec.events == [("/a", EventType.NodeCreated, 5, OPEN_ACL_UNSAFE),
                          ("/", EventType.NodeChildrenChanged, 5, OPEN_ACL_UNSAFE)]


def test_listener_gets_node_acl_and_parent_acl(tree: DataTree, rec: Recorder) -> None:
    tree.apply(create("/p", 1, 1, acl=DIGEST_ACL))
    rec.events.clear()
    tree.apply(create("/p/c", 2, 1))
    assert rec.events[0][3] == tuple(OPEN)
    assert rec.events[1][0] == "/p"
    assert rec.events[1][3] == tuple(DIGEST_ACL)


def test_client_cversion_counts_creates_and_deletes(tree: DataTree) -> None:
    tree.apply(create("/p", 1, 1))
    tree.apply(create("/p/a", 2, 1))
    tree.apply(create("/p/b", 3, 2))
    tree.apply(txn(OpCode.delete, DeleteTxn("/p/a"), 4))
    p = tree.get("/p")
    assert p.cversion == 2  # persisted: creates only
    s = p.stat()
    assert (s.cversion, s.numChildren, s.pzxid) == (3, 1, 4)  # 2*2 - 1


def test_ephemeral_owner_is_the_client_id(tree: DataTree) -> None:
    r = tree.apply(create("/e", 1, 1, ephemeral=True))
    assert r.stat.ephemeralOwner == SESSION
    assert tree.ephemerals == {SESSION: {"/e"}}
    assert tree.session_ephemerals(SESSION) == {"/e"}
    assert tree.session_ephemerals(7) == set()


def test_container_and_ttl_owners_are_hidden_from_clients(tree: DataTree) -> None:
    r = tree.apply(txn(OpCode.createContainer, CreateContainerTxn("/c", b"", OPEN, 1), 1))
    assert (r.type, r.err) == (OpCode.createContainer, 0)
    assert tree.get("/c").ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    assert r.stat.ephemeralOwner == 0
    r = tree.apply(txn(OpCode.createTTL, CreateTTLTxn("/t", b"", OPEN, 2, 5000), 2))
    assert tree.get("/t").ephemeral_owner == ttl_owner(5000)
    assert ttl_owner(5000) == -0xFFFFFFFFFFEC78  # 0xff00000000001388 as a signed long
    assert r.stat.ephemeralOwner == 0
    assert tree.containers == {"/c"}
    assert tree.ttls == {"/t"}
    assert tree.ephemerals == {}


def test_create2_result_has_type_15(tree: DataTree) -> None:
    r = tree.apply(create("/a", 1, 1, t=OpCode.create2))
    assert r.type == OpCode.create2 and r.stat.czxid == 1


def test_create_without_parent_is_nonode(tree: DataTree, rec: Recorder) -> None:
    r = tree.apply(create("/x/y", 3, 1))
    assert (r.err, r.path) == (Code.NONODE, "/x/y")
    assert "/x/y" not in tree.nodes and rec.events == []
    assert tree.last_zxid == 3


def test_replayed_create_of_existing_node_resets_acl_and_raises_cversion(tree: DataTree) -> None:
    tree.apply(create("/a", 1, 1))
    r = tree.apply(create("/a", 9, 5, acl=DIGEST_ACL, data=b"other"))
    assert r.err == Code.NODEEXISTS
    assert tree.get("/a").acl == tuple(DIGEST_ACL)  # ZooKeeper sets the txn's ACL
    assert tree.get("/a").data == b"d"
    assert (tree.get("/").cversion, tree.get("/").pzxid) == (5, 9)
    r = tree.apply(create("/a", 10, 3))  # lower cversion: no change
    assert (tree.get("/").cversion, tree.get("/").pzxid) == (5, 9)


def test_parent_cversion_only_raised_on_replay(tree: DataTree) -> None:
    tree.apply(create("/p", 1, 1))
    tree.get("/p").cversion = 10  # a fuzzy snapshot already holds later creates
    tree.get("/p").pzxid = 20
    tree.apply(create("/p/a", 3, 4))
    p = tree.get("/p")
    assert (p.cversion, p.pzxid) == (10, 20)
    assert "a" in p.children


def test_parent_cversion_minus_one_means_increment(tree: DataTree) -> None:
    tree.apply(create("/a", 1, -1))
    assert tree.get("/").cversion == 1


def test_null_data_is_stored_empty(tree: DataTree) -> None:
    tree.apply(create("/a", 1, 1, data=None))  # type: ignore[arg-type]
    assert tree.get("/a").data == b""


def test_acls_are_shared(tree: DataTree) -> None:
    tree.apply(create("/a", 1, 1, acl=[ACL(31, Id("world", "anyone"))]))
    tree.apply(create("/b", 2, 2, acl=[ACL(31, Id("world", "anyone"))]))
    assert tree.get("/a").acl is tree.get("/b").acl


# -- delete -----------------------------------------------------------------------------------


def test_delete(tree: DataTree, rec: Recorder) -> None:
    tree.apply(create("/p", 1, 1, acl=DIGEST_ACL))
    tree.apply(create("/p/c", 2, 1))
    rec.events.clear()
    r = tree.apply(txn(OpCode.delete, DeleteTxn("/p/c"), 3))
    assert (r.type, r.err, r.path) == (OpCode.delete, 0, "/p/c")
    assert "/p/c" not in tree.nodes
    p = tree.get("/p")
    assert (len(p.children), p.cversion, p.pzxid) == (0, 1, 3)
    assert rec.events == [("/p/c", EventType.NodeDeleted, 3, tuple(OPEN)),
                          ("/p", EventType.NodeChildrenChanged, 3, tuple(DIGEST_ACL))]


def test_children_list_follows_creates_and_deletes(tree: DataTree) -> None:
    def names() -> list[str] | None:
        return GetChildrenResponse.decode(tree.get("/p").children_list())[0].children

    tree.apply(create("/p", 1, 1))
    assert names() == []
    tree.apply(create("/p/a", 2, 1))
    tree.apply(create("/p/b", 3, 2))
    assert sorted(names() or []) == ["a", "b"]
    assert tree.get("/p").children_list() is tree.get("/p").children_list()  # kept until a change
    tree.apply(txn(OpCode.delete, DeleteTxn("/p/a"), 4))
    assert names() == ["b"]
    tree.apply(txn(OpCode.delete, DeleteTxn("/p/b"), 5))
    assert names() == []


def test_delete_missing_node_still_raises_parent_pzxid(tree: DataTree, rec: Recorder) -> None:
    tree.apply(create("/p", 1, 1))
    r = tree.apply(txn(OpCode.delete, DeleteTxn("/p/gone"), 7))
    assert r.err == Code.NONODE
    assert tree.get("/p").pzxid == 7
    assert rec.events[-1][1] == EventType.NodeChildrenChanged and rec.events[-1][2] == 1
    r = tree.apply(txn(OpCode.delete, DeleteTxn("/p/gone"), 5))
    assert tree.get("/p").pzxid == 7  # never lowered
    assert tree.apply(txn(OpCode.delete, DeleteTxn("/x/y"), 8)).err == Code.NONODE


def test_delete_container_and_ttl_unindexes(tree: DataTree) -> None:
    tree.apply(txn(OpCode.createContainer, CreateContainerTxn("/c", b"", OPEN, 1), 1))
    tree.apply(txn(OpCode.createTTL, CreateTTLTxn("/t", b"", OPEN, 2, 10), 2))
    tree.apply(txn(OpCode.deleteContainer, DeleteTxn("/c"), 3, client=0))
    tree.apply(txn(OpCode.deleteContainer, DeleteTxn("/t"), 4, client=0))
    assert tree.containers == set() and tree.ttls == set()
    assert sorted(tree.nodes) == ["", "/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]


def test_delete_ephemeral_unindexes(tree: DataTree) -> None:
    tree.apply(create("/e", 1, 1, ephemeral=True))
    tree.apply(txn(OpCode.delete, DeleteTxn("/e"), 2))
    assert tree.ephemerals == {}


# -- setData / setACL / check / others --------------------------------------------------------


def test_set_data(tree: DataTree, rec: Recorder) -> None:
    tree.apply(create("/a", 1, 1))
    rec.events.clear()
    r = tree.apply(txn(OpCode.setData, SetDataTxn("/a", b"new", 1), 2, time=4242))
    s = r.stat
    assert (r.type, r.err, r.path) == (OpCode.setData, 0, "/a")
    assert (s.version, s.mzxid, s.mtime, s.czxid, s.ctime, s.dataLength) == (1, 2, 4242, 1, 1001, 3)
    assert tree.get("/a").data == b"new"
    assert rec.events == [("/a", EventType.NodeDataChanged, 2, tuple(OPEN))]
    assert tree.apply(txn(OpCode.setData, SetDataTxn("/b", b"", 1), 3)).err == Code.NONODE


def test_reconfig_txn_is_a_set_data(tree: DataTree) -> None:
    r = tree.apply(txn(OpCode.reconfig, SetDataTxn("/zookeeper/config", b"server.1=x", -1), 3))
    assert r.err == 0 and tree.get("/zookeeper/config").data == b"server.1=x"


def test_set_config(tree: DataTree) -> None:
    tree.set_config(b"server.1=a:1:2", time=777)
    s = tree.get("/zookeeper/config").stat()
    assert (s.version, s.mzxid, s.mtime, s.aversion) == (-1, 0, 777, -1)


def test_set_acl(tree: DataTree, rec: Recorder) -> None:
    tree.apply(create("/a", 1, 1))
    rec.events.clear()
    r = tree.apply(txn(OpCode.setACL, SetACLTxn("/a", DIGEST_ACL, 1), 2))
    assert r.stat.aversion == 1 and r.stat.mzxid == 1
    assert tree.get("/a").acl == tuple(DIGEST_ACL)
    assert rec.events == []
    assert tree.apply(txn(OpCode.setACL, SetACLTxn("/b", OPEN, 1), 3)).err == Code.NONODE


def test_check_create_session_and_error_change_nothing(tree: DataTree) -> None:
    before = tree.digest
    r = tree.apply(txn(OpCode.check, CheckVersionTxn("/zookeeper", 1), 1))
    assert (r.type, r.err, r.path) == (OpCode.check, 0, "/zookeeper")
    assert tree.apply(txn(OpCode.createSession, CreateSessionTxn(30000), 2)).type == -10
    r = tree.apply(txn(OpCode.error, ErrorTxn(Code.NODEEXISTS), 3))
    assert (r.type, r.err) == (OpCode.error, Code.NODEEXISTS)
    assert tree.digest == before and tree.last_zxid == 3


def test_unknown_txn_type_raises(tree: DataTree) -> None:
    with pytest.raises(ValueError):
        tree.apply(txn(99, None, 1))


def test_last_zxid_never_goes_back(tree: DataTree) -> None:
    tree.apply(create("/a", 9, 1))
    tree.apply(txn(OpCode.error, ErrorTxn(-110), 4))
    assert tree.last_zxid == 9


# -- closeSession -----------------------------------------------------------------------------


def test_close_session_deletes_listed_and_remaining_ephemerals(tree: DataTree,
                                                                rec: Recorder) -> None:
    tree.apply(create("/e1", 1, 1, ephemeral=True))
    tree.apply(create("/e2", 2, 2, ephemeral=True))
    tree.apply(create("/p", 3, 3))
    rec.events.clear()
    r = tree.apply(txn(OpCode.closeSession, CloseSessionTxn(["/e1", "/gone"]), 4))
    assert (r.type, r.err) == (OpCode.closeSession, 0)
    assert "/e1" not in tree.nodes and "/e2" not in tree.nodes and "/p" in tree.nodes
    assert tree.ephemerals == {}
    deleted = [e[0] for e in rec.events if e[1] == EventType.NodeDeleted]
    assert deleted == ["/e1", "/e2"]
    assert tree.get("/").pzxid == 4


def test_close_session_without_body_uses_the_index(tree: DataTree) -> None:
    tree.apply(create("/e", 1, 1, ephemeral=True))
    tree.apply(create("/o", 2, 2, ephemeral=True))
    tree.get("/o").ephemeral_owner = 5  # another session's node (index fixed below)
    tree.ephemerals = {SESSION: {"/e"}, 5: {"/o"}}
    tree.apply(txn(OpCode.closeSession, None, 3))
    assert "/e" not in tree.nodes and "/o" in tree.nodes
    assert tree.ephemerals == {5: {"/o"}}


# -- multi ------------------------------------------------------------------------------------


def test_multi_applies_all_in_order(tree: DataTree, rec: Recorder) -> None:
    body = [
        (OpCode.create, CreateTxn("/m", b"", OPEN, False, 1)),
        (OpCode.create2, CreateTxn("/m/c", b"", OPEN, False, 1)),
        (OpCode.setData, SetDataTxn("/m", b"x", 1)),
        (OpCode.check, CheckVersionTxn("/m", 2)),
        (OpCode.delete, DeleteTxn("/m/c")),
    ]
    r = tree.apply(txn(OpCode.multi, body, 6))
    assert (r.type, r.err) == (OpCode.multi, 0)
    assert [(s.type, s.err, s.path) for s in r.multi] == [
        (1, 0, "/m"), (15, 0, "/m/c"), (5, 0, "/m"), (13, 0, "/m"), (2, 0, "/m/c")]
    assert tree.get("/m").data == b"x" and "/m/c" not in tree.nodes
    assert all(e[2] == 6 for e in rec.events)
    assert tree.last_zxid == 6


def test_failed_multi_applies_nothing(tree: DataTree, rec: Recorder) -> None:
    body = [
        (OpCode.create, CreateTxn("/m", b"", OPEN, False, 1)),
        (OpCode.setData, SetDataTxn("/zookeeper", b"x", 1)),
        (OpCode.error, ErrorTxn(Code.BADVERSION)),
        (OpCode.error, ErrorTxn(Code.RUNTIMEINCONSISTENCY)),
    ]
    before = tree.digest
    r = tree.apply(txn(OpCode.multi, body, 7))
    assert (r.type, r.err) == (OpCode.multi, 0)  # the multi's ReplyHeader.err stays 0
    assert [(s.type, s.err) for s in r.multi] == [(-1, 0), (-1, 0), (-1, -103), (-1, -2)]
    assert "/m" not in tree.nodes and tree.get("/zookeeper").data == b""
    assert rec.events == [] and tree.digest == before and tree.last_zxid == 7


def test_multi_survives_encoding(tree: DataTree) -> None:
    body = [(OpCode.create, CreateTxn("/m", b"", OPEN, False, 1)),
            (OpCode.error, ErrorTxn(Code.NONODE))]
    decoded = decode_txn(encode_txn(txn(OpCode.multi, body, 3)))
    r = tree.apply(decoded)
    assert [s.err for s in r.multi] == [0, Code.NONODE]


def test_empty_multi(tree: DataTree) -> None:
    r = tree.apply(txn(OpCode.multi, [], 2))
    assert (r.err, r.multi) == (0, [])


# -- helpers and digest -----------------------------------------------------------------------


def test_descendants_count(tree: DataTree) -> None:
    for i, p in enumerate(["/a", "/a/b", "/a/b/c", "/a/d", "/e"], start=1):
        tree.apply(create(p, i, -1))
    assert tree.descendants_count("/a") == 3
    assert tree.descendants_count("/a/b/c") == 0
    assert tree.descendants_count("/") == 8
    assert tree.descendants_count("/missing") == 0


def test_children_become_empty_frozenset_again(tree: DataTree) -> None:
    tree.apply(create("/a", 1, 1))
    tree.apply(create("/a/b", 2, 1))
    assert isinstance(tree.get("/a").children, set)
    tree.apply(txn(OpCode.delete, DeleteTxn("/a/b"), 3))
    assert tree.get("/a").children == frozenset() and len(tree.get("/a").children) == 0


def test_digest_follows_every_change(tree: DataTree) -> None:
    tree.apply(create("/a", 1, 1))
    tree.apply(create("/a/b", 2, 1, ephemeral=True))
    tree.apply(txn(OpCode.setData, SetDataTxn("/a", b"zz", 1), 3))
    tree.apply(txn(OpCode.setACL, SetACLTxn("/a", DIGEST_ACL, 1), 4))
    tree.apply(txn(OpCode.createTTL, CreateTTLTxn("/t", b"", OPEN, 2, 10), 5))
    assert tree.digest == full_digest(tree)
    tree.apply(txn(OpCode.closeSession, CloseSessionTxn(["/a/b"]), 6))
    tree.apply(txn(OpCode.delete, DeleteTxn("/t"), 7))
    assert tree.digest == full_digest(tree)


def test_node_stat_wraps_cversion_like_java() -> None:
    node = Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0, 0, 0, 0x7FFFFFFF, 0, 0, 0)
    assert node.stat().cversion == -2  # 2 * 0x7fffffff - 0 as a Java int


def test_add_node_needs_its_parent(tree: DataTree) -> None:
    with pytest.raises(ValueError):
        tree.add_node("/x/y", Node(b"", OPEN_ACL_UNSAFE, 0, 0, 0, 0, 0, 0, 0, 0, 0))
