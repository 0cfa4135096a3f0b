"""The C accelerator's write pipeline (core/_native.c: ZKServer.request, Prep.prep, DataTree.apply
and _multi, ZKServer.commit, ServerConnection.complete) against the Python methods it stands in
for: a whole server in process answers any pipelined mix of requests, from two sessions, with the
same bytes, and is left with the same tree; and the plain cases run without the Python methods."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock

from core import native
from core.acl import AccessControl
from core.connection import OwedWrite, ServerConnection, py_split_frames
from core.errors import Code, ZKError
from core.interfaces import Request
from core.opcodes import EventType, KeeperState, OpCode, Perm
from core.ops.stats import DIGEST_LOG_INTERVAL
from core.prep import _MULTI_PLAIN, _NO_SESSION_CHECK, PY_APPLIED, PY_PREP, Prep, _Change, _error_txn
from core.records import (
    ACL, CheckVersionRequest, CreateRequest, DeleteRequest, Id, MultiHeader, PathRequest, PathWatchRequest,
    RequestHeader, SetDataRequest, WatcherEvent,
)
from core.requests import MULTI_OPS, RECORD_ERRORS, WRITE_REQUESTS, decode_multi
from core.server import (
    _MULTI_END, _MULTI_OK_HEADERS, _SESSION_TXNS, PY_COMMIT, PY_COMPLETE, PY_REQUEST, PY_SUBMIT, RESPONSE_BODIES, ZKServer,
)
from core.sessions import Session, SessionTracker
from core.snapshotter import Snapshotter
from core.tree import _NOT_IN_MULTI, NODE_VIEW, PY_APPLY, PY_MULTI, DataTree, TxnResult
from core.txn import Txn
from tests.inprocess import Client, HeldStorage, start_server

needs_native = pytest.mark.skipif(native.MODULE is None, reason="the C accelerator is not built (or switched off)")

_PIPELINE = [(ZKServer, "request", PY_REQUEST), (ZKServer, "submit", PY_SUBMIT), (Prep, "prep", PY_PREP),
             (Prep, "applied", PY_APPLIED), (DataTree, "apply", PY_APPLY), (DataTree, "_multi", PY_MULTI), (ZKServer, "commit", PY_COMMIT),
             (ServerConnection, "complete", PY_COMPLETE)]
_PATHS = ["/a", "/a/b", "/b", "/c", "/a/b/c"]
_ODD_PATHS = ["", "bad", "/zookeeper", "/a/", "/zookeeper/quota", None]
_OPEN = [ACL(31, Id("world", "anyone"))]
_READ_ONLY = [ACL(1, Id("world", "anyone"))]


@contextmanager
def pipeline(methods: list[tuple[type, str, Any]]) -> Iterator[None]:
    """The methods (class, name, function) installed for the duration."""
    saved = [(cls, name, vars(cls)[name]) for cls, name, _ in methods]
    try:
        for cls, name, f in methods:
            setattr(cls, name, f)
        yield
    finally:
        for cls, name, f in saved:
            setattr(cls, name, f)


def _server(data_dir: Path, snap_count: int = 100000) -> tuple[ZKServer, Clock, list[Client]]:
    """A started server on a Clock (memory store), and two connected clients."""
    server, clock = start_server(data_dir, 2000, extra_config=f"snapCount={snap_count}\n")
    server.snapshotter.rng = random.Random(7)  # the same snapshots in every run
    server.snapshotter.threshold = server.snapshotter._next_threshold()
    clients = [Client(server, clock, 40000 + i) for i in range(2)]
    for c in clients:
        c.connect(30000)
    return server, clock, clients


@needs_native
@settings(max_examples=300)
@given(frames=st.lists(st.binary(max_size=12), max_size=4), lengths=st.lists(st.integers(-3, 14), max_size=3),
       tail=st.binary(max_size=5), limit=st.integers(-2, 12) | st.just(2**40))
def test_frames_are_split_in_c_as_in_python(frames: list[bytes], lengths: list[int], tail: bytes, limit: int) -> None:
    buf = b"".join(struct.pack(">i", len(f)) + f for f in frames)
    buf += b"".join(struct.pack(">i", n) for n in lengths) + tail
    assert native.MODULE is not None
    assert native.MODULE.split_frames(buf, limit) == py_split_frames(buf, limit)


def _frame(xid: int, op: int, record: Any) -> bytes:
    body = RequestHeader(xid, op).encode() + (type(record).encode(record) if record is not None else b"")
    return struct.pack(">i", len(body)) + body


def _multi_frame(xid: int, ops: list[tuple[int, Any]]) -> bytes:
    body = RequestHeader(xid, OpCode.multi).encode() + b"".join(
        MultiHeader(op, False, -1).encode() + type(rec).encode(rec) for op, rec in ops) + MultiHeader(-1, True, -1).encode()
    return struct.pack(">i", len(body)) + body


_path = st.sampled_from(_PATHS) | st.sampled_from(_ODD_PATHS)
_version = st.sampled_from([-1, 0, 1, 2, 2**31 - 1])
_data = st.binary(max_size=6)
_acl = st.sampled_from([_OPEN, _READ_ONLY, []])
_set_data = st.builds(SetDataRequest, _path, _data, _version)
_create = st.builds(CreateRequest, _path, _data, _acl, st.sampled_from([0, 0, 1, 2, 3, 4]))
_delete = st.builds(DeleteRequest, _path, _version)
_check = st.builds(CheckVersionRequest, _path, _version)
_sub_op = st.one_of(st.tuples(st.just(OpCode.setData), _set_data), st.tuples(st.just(OpCode.create), _create),
                    st.tuples(st.just(OpCode.delete), _delete), st.tuples(st.just(OpCode.check), _check))
_request = st.one_of(
    st.tuples(st.just(OpCode.setData), _set_data),
    st.tuples(st.sampled_from([OpCode.create, OpCode.create2]), _create),
    st.tuples(st.just(OpCode.delete), _delete),
    st.tuples(st.sampled_from([OpCode.getData, OpCode.exists]), st.builds(PathWatchRequest, _path, st.booleans())),
    st.tuples(st.just(OpCode.multi), st.lists(_sub_op, min_size=1, max_size=3)),
    st.tuples(st.just(OpCode.sync), st.builds(PathRequest, _path)),
)
# batches of pipelined requests, each from one of two sessions, sent in one read; then how many
# store calls complete (the rest wait, so that requests are prepped while earlier txns are pending)
_batches = st.lists(st.tuples(st.integers(0, 1), st.lists(_request, min_size=1, max_size=6), st.integers(0, 2)),
                    min_size=1, max_size=8)


def _turn(clock: Clock) -> None:
    for _ in range(5):  # the commits, and the snapshot's slices
        clock.advance(0)


def _serve(batches: list[tuple[int, list[tuple[int, Any]], int]], tmp: Path) -> tuple[list[bytes], Any]:
    """Every byte each client received; after the batches, the tree's nodes and digest, the log,
    the zxids of the snapshots taken (one every few txns: the snapshotter's count is kept in C
    until one is due), how many replies were timed, and the requests the consensus was handed."""
    server, clock, clients = _server(tmp, snap_count=6)
    submitted: list[tuple[Any, ...]] = []  # what the consensus was handed
    submit = server.consensus.submit

    def recording(request: Request) -> None:
        submitted.append((request.session_id, request.cxid, request.type, request.record, request.raw,
                          tuple(request.auth)))
        submit(request)

    # most drawn paths exist from the start, so that ops succeed before one of their multi fails
    clients[0].conn.dataReceived(b"".join(_frame(10000 + i, OpCode.create, CreateRequest(path, b"", _OPEN, 0))
                                          for i, path in enumerate(["/a", "/b", "/c"])))
    _turn(clock)
    server.consensus.submit = recording  # type: ignore[method-assign]
    held = server.storage = HeldStorage(lambda args: None)
    received = [b"", b""]
    xid = 0
    for who, requests, releases in batches:
        frames = []
        for op, record in requests:
            xid += 1
            frames.append(_multi_frame(xid, record) if op == OpCode.multi else _frame(xid, op, record))
        clients[who].conn.dataReceived(b"".join(frames))
        _turn(clock)
        for _ in range(min(releases, len(held.held))):
            held.release()
            _turn(clock)
    for _ in range(100):
        if not held.held:
            break
        held.release()
        _turn(clock)
    assert not held.held
    for i, c in enumerate(clients):
        received[i] = c.transport.value()
    tree = server.tree
    nodes = sorted((p, n.data, n.acl, n.stat_bytes(), sorted(n.children)) for p, n in tree.nodes.items())
    log = list(server.store.read_from(0))
    return received, (nodes, tree.digest, tree.last_zxid, log, sorted(server.store._snapshots),
                      server.stats.latency.count, submitted)


@needs_native
@pytest.mark.timeout(300)  # two in-process servers per example
@settings(max_examples=100)
@given(batches=_batches)
def test_the_write_pipeline_answers_in_c_as_in_python(batches: Any, tmp_path_factory: Any) -> None:
    by_c = _serve(batches, tmp_path_factory.mktemp("c"))
    with pipeline(_PIPELINE):
        by_python = _serve(batches, tmp_path_factory.mktemp("py"))
    assert by_c == by_python


@needs_native
@pytest.mark.parametrize("op", [OpCode.getData, OpCode.exists])
def test_a_read_that_sets_a_watch_is_notified(op: int, tmp_path: Path) -> None:
    server, clock, (reader, writer) = _server(tmp_path)
    writer.conn.dataReceived(_frame(1, OpCode.create, CreateRequest("/a", b"", _OPEN, 0)))
    clock.advance(0)
    reader.conn.dataReceived(_frame(1, op, PathWatchRequest("/a", True)))
    writer.conn.dataReceived(_frame(2, OpCode.setData, SetDataRequest("/a", b"v", -1)))
    clock.advance(0)
    (read, _), (event, body) = reader.replies()
    assert (read.xid, read.err, event.xid) == (1, 0, -1)
    assert body == WatcherEvent(EventType.NodeDataChanged, KeeperState.SyncConnected, "/a").encode()


@needs_native
def test_a_multi_that_fails_after_its_first_ops_leaves_no_change_behind(tmp_path: Path) -> None:
    """Its ops before the failure were prepped (in C) and are rolled back before the Python method
    makes its error txns; the writes pipelined behind it see the tree as if it had not run."""
    create, set_a = (OpCode.create, CreateRequest("/a", b"", _OPEN, 0)), (OpCode.setData, SetDataRequest("/a", b"", -1))
    failing = (OpCode.multi, [set_a, (OpCode.create, CreateRequest("/a/b", b"", _OPEN, 0)),
                              (OpCode.delete, DeleteRequest("/none", -1))])
    behind = [(OpCode.setData, SetDataRequest("/a", b"v", 0)), (OpCode.create, CreateRequest("/a/b", b"", _OPEN, 0))]
    batches = [(0, [create, failing, *behind], 0)]
    by_c = _serve(batches, tmp_path / "c")
    with pipeline(_PIPELINE):
        by_python = _serve(batches, tmp_path / "py")
    assert by_c == by_python
    received, frames = by_c[0][0], {}
    while received:  # each reply by its xid: (err, body)
        n, xid, _, err = struct.unpack_from(">iiqi", received)
        frames[xid], received = (err, received[20:4 + n]), received[4 + n:]
    ok, nonode = MultiHeader(-1, False, 0).encode(), MultiHeader(-1, False, Code.NONODE).encode()
    assert frames[2][1].startswith(ok + struct.pack(">i", 0) + ok) and nonode in frames[2][1]
    assert frames[3][0] == 0 and frames[4] == (0, struct.pack(">i", 4) + b"/a/b")  # as if the multi had not run


def _handed_to_python(*args: Any) -> Any:
    raise AssertionError("handed to the Python method")


def _queued_reads_only(server: ZKServer, conn: ServerConnection, frame: bytes) -> None:
    """ZKServer.request for the plain test's read behind writes; no other request may come here."""
    assert struct.unpack_from(">i", frame, 4)[0] == OpCode.getData and conn.pending
    PY_REQUEST(server, conn, frame)


