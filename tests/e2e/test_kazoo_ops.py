"""Every client op, through kazoo where it has a call and through tests/wire.py where it has
not, run against Apache ZooKeeper 3.8 and against ours (the ``server`` param)."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    BadVersionError, NoAuthError, NoChildrenForEphemeralsError, NodeExistsError, NoNodeError,
    NotEmptyError, ReconfigDisabledError,
)
from kazoo.security import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, ACL, Id as KId

from core.errors import Code
from core.opcodes import OpCode
from core.records import (
    ClientInfo, Create2Response, CreateRequest, CreateTTLRequest, GetAllChildrenNumberResponse,
    GetEphemeralsResponse, PathRequest, PathWatchRequest, ReconfigRequest, SetDataRequest, StatResponse,
    WhoAmIResponse,
)
from wire import OPEN_ACL_UNSAFE as WIRE_OPEN_ACL


# -- create ----------------------------------------------------------------------------------

def test_create_plain(zk, root):
    path = zk.create(f"{root}/a", b"hello")
    assert path == f"{root}/a"
    data, st = zk.get(path)
    assert data == b"hello"
    assert st.version == 0 and st.cversion == 0 and st.aversion == 0
    assert st.dataLength == 5 and st.numChildren == 0 and st.ephemeralOwner == 0
    assert st.czxid == st.mzxid == st.pzxid > 0
    assert st.ctime == st.mtime > 0
    # create2 (kazoo's include_data) returns the same Stat
    path2, st2 = zk.create(f"{root}/b", b"", include_data=True)
    assert path2 == f"{root}/b" and st2 == zk.exists(path2)
    assert st2.czxid > st.czxid


def test_create_sequential_names_come_from_parent_cversion(zk, root):
    p = f"{root}/p"
    zk.create(p)
    zk.create(f"{p}/a")
    zk.create(f"{p}/b")
    zk.delete(f"{p}/a")
    st = zk.exists(p)
    # the Stat shows creates + deletes; the suffix counts the creates only
    assert (st.cversion, st.numChildren) == (3, 1)
    s1 = zk.create(f"{p}/s-", b"", sequence=True)
    assert s1 == f"{p}/s-0000000002"
    assert zk.exists(p).cversion == 4
    s2 = zk.create(f"{p}/", b"", sequence=True)  # an empty prefix is fine with a suffix
    assert s2 == f"{p}/0000000003"
    s3 = zk.create(f"{p}/s-", b"", sequence=True)
    assert s3 == f"{p}/s-0000000004"
    assert sorted(zk.get_children(p)) == ["0000000003", "b", "s-0000000002", "s-0000000004"]


def test_create_ephemeral_and_ephemeral_sequential(zk, root):
    session_id = zk.client_id[0]
    e = zk.create(f"{root}/e", b"x", ephemeral=True)
    assert zk.exists(e).ephemeralOwner == session_id
    es = zk.create(f"{root}/es-", b"", ephemeral=True, sequence=True)
    assert es == f"{root}/es-0000000001"
    assert zk.exists(es).ephemeralOwner == session_id
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{e}/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{e}/child", sequence=True)
    assert zk.exists(root).ephemeralOwner == 0


def test_ephemerals_removed_when_session_closes(server, zk, zk_factory, root):
    other = zk_factory(server)
    e1 = other.create(f"{root}/e1", ephemeral=True)
    e2 = other.create(f"{root}/e2-", ephemeral=True, sequence=True)
    zk.create(f"{root}/persistent")
    assert zk.exists(e1) and zk.exists(e2)
    pzxid_before = zk.exists(root).pzxid
    other.stop()  # closeSession is a txn: done when stop() returns
    assert zk.exists(e1) is None and zk.exists(e2) is None
    assert zk.get_children(root) == ["persistent"]
    assert zk.exists(root).pzxid > pzxid_before


def test_create_makepath(zk, root):
    path = zk.create(f"{root}/x/y/z", b"leaf", makepath=True)
    assert path == f"{root}/x/y/z"
    assert zk.get(f"{root}/x")[0] == b"" and zk.get(f"{root}/x/y")[0] == b""
    assert zk.get(path)[0] == b"leaf"
    with pytest.raises(NodeExistsError):
        zk.create(path, makepath=True)


def test_create_container(server, zk, wire_factory, root):
    w = wire_factory(server)
    r = w.call(OpCode.createContainer, CreateRequest(f"{root}/c", b"d", WIRE_OPEN_ACL, 4))
    assert r.err == 0
    resp = r.decode(Create2Response)
    assert resp.path == f"{root}/c"
    assert resp.stat.ephemeralOwner == 0  # clients see 0 for containers
    assert resp.stat.dataLength == 1
    st = zk.exists(f"{root}/c")
    assert st.ephemeralOwner == 0 and st.czxid == resp.stat.czxid
    # a container may have children (unlike an ephemeral)
    zk.create(f"{root}/c/child")
    assert zk.get_children(f"{root}/c") == ["child"]
    # outside multi the op code decides: create2 with flag 4 is a plain persistent node
    r = w.call(OpCode.create2, CreateRequest(f"{root}/c2", b"", WIRE_OPEN_ACL, 4))
    assert r.err == 0 and r.decode(Create2Response).stat.ephemeralOwner == 0


def test_create_ttl_needs_extended_types(server, zk, wire_factory, root):
    w = wire_factory(server)
    r = w.call(OpCode.createTTL, CreateTTLRequest(f"{root}/t", b"", WIRE_OPEN_ACL, 5, 10000))
    assert r.err == Code.UNIMPLEMENTED
    # a non-TTL flag is BADARGUMENTS either way
    r = w.call(OpCode.createTTL, CreateTTLRequest(f"{root}/t", b"", WIRE_OPEN_ACL, 0, 10000))
    assert r.err == Code.BADARGUMENTS
    # create with flag 5: UNIMPLEMENTED without extended types
    r = w.call(OpCode.create, CreateRequest(f"{root}/t", b"", WIRE_OPEN_ACL, 5))
    assert r.err == Code.UNIMPLEMENTED
    assert zk.exists(f"{root}/t") is None


def test_create_ttl(server_ext, zk_factory, wire_factory, root):
    zk = zk_factory(server_ext)
    zk.ensure_path(root)
    w = wire_factory(server_ext)
    r = w.call(OpCode.createTTL, CreateTTLRequest(f"{root}/t", b"v", WIRE_OPEN_ACL, 5, 60000))
    assert r.err == 0
    resp = r.decode(Create2Response)
    assert resp.path == f"{root}/t" and resp.stat.ephemeralOwner == 0
    r = w.call(OpCode.createTTL, CreateTTLRequest(f"{root}/s-", b"", WIRE_OPEN_ACL, 6, 60000))
    assert r.err == 0 and r.decode(Create2Response).path == f"{root}/s-0000000001"
    assert zk.exists(f"{root}/t").ephemeralOwner == 0
    # ttl out of range, a non-TTL flag, and create/create2 with a TTL flag: BADARGUMENTS
    for ttl in (0, -1, 1 << 40):
        r = w.call(OpCode.createTTL, CreateTTLRequest(f"{root}/bad", b"", WIRE_OPEN_ACL, 5, ttl))
        assert r.err == Code.BADARGUMENTS, ttl
    r = w.call(OpCode.createTTL, CreateTTLRequest(f"{root}/bad", b"", WIRE_OPEN_ACL, 1, 1000))
    assert r.err == Code.BADARGUMENTS
    r = w.call(OpCode.create, CreateRequest(f"{root}/bad", b"", WIRE_OPEN_ACL, 5))
    assert r.err == Code.BADARGUMENTS
    assert zk.exists(f"{root}/bad") is None


# -- read / write / delete -------------------------------------------------------------------

def test_get_set_with_versions(zk, root):
    p = zk.create(f"{root}/n", b"v0")
    st = zk.set(p, b"v1", version=0)
    assert st.version == 1 and st.dataLength == 2
    with pytest.raises(BadVersionError):
        zk.set(p, b"v2", version=0)
    assert zk.get(p) == (b"v1", st)
    st2 = zk.set(p, b"", version=-1)
    assert st2.version == 2 and st2.dataLength == 0
    assert st2.mzxid > st.mzxid and st2.czxid == st.czxid
    assert st2.mtime >= st.mtime
    with pytest.raises(NoNodeError):
        zk.set(f"{root}/missing", b"")
    with pytest.raises(NoNodeError):
        zk.get(f"{root}/missing")


def test_exists(zk, root):
    assert zk.exists(f"{root}/nope") is None
    zk.create(f"{root}/yes", b"12")
    st = zk.exists(f"{root}/yes")
    assert st is not None and st.dataLength == 2
    assert zk.exists("/").czxid == 0


def test_get_children(zk, root):
    for name in ("b", "a", "c"):
        zk.create(f"{root}/{name}", name.encode())
    assert sorted(zk.get_children(root)) == ["a", "b", "c"]
    children, st = zk.get_children(root, include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert st == zk.exists(root)
    assert st.numChildren == 3 and st.cversion == 3
    assert zk.get_children(f"{root}/a") == []
    with pytest.raises(NoNodeError):
        zk.get_children(f"{root}/missing")


def test_delete_errors_and_versions(zk, root):
    p = zk.create(f"{root}/d", b"")
    zk.set(p, b"x")
    with pytest.raises(BadVersionError):
        zk.delete(p, version=0)
    zk.create(f"{p}/kid")
    with pytest.raises(NotEmptyError):
        zk.delete(p)
    with pytest.raises(NodeExistsError):
        zk.create(p)
    zk.delete(f"{p}/kid")
    zk.delete(p, version=1)
    assert zk.exists(p) is None
    with pytest.raises(NoNodeError):
        zk.delete(p)
    with pytest.raises(NoNodeError):
        zk.create(f"{root}/no/parent")


def test_sync(zk, root):
    assert zk.sync(root) == root
    assert zk.sync("/") == "/"


def test_acls(zk, root):
    p = zk.create(f"{root}/acl", b"")
    acls, st = zk.get_acls(p)
    assert list(acls) == list(OPEN_ACL_UNSAFE) and st.aversion == 0
    with pytest.raises(BadVersionError):
        zk.set_acls(p, READ_ACL_UNSAFE, version=5)
    st2 = zk.set_acls(p, READ_ACL_UNSAFE, version=0)
    assert st2.aversion == 1 and st2.version == 0 and st2.mzxid == st.mzxid
    acls, st3 = zk.get_acls(p)
    assert list(acls) == [ACL(1, KId("world", "anyone"))] and st3.aversion == 1
    # READ only: writes are refused, reads work
    with pytest.raises(NoAuthError):
        zk.set(p, b"x")
    with pytest.raises(NoAuthError):
        zk.create(f"{p}/child")
    assert zk.get(p)[0] == b""
    with pytest.raises(NoNodeError):
        zk.get_acls(f"{root}/missing")


def test_stat_field_relations(zk, root):
    p = zk.create(f"{root}/s", b"abc")
    st0 = zk.exists(p)
    assert st0.czxid == st0.mzxid == st0.pzxid and st0.numChildren == 0 and st0.dataLength == 3
    zk.create(f"{p}/c1")
    st1 = zk.exists(p)
    assert st1.pzxid > st0.pzxid and st1.mzxid == st0.mzxid  # a child create moves pzxid only
    assert (st1.cversion, st1.numChildren, st1.version) == (1, 1, 0)
    zk.create(f"{p}/c2")
    zk.delete(f"{p}/c1")
    st2 = zk.exists(p)
    assert st2.pzxid > st1.pzxid and st2.pzxid == zk.get(p)[1].pzxid
    assert (st2.cversion, st2.numChildren) == (3, 1)
    zk.set(f"{p}/c2", b"data")  # a child's setData does not touch the parent
    assert zk.exists(p) == st2
    zk.set(p, b"")
    st3 = zk.exists(p)
    assert st3.czxid <= st3.mzxid and st3.mzxid > st2.pzxid
    assert (st3.dataLength, st3.version, st3.cversion, st3.pzxid) == (0, 1, 3, st2.pzxid)


def test_server_side_nodes(zk):
    assert zk.exists("/zookeeper") is not None
    assert zk.exists("/zookeeper/quota") is not None
    assert "zookeeper" in zk.get_children("/")
    assert {"quota", "config"} <= set(zk.get_children("/zookeeper"))
    st = zk.exists("/zookeeper")
    assert st.czxid == 0 and st.ephemeralOwner == 0


# -- ops kazoo has no call for -------------------------------------------------------------

def test_get_all_children_number(server, zk, wire_factory, root):
    zk.create(f"{root}/a/b/c", makepath=True)
    zk.create(f"{root}/a/d")
    zk.create(f"{root}/e")
    w = wire_factory(server)
    r = w.call(OpCode.getAllChildrenNumber, PathRequest(root))
    assert r.err == 0 and r.decode(GetAllChildrenNumberResponse).totalNumber == 5
    r = w.call(OpCode.getAllChildrenNumber, PathRequest(f"{root}/e"))
    assert r.err == 0 and r.decode(GetAllChildrenNumberResponse).totalNumber == 0
    r = w.call(OpCode.getAllChildrenNumber, PathRequest(f"{root}/missing"))
    assert r.err == Code.NONODE


def test_get_ephemerals(server, zk, wire_factory, root):
    w = wire_factory(server)
    for name in ("e1", "e2", "sub/e3"):
        zk.ensure_path(f"{root}/sub")
        r = w.call(OpCode.create, CreateRequest(f"{root}/{name}", b"", WIRE_OPEN_ACL, 1))
        assert r.err == 0
    zk.create(f"{root}/mine", ephemeral=True)  # another session's: not listed
    r = w.call(OpCode.getEphemerals, PathRequest(root))
    assert r.err == 0
    assert sorted(r.decode(GetEphemeralsResponse).ephemerals) == [
        f"{root}/e1", f"{root}/e2", f"{root}/sub/e3"]
    r = w.call(OpCode.getEphemerals, PathRequest(f"{root}/sub"))
    assert r.decode(GetEphemeralsResponse).ephemerals == [f"{root}/sub/e3"]
    # the prefix is a string prefix, not a path (EphemeralsCommand: startsWith)
    r = w.call(OpCode.getEphemerals, PathRequest(f"{root}/e"))
    assert sorted(r.decode(GetEphemeralsResponse).ephemerals) == [f"{root}/e1", f"{root}/e2"]
    r = w.call(OpCode.getEphemerals, PathRequest(f"{root}/nothing-here"))
    assert r.err == 0 and r.decode(GetEphemeralsResponse).ephemerals == []


def test_who_am_i(server, wire_factory):
    w = wire_factory(server)
    r = w.call(OpCode.whoAmI)
    assert r.err == 0
    assert r.decode(WhoAmIResponse).clientInfo == [ClientInfo("ip", server.host)]


def test_reconfig_disabled_on_standalone(server, zk, wire_factory):
    # Observed 3.8.0 and protocol.md: RECONFIGDISABLED (-123) unless reconfigEnabled.
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining=None, leaving=None, new_members="server.1=127.0.0.1:1:2;3")
    w = wire_factory(server)
    r = w.call(OpCode.reconfig, ReconfigRequest("", "", "", -1))
    assert r.err == Code.RECONFIGDISABLED and r.body == b""


def test_zxids_strictly_increase(server, zk, wire_factory, root):
    w = wire_factory(server)
    zxids = []
    for i in range(10):
        r = w.call(OpCode.create2, CreateRequest(f"{root}/z{i}", b"", WIRE_OPEN_ACL, 0))
        assert r.err == 0
        stat = r.decode(Create2Response).stat
        assert r.zxid == stat.czxid  # the reply carries the txn's zxid
        zxids.append(stat.czxid)
        r = w.call(OpCode.setData, SetDataRequest(f"{root}/z{i}", b"x", -1))
        assert r.err == 0
        zxids.append(r.decode(StatResponse).stat.mzxid)
        assert r.zxid == zxids[-1]
    assert zxids == sorted(set(zxids))
    # reads answer with the server's last zxid (other sessions' expiries may move it meanwhile)
    r = w.call(OpCode.exists, PathWatchRequest(root, False))
    assert r.err == 0 and r.zxid >= zxids[-1]
