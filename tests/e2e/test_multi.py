"""multi (kazoo transactions and raw) and multiRead (wire), on Apache ZooKeeper 3.8 and ours."""

from __future__ import annotations

import dataclasses

import pytest
from kazoo.exceptions import BadVersionError, NoNodeError, RolledBackError, RuntimeInconsistency

from core.errors import Code
from core.opcodes import OpCode
from core.records import (
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, DeleteRequest,
    ErrorResponse, GetChildrenResponse, GetDataResponse, PathWatchRequest, SetDataRequest,
)
from wire import OPEN_ACL_UNSAFE, decode_multi, multi_body


def test_transaction_success(zk, root):
    zk.create(f"{root}/b", b"b0")
    zk.create(f"{root}/c", b"")
    t = zk.transaction()
    t.create(f"{root}/a", b"new")
    t.set_data(f"{root}/b", b"b1", version=0)
    t.delete(f"{root}/c")
    t.check(f"{root}/b", 1)  # sees the set_data before it in the same multi
    results = t.commit()
    assert results[0] == f"{root}/a"
    assert results[1].version == 1 and results[1].dataLength == 2
    assert results[2:] == [True, True]
    a = zk.exists(f"{root}/a")
    assert zk.get(f"{root}/b")[0] == b"b1" and zk.exists(f"{root}/c") is None
    # one txn: every op of the multi carries the same zxid
    assert a.czxid == results[1].mzxid == zk.exists(root).pzxid


def test_transaction_failure_rolls_back_everything(zk, root):
    zk.create(f"{root}/b", b"b0")
    zk.create(f"{root}/d", b"")
    before = zk.exists(root)
    t = zk.transaction()
    t.create(f"{root}/a", b"")
    t.delete(f"{root}/d")
    t.set_data(f"{root}/b", b"b1", version=99)  # fails: BADVERSION
    t.create(f"{root}/e", b"")
    t.check(f"{root}/b", 0)
    results = t.commit()
    assert [type(r) for r in results] == [
        RolledBackError, RolledBackError, BadVersionError, RuntimeInconsistency, RuntimeInconsistency]
    assert zk.exists(f"{root}/a") is None and zk.exists(f"{root}/e") is None
    assert zk.exists(f"{root}/d") is not None
    assert zk.get(f"{root}/b")[0] == b"b0"
    assert zk.exists(root) == before
    # the failed multi consumed a zxid: the next create's czxid shows the gap
    after = zk.create(f"{root}/next", include_data=True)[1]
    assert after.czxid >= before.pzxid + 2


def test_failed_multi_zxid_on_the_wire(server, wire, zk, root):
    r0 = wire.call(OpCode.create2, CreateRequest(f"{root}/x", b"", OPEN_ACL_UNSAFE, 0))
    assert r0.err == 0
    x = r0.decode(Create2Response).stat
    r = wire.call(OpCode.multi, multi_body([
        (OpCode.create, CreateRequest(f"{root}/y", b"", OPEN_ACL_UNSAFE, 0)),
        (OpCode.delete, DeleteRequest(f"{root}/missing", -1)),
        (OpCode.setData, SetDataRequest(f"{root}/x", b"", -1)),
    ]))
    assert r.err == 0  # the multi's header stays OK when an op fails
    res = decode_multi(r.body)
    assert [(m.type, m.err) for m in res] == [(-1, 0), (-1, Code.NONODE), (-1, Code.RUNTIMEINCONSISTENCY)]
    assert all(isinstance(m.record, ErrorResponse) and m.record.err == m.err for m in res)
    r2 = wire.call(OpCode.create2, CreateRequest(f"{root}/z", b"", OPEN_ACL_UNSAFE, 0))
    z = r2.decode(Create2Response).stat
    # the failed multi took its own zxid (an ErrorTxn), reported in its reply header
    assert x.czxid < r.zxid < z.czxid
    assert wire.call(OpCode.exists, PathWatchRequest(f"{root}/y", False)).err == Code.NONODE
    assert wire.call(OpCode.getData, PathWatchRequest(f"{root}/x", False)).decode(GetDataResponse).stat.version == 0


def test_multi_results_by_op(server, wire, zk, root):
    zk.create(f"{root}/s", b"")
    zk.create(f"{root}/d", b"")
    r = wire.call(OpCode.multi, multi_body([
        (OpCode.create, CreateRequest(f"{root}/p", b"", OPEN_ACL_UNSAFE, 0)),
        (OpCode.create, CreateRequest(f"{root}/q-", b"", OPEN_ACL_UNSAFE, 2)),
        (OpCode.createContainer, CreateRequest(f"{root}/c", b"", OPEN_ACL_UNSAFE, 4)),
        (OpCode.setData, SetDataRequest(f"{root}/s", b"v", 0)),
        (OpCode.check, CheckVersionRequest(f"{root}/s", 1)),
        (OpCode.delete, DeleteRequest(f"{root}/d", 0)),
    ]))
    assert r.err == 0
    res = decode_multi(r.body)
    assert [(m.type, m.err) for m in res] == [(1, 0), (1, 0), (15, 0), (5, 0), (13, 0), (2, 0)]
    assert res[0].record == CreateResponse(f"{root}/p")
    assert res[1].record == CreateResponse(f"{root}/q-0000000003")
    assert res[2].record.path == f"{root}/c" and res[2].record.stat.ephemeralOwner == 0
    assert res[3].record.stat.version == 1
    assert res[2].record.stat.czxid == res[3].record.stat.mzxid == r.zxid
    assert res[4].record is None and res[5].record is None