@needs_native
def test_a_plain_write_runs_its_pipeline_without_the_python_methods(tmp_path: Path) -> None:
    assert native.MODULE is not None
    m = native.MODULE
    server, clock, (client, _) = _server(tmp_path)
    plain = [(cls, name, native.method(f)) for cls, name, f in [
        (ZKServer, "request", m.requester(WRITE_REQUESTS, RECORD_ERRORS, _queued_reads_only, int(OpCode.multi),
                                          decode_multi, MULTI_OPS, NODE_VIEW, ZKServer, ServerConnection, DataTree,
                                          int(OpCode.getData), int(OpCode.exists), int(Perm.READ))),
        (ZKServer, "submit", m.submitter(OwedWrite, ServerConnection, ZKServer, _handed_to_python)),
        (Prep, "applied", m.applier(Prep, _Change, _handed_to_python)),
        (Prep, "prep", m.prepper(Request, Txn, Prep, SessionTracker, Session,
                                 _NO_SESSION_CHECK | {OpCode.check}, _handed_to_python, ZKError, _error_txn,
                                 int(OpCode.multi), _MULTI_PLAIN, frozenset({OpCode.create, OpCode.create2}),
                                 CreateRequest)),
        (DataTree, "apply", m.tree_applier(Txn, DataTree, _handed_to_python)),
        (DataTree, "_multi", m.multi_applier(DataTree, TxnResult, _handed_to_python, int(OpCode.error),
                                             _NOT_IN_MULTI)),
        (ZKServer, "commit", m.committer(Txn, OwedWrite, TxnResult, ZKServer, Snapshotter, _handed_to_python,
                                         _handed_to_python, _SESSION_TXNS, DIGEST_LOG_INTERVAL, RESPONSE_BODIES,
                                         _MULTI_OK_HEADERS, int(OpCode.multi), _MULTI_END)),
        (ServerConnection, "complete", m.completer(OwedWrite, ServerConnection, ZKServer, _handed_to_python)),
    ]]
    with pipeline(plain):
        frames = [_frame(1, OpCode.create, CreateRequest("/a", b"x", _OPEN, 0)),
                  _frame(2, OpCode.getData, PathWatchRequest("/a", False)),
                  _frame(3, OpCode.setData, SetDataRequest("/a", b"yz", 0)),
                  _frame(4, OpCode.create2, CreateRequest("/a/b", b"", _OPEN, 0)),
                  _frame(5, OpCode.delete, DeleteRequest("/a/b", -1)),
                  _multi_frame(6, [(OpCode.create, CreateRequest("/m", b"", _OPEN, 0)),
                                   (OpCode.setData, SetDataRequest("/m", b"v", -1))])]
        client.conn.dataReceived(b"".join(frames))
        clock.advance(0)
    replies = client.replies()
    assert [(h.xid, h.err) for h, _ in replies] == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)]
    assert replies[0][1] == b"\x00\x00\x00\x02/a"  # CreateResponse
    assert replies[1][1][:5] == b"\x00\x00\x00\x01x"  # the read waited for the create
    assert replies[3][1][:8] == b"\x00\x00\x00\x04/a/b" and len(replies[3][1]) == 8 + 68  # Create2Response
    assert server.tree.nodes["/a"].data == b"yz" and "/a/b" not in server.tree.nodes
    assert replies[5][1][:15] == _MULTI_OK_HEADERS[OpCode.create] + b"\x00\x00\x00\x02/m"
    assert replies[5][1][-9:] == _MULTI_END and len(replies[5][1]) == 15 + 9 + 68 + 9
    assert server.tree.last_zxid == replies[5][0].zxid
    with pipeline(plain):  # reads with no write before them are answered at once
        client.conn.dataReceived(_frame(7, OpCode.getData, PathWatchRequest("/a", False))
                                 + _frame(8, OpCode.exists, PathWatchRequest("/m", False)))
    (get, data), (exists, stat) = client.replies()
    assert (get.xid, get.err, get.zxid, exists.xid, exists.err) == (7, 0, server.tree.last_zxid, 8, 0)
    assert data == server.tree.nodes["/a"].data_reply() and stat == server.tree.nodes["/m"].stat_bytes()


@needs_native
@settings(max_examples=300)
@given(changes=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["/a", "/b", "/c"])), max_size=8),
       upto=st.integers(0, 30))
def test_applied_changes_are_forgotten_in_c_as_in_python(changes: list[tuple[int, str]], upto: int) -> None:
    preps = [Prep(DataTree(), AccessControl({}), SessionTracker(1, 2000, 0), False, lambda: 0) for _ in range(2)]
    for prep in preps:
        zxid = 0
        for step, path in changes:
            zxid += step
            prep._add(_Change(zxid, path, True, 0, 0, 0, 0, (), 0))
    assert Prep.applied is not PY_APPLIED
    preps[0].applied(upto)
    PY_APPLIED(preps[1], upto)
    by_c, by_python = ((sorted((path, ch.zxid) for path, ch in p._pending.items()),
                        [(ch.zxid, ch.path) for ch in p._order]) for p in preps)
    assert by_c == by_python


@needs_native
@given(t=st.floats(allow_nan=False, width=64) | st.integers(-2**70, 2**70))
def test_a_millisecond_clock_reads_in_c_as_in_python(t: float) -> None:
    assert native.MODULE is not None
    now_ms = native.MODULE.ms_clock(lambda: t)

    def outcome(f: Any) -> Any:
        try:
            return f()
        except OverflowError as e:
            return type(e)

    assert outcome(now_ms) == outcome(lambda: int(t * 1000))