def test_multi_create2_and_bad_flag(server, wire, zk, root):
    r = wire.call(OpCode.multi, multi_body([
        (OpCode.create2, CreateRequest(f"{root}/c2", b"", OPEN_ACL_UNSAFE, 0)),
    ]))
    assert r.err == 0
    (m,) = decode_multi(r.body)
    if server.kind == "apache":
        # protocol.md "3.8 vs 3.9": 3.8.0 rebuilds creates with Op.create: type 1 + CreateResponse
        assert (m.type, m.record) == (1, CreateResponse(f"{root}/c2"))
    else:
        # 3.8.2+/3.9 (ZOOKEEPER-4026) keep create2: type 15 + Create2Response
        assert m.type == 15 and isinstance(m.record, Create2Response) and m.record.path == f"{root}/c2"
    bad = multi_body([
        (OpCode.create, CreateRequest(f"{root}/ok", b"", OPEN_ACL_UNSAFE, 0)),
        (OpCode.create, CreateRequest(f"{root}/bad", b"", OPEN_ACL_UNSAFE, 7)),
    ])
    r = wire.call(OpCode.multi, bad)
    if server.kind == "apache":
        # 3.8.0 fails that op (BADARGUMENTS), the others roll back
        assert r.err == 0
        assert [(m.type, m.err) for m in decode_multi(r.body)] == [(-1, 0), (-1, Code.BADARGUMENTS)]
    else:
        # 3.8.2+/3.9 fail the whole multi on a bad create flag
        assert r.err == Code.MARSHALLINGERROR
    # a TTL flag under a plain create: the whole multi is MARSHALLINGERROR on both
    r = wire.call(OpCode.multi, multi_body([
        (OpCode.create, CreateRequest(f"{root}/ttl", b"", OPEN_ACL_UNSAFE, 5)),
    ]))
    assert r.err == Code.MARSHALLINGERROR
    assert zk.get_children(root) == ["c2"]


def test_empty_multi_and_read_in_multi(server, wire, root, zk):
    r = wire.call(OpCode.multi, multi_body([]))
    assert r.err == 0 and decode_multi(r.body) == []
    r = wire.call(OpCode.multi, multi_body([
        (OpCode.create, CreateRequest(f"{root}/a", b"", OPEN_ACL_UNSAFE, 0)),
        (OpCode.getData, PathWatchRequest(root, False)),
    ]))
    assert r.err == Code.MARSHALLINGERROR
    assert zk.exists(f"{root}/a") is None


def test_multi_read(server, wire, wire_factory, zk, root):
    zk.create(f"{root}/a", b"data-a")
    zk.create(f"{root}/a/kid")
    r = wire.call(OpCode.multiRead, multi_body([
        (OpCode.getData, PathWatchRequest(f"{root}/a", True)),
        (OpCode.getData, PathWatchRequest(f"{root}/missing", False)),
        (OpCode.getChildren, PathWatchRequest(f"{root}/a", True)),
        (OpCode.getChildren, PathWatchRequest(f"{root}/missing", False)),
        (OpCode.getChildren, PathWatchRequest(root, False)),
    ]))
    assert r.err == 0
    res = decode_multi(r.body)
    # read ops succeed or fail one by one
    assert [(m.type, m.err) for m in res] == [(4, 0), (-1, Code.NONODE), (8, 0), (-1, Code.NONODE), (8, 0)]
    a = zk.exists(f"{root}/a")
    assert res[0].record.data == b"data-a"
    assert dataclasses.astuple(res[0].record.stat) == tuple(a)  # Stat and kazoo's ZnodeStat: same order
    assert res[1].record == ErrorResponse(Code.NONODE)
    assert res[2].record == GetChildrenResponse(["kid"])
    assert res[4].record == GetChildrenResponse(["a"])
    # the watch flag of a read in multiRead is ignored (MultiOperationRecord rebuilds the read
    # with Op.getData(path) / Op.getChildren(path), observed 3.8.0)
    zk.set(f"{root}/a", b"changed")
    zk.create(f"{root}/a/kid2")
    wire.ping()
    assert wire.events == []


@pytest.mark.parametrize("op", [OpCode.exists, OpCode.getChildren2])
def test_multi_read_takes_only_get_data_and_get_children(server, wire, zk, root, op):
    # MultiOperationRecord knows getData and getChildren as reads; exists and getChildren2
    # fail the whole request (observed 3.8.0; the same in 3.9)
    r = wire.call(OpCode.multiRead, multi_body([
        (OpCode.getData, PathWatchRequest(root, False)),
        (op, PathWatchRequest(root, False)),
    ]))
    assert r.err == Code.MARSHALLINGERROR


def test_multi_read_rejects_writes(server, wire, zk, root):
    r = wire.call(OpCode.multiRead, multi_body([
        (OpCode.getData, PathWatchRequest(root, False)),
        (OpCode.create, CreateRequest(f"{root}/w", b"", OPEN_ACL_UNSAFE, 0)),
    ]))
    assert r.err == Code.MARSHALLINGERROR
    with pytest.raises(NoNodeError):
        zk.get(f"{root}/w")
    r = wire.call(OpCode.multiRead, multi_body([]))
    assert r.err == 0 and decode_multi(r.body) == []
