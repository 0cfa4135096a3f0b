"""The C accelerator (core/_native.c) against the Python code it stands in for: the same bytes,
records, digests and errors for any input; and the unit suite on the pure-Python path."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

import core.records
from core import native, snapshot
from core.acl import OPEN_ACL_UNSAFE, AccessControl
from core.interfaces import Request
from core.jute import Record, _jute_kind
from core.records import ACL, ACL_LISTS, CreateRequest, DeleteRequest, Id, SetDataRequest
from core.opcodes import OpCode
from core.records import MultiHeader, SetDataTxn, TxnDigest
from core.paths import py_valid_path
from core.prep import PY_CREATE, PY_DELETE, PY_SET_DATA, Prep, _Change
from core.requests import MULTI_OPS, MULTI_READ_OPS, decode_multi, py_decode_multi
from core.sessions import SessionTracker
from core.txn import BODY, Txn, encode_txn, py_encode_txn
from core.tree import NODE_VIEW, PY_STAT_BYTES, DataTree, Node, TxnResult, py_node_digest
from core.tree import NO_CHILDREN, PY_CREATE as PY_APPLY_CREATE, PY_DELETE as PY_APPLY_DELETE
from core.tree import PY_SET_DATA as PY_APPLY_SET_DATA

ROOT = Path(__file__).resolve().parents[2]

needs_native = pytest.mark.skipif(native.MODULE is None, reason="the C accelerator is not built (or switched off)")

RECORDS = sorted((c for c in vars(core.records).values()
                  if isinstance(c, type) and issubclass(c, Record) and c is not Record),
                 key=lambda c: c.__name__)
NATIVE_RECORDS = [c for c in RECORDS if c.native_codec is not None]


def outcome(f: Any, *args: Any) -> tuple[Any, ...]:
    """What calling f gives: ('ok', result) or ('error', exception type, message)."""
    try:
        return ("ok", f(*args))
    except Exception as e:  # the comparison is the point: any exception, same on both sides
        return ("error", type(e), str(e))


def test_the_accelerator_is_built_in_ci() -> None:
    if os.environ.get("CI") == "true" and not os.environ.get("ZKSERVER_PURE_PYTHON"):
        assert native.MODULE is not None, "core/_native.c did not build: the install needs gcc and Python's headers"


@needs_native
def test_the_hot_records_have_a_c_codec() -> None:
    names = {c.__name__ for c in NATIVE_RECORDS}
    assert {"SetDataRequest", "CreateRequest", "PathWatchRequest", "DeleteRequest", "SetDataTxn",
            "CreateTxn", "Stat", "ReplyHeader", "TxnDigest"} <= names
    assert core.records.GetChildrenResponse.native_codec is None  # a plain vector: Python's codec


_INT32 = st.integers(-2**31, 2**31 - 1)
_INT64 = st.integers(-2**63, 2**63 - 1)
_TEXT = st.text(max_size=12)
_OPEN = (ACL(31, Id("world", "anyone")),)  # equal to OPEN_ACL_UNSAFE, not the same object


def values(hint: Any) -> st.SearchStrategy[Any]:
    """Values a declared field holds: in range, of the declared type."""
    kind, arg = _jute_kind(hint)
    if kind == "fixed":
        return st.booleans() if arg == "?" else _INT32 if arg == "i" else _INT64
    if kind == "buffer":
        return st.one_of(st.none(), st.binary(max_size=40))
    if kind == "ustring":
        return st.one_of(st.none(), _TEXT)
    if kind == "record":
        return instances(arg)
    if kind == "interned":
        return st.one_of(st.none(), st.just(_OPEN), st.lists(instances(arg[0]), max_size=2).map(tuple))
    return st.one_of(st.none(), st.lists(values(arg), max_size=3))


def odd_values(hint: Any) -> st.SearchStrategy[Any]:
    """Values the C code hands to Python: out of range, lone surrogates, not the declared type."""
    kind, arg = _jute_kind(hint)
    if kind == "fixed":
        return st.sampled_from([1, 0, None]) if arg == "?" else st.sampled_from(
            [2**31, -2**31 - 1, 2**63, -2**63 - 1, 1.5, None, True])
    if kind == "buffer":
        return st.sampled_from([bytearray(b"ab"), memoryview(b"cd"), "text", 5])
    if kind == "ustring":
        return st.sampled_from(["\ud800", "a\udfff", b"bytes", 5])
    if kind == "interned":
        return st.lists(instances(arg[0]), max_size=2)  # a list: not one of the table's tuples
    return st.sampled_from([None, 5])


@st.composite
def instances(draw: st.DrawFn, cls: Any, odd: bool = True) -> Any:
    """A record of in-range values; with `odd`, one time in three one field holds an odd value."""
    fields = cls._jute_fields
    args = [draw(values(h)) for _, h in fields]
    if odd and fields and draw(st.integers(0, 2)) == 0:
        i = draw(st.integers(0, len(fields) - 1))
        args[i] = draw(odd_values(fields[i][1]))
    return cls(*args)


@needs_native
@given(data=st.data())
def test_c_codec_encodes_and_decodes_as_the_python_codec(data: st.DataObject) -> None:
    # every record in each example: hypothesis inside pytest.mark.parametrize fails under pytest-twisted
    for cls in NATIVE_RECORDS:
        obj = data.draw(instances(cls), label=cls.__name__)
        c, py = cls.native_codec, cls.py_codec
        assert outcome(c.encode, obj) == outcome(py.encode, obj)
        assert (outcome(lambda: b"".join(c.encode_into(obj, [b"<"])))
                == outcome(lambda: b"".join(py.encode_into(obj, [b"<"]))))
        encoded = outcome(py.encode, obj)
        if encoded[0] != "ok":
            continue
        raw = encoded[1]
        cut = data.draw(st.integers(0, len(raw)))
        tail = data.draw(st.binary(max_size=8))
        lead = data.draw(st.binary(max_size=4))
        for buf, off in ((raw, 0), (raw[:cut], 0), (lead + raw + tail, len(lead)), (bytearray(raw), 0)):
            assert outcome(c.decode, buf, off) == outcome(py.decode, buf, off), cls


@st.composite
def txns(draw: st.DrawFn) -> Txn:
    """A Txn of any type BODY knows (a multi of such sub-txns), with or without a digest; now
    and then an odd one: a header value out of range, an unknown type, a body of another type,
    a multi's body not a list of pairs."""
    types = sorted(BODY)
    t = draw(st.one_of(st.just(OpCode.multi), st.sampled_from(types)))
    if t == OpCode.multi:
        subs = draw(st.lists(st.sampled_from(types), max_size=4))
        body: Any = [(st_, draw(instances(BODY[st_], odd=draw(st.integers(0, 9)) == 0))) for st_ in subs]
    else:
        body = draw(st.one_of(st.none(), instances(BODY[t])))
    digest = draw(st.one_of(st.none(), instances(TxnDigest)))
    header = [draw(_INT64), draw(_INT32), draw(_INT64), draw(_INT64), int(t)]
    odd = draw(st.integers(0, 9))
    if odd == 0:
        header[draw(st.integers(0, 4))] = draw(st.sampled_from([2**63, -2**31 - 1, 2**31, None, 1.5]))
    elif odd == 1:
        header[4] = draw(st.sampled_from([-2, 99, 1000]))
    elif odd == 2:
        body = draw(st.sampled_from([5, (), [(5,)], [[5, None]], ((5, SetDataTxn("/a", b"", 1)),)]))
    elif odd == 3 and body:
        body = draw(instances(core.records.Stat))
    return Txn(*header, body, digest)


@needs_native
@settings(max_examples=300)
@given(txn=txns())
def test_a_txn_is_encoded_in_c_as_in_python(txn: Txn) -> None:
    assert encode_txn is not py_encode_txn
    assert outcome(encode_txn, txn) == outcome(py_encode_txn, txn)


@st.composite
def multi_requests(draw: st.DrawFn) -> tuple[bytes, int]:
    """A multi's body at an offset: ops allowed or not, records as encoded (a null path now and
    then), the end marker, or not; sometimes cut short or with a byte changed."""
    parts = [draw(st.binary(max_size=3))]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from([*MULTI_OPS] * 4 + [*MULTI_READ_OPS, OpCode.multi, 99]))
        parts.append(MultiHeader(op, False, -1).encode())
        cls = MULTI_OPS.get(op) or MULTI_READ_OPS.get(op)
        if cls is not None:  # (a nested record may hold an odd value: then no record)
            rec = draw(instances(cls, odd=False))
            if rec.path is None and draw(st.integers(0, 4)):
                rec.path = "/p"
            encoded = outcome(cls.py_codec.encode, rec)
            parts.append(encoded[1] if encoded[0] == "ok" else b"")
    if draw(st.integers(0, 4)):
        parts.append(MultiHeader(-1, True, -1).encode()[:4] + bytes([draw(st.sampled_from([1, 2]))]) + b"\xff" * 4)
    raw = b"".join(parts)
    if raw and draw(st.integers(0, 5)) == 0:
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    if raw and draw(st.integers(0, 5)) == 0:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    return raw, len(parts[0])


@needs_native
@settings(max_examples=300)
@given(request=multi_requests(), off=st.integers(-1, 2))
def test_a_multi_request_is_decoded_in_c_as_in_python(request: tuple[bytes, int], off: int) -> None:
    assert decode_multi is not py_decode_multi
    raw, lead = request
    for allowed in (MULTI_OPS, MULTI_READ_OPS):
        for start in (lead, lead + off):
            assert outcome(decode_multi, raw, start, allowed) == outcome(py_decode_multi, raw, start, allowed)


@needs_native
@given(buf=st.binary(max_size=64), off=st.integers(-2, 70))
def test_c_codec_decodes_any_bytes_as_the_python_codec(buf: bytes, off: int) -> None:
    for cls in NATIVE_RECORDS:
        assert outcome(cls.native_codec.decode, buf, off) == outcome(cls.py_codec.decode, buf, off), cls


@needs_native
def test_an_interned_vector_other_than_the_last_is_decoded_by_python_and_becomes_the_last() -> None:
    mine = (ACL(1, Id("digest", "me:x")),)
    raw = CreateRequest("/a", b"", mine, 0).encode() + CreateRequest("/b", b"", _OPEN, 0).encode()
    first, off = CreateRequest.decode(raw, 0)
    assert first.acl == mine and ACL_LISTS.last[1] is first.acl
    second, _ = CreateRequest.decode(raw, off)
    assert second.acl == _OPEN and ACL_LISTS.last[1] is second.acl
    again, _ = CreateRequest.decode(raw, off)  # the last one: matched by its bytes in C
    assert again.acl is second.acl


@needs_native
def test_record_methods_bind_as_the_python_ones_do() -> None:
    r = SetDataRequest("/p", b"v", 7)
    assert r.encode() == SetDataRequest.encode(r) == SetDataRequest.py_codec.encode(r)
    assert r.encode_into([b"x"]) == [b"x", r.encode()]
    assert SetDataRequest.decode(r.encode()) == (r, len(r.encode()))


_NAMES = st.sets(st.text("abc", min_size=1, max_size=2), max_size=3)
_NODE_INTS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "ephemeral_owner", "pzxid")
_OWNERS = st.sampled_from([0, 5, -2**63, -0x100000000000000 | 7, -0x100000000000000 | (1 << 40), -1])


@st.composite
def nodes(draw: st.DrawFn) -> Node:
    """A node of in-range values (its owner often a container's or a TTL's marker); one time in
    three, one slot holds a value the C code hands to Python."""
    node = Node(draw(st.binary(max_size=40)), (),
                *(draw(_INT32 if name in ("version", "cversion", "aversion") else _INT64) for name in _NODE_INTS))
    if draw(st.booleans()):
        node.ephemeral_owner = draw(_OWNERS)
    names = draw(_NAMES)
    if names:
        node.children = set(names) if draw(st.booleans()) else frozenset(names)
    if draw(st.integers(0, 2)) == 0:
        slot = draw(st.sampled_from(("data", "children") + _NODE_INTS))
        odd = {"data": bytearray(b"x"), "children": ["a"]}.get(slot, 2**31 if slot in ("version", "cversion", "aversion") else 2**63)
        setattr(node, slot, odd)
    return node


@needs_native
@given(node=nodes(), path=st.one_of(st.sampled_from(["/", "/zookeeper", "/zookeeper/quota", "/a/b", "/a\udc80"]), _TEXT))
def test_node_digest_and_stat_bytes_in_c_are_the_python_ones(node: Node, path: str) -> None:
    assert NODE_VIEW is not None
    assert outcome(NODE_VIEW.digest, path, node) == outcome(py_node_digest, path, node)
    assert outcome(NODE_VIEW.stat_bytes, node) == outcome(PY_STAT_BYTES, node)
    assert outcome(node.stat_bytes) == outcome(PY_STAT_BYTES, node)


@needs_native
@given(data=st.data(), limit=st.integers(1, 400), upto=st.integers(0, 40))
def test_snapshot_records_in_c_are_the_python_ones(data: st.DataObject, limit: int, upto: int) -> None:
    """A tree of odd nodes too (out-of-range values, lone surrogates, shared and unknown ACLs,
    nodes created after `upto`), written in chunks: the same bytes and the same stack."""
    tree = DataTree()
    mine, unknown = (ACL(1, Id("digest", "me:x")),), (ACL(3, Id("ip", "127.0.0.1")),)
    names = data.draw(st.lists(st.sampled_from(["a", "b", "c", "\udc80", "d"]), min_size=1, max_size=8))
    paths = ["/"]
    for i, name in enumerate(names):
        parent = data.draw(st.sampled_from(paths))
        path = ("" if parent == "/" else parent) + "/" + name + str(i)
        node = data.draw(nodes())
        node.children = frozenset()
        node.czxid = data.draw(st.integers(0, 50))
        node.acl = data.draw(st.sampled_from([OPEN_ACL_UNSAFE, mine, unknown]))
        tree.nodes[path] = node  # placed by hand: the tree's digest refuses odd values
        tree.nodes[parent].children = {*tree.nodes[parent].children, path.rsplit("/", 1)[1]}
        paths.append(path)
    refs = snapshot._acl_refs(tree)
    assert refs == snapshot.py_acl_refs(tree) and list(refs.values()) == list(snapshot.py_acl_refs(tree).values())
    refs.pop(id(unknown), None)  # an ACL not in the refs: written as -1, by both
    c_stack, py_stack = ["/"], ["/"]
    while py_stack:
        expected = outcome(snapshot.py_write_nodes, tree.nodes, py_stack, refs, OPEN_ACL_UNSAFE, upto, limit,
                           snapshot._node_record)
        assert outcome(snapshot.write_nodes, tree.nodes, c_stack, refs, OPEN_ACL_UNSAFE, upto, limit,
                       snapshot._node_record) == expected
        assert c_stack == py_stack
        if expected[0] != "ok":
            break


_SLOTS = Node.__slots__


def _state(tree: DataTree) -> tuple[Any, ...]:
    """Everything a loaded tree holds, by value (each node's slots; the indexes; the digest)."""
    nodes = {p: tuple(getattr(n, k) for k in _SLOTS) for p, n in tree.nodes.items()}
    return (nodes, tree.digest, {k: set(v) for k, v in tree.ephemerals.items()}, set(tree.containers),
            set(tree.ttls))


@needs_native
@given(data=st.data())
def test_reading_a_snapshot_in_c_gives_the_tree_the_python_reader_gives(data: st.DataObject) -> None:
    """Plain nodes and the others (ephemeral, container and TTL owners, non-ASCII names, a
    node re-read over one present), whole and cut short or corrupted anywhere."""
    tree = DataTree()
    paths = ["/"]
    owners = st.sampled_from([0, 0, 0, 0x1234, -2**63, -0x100000000000000 | 5])
    for i, name in enumerate(data.draw(st.lists(st.sampled_from(["a", "b", "é", "c"]), min_size=1, max_size=10))):
        parent = data.draw(st.sampled_from(paths))
        if tree.nodes[parent].ephemeral_owner:
            continue
        path = ("" if parent == "/" else parent) + "/" + name + str(i)
        owner = data.draw(owners)
        node = Node(data.draw(st.binary(max_size=20)), data.draw(st.sampled_from([OPEN_ACL_UNSAFE, _OPEN])),
                    *(data.draw(st.integers(0, 9)) for _ in range(4)), *(data.draw(st.integers(-3, 3)) for _ in range(3)),
                    owner, data.draw(st.integers(0, 9)))
        tree.add_node(path, node)
        paths.append(path)
    raw = b"".join(snapshot.serialize(tree, {5: 4000}, 9))
    cut = data.draw(st.integers(0, len(raw)))
    flip = data.draw(st.integers(0, len(raw) - 1))
    corrupt = raw[:flip] + bytes([raw[flip] ^ data.draw(st.integers(1, 255))]) + raw[flip + 1:]
    for buf in (raw, raw[:cut], corrupt):
        by_c = outcome(snapshot.deserialize_stream, buf, 16)
        pure = snapshot.NODE_VIEW
        snapshot.NODE_VIEW = None
        try:
            by_python = outcome(snapshot.deserialize_stream, buf, 16)
        finally:
            snapshot.NODE_VIEW = pure
        if by_python[0] == "ok":
            assert by_c[0] == "ok" and by_c[1][1:] == by_python[1][1:]
            assert _state(by_c[1][0]) == _state(by_python[1][0])
        else:
            assert by_c == by_python


def _handed_to_python(*args: Any) -> Any:
    """The Python method of a C function under test that must not hand its call over."""
    raise AssertionError("handed to the Python method")


_ANYONE = Id("world", "anyone")
_PREP_ACLS = [tuple(_OPEN), (ACL(1, _ANYONE),), (ACL(2, _ANYONE),), (ACL(1, _ANYONE), ACL(2, _ANYONE)), (),
              (ACL(31, Id("digest", "alice:x")),), (ACL(31, Id("world", "someone")),), (ACL(2 | 2**40, _ANYONE),)]
_VERSIONS = [0, 2**31 - 1, -2, -2**31, -1, 2**31]


_CVERSIONS = [3, 2**31 - 1, -2**31, -1]
_PREP_OWNERS = [5, -2**63]  # a session's, a container's


@st.composite
def prep_plans(draw: Any) -> Any:
    """What a Prep holds: per path, maybe a node and maybe a pending change; and its undo list."""
    nodes = {}
    for path in ("/a", "/b", "/c", "/a/x0000000003"):
        version, acl = draw(st.sampled_from(_VERSIONS)), draw(st.just(tuple(_OPEN)) | st.sampled_from(_PREP_ACLS))
        cversion, owner = draw(st.sampled_from(_CVERSIONS)), draw(st.just(0) | st.sampled_from(_PREP_OWNERS))
        children = draw(st.just([]) | st.lists(st.sampled_from("xyz"), max_size=2))
        node = (version, acl, frozenset(children), cversion, owner) if draw(st.booleans()) else None
        change = ((draw(st.booleans()), version, acl, draw(st.just(0) | st.integers(0, 2)), cversion, owner)
                  if draw(st.booleans()) else None)
        nodes[path] = (node, change)
    return nodes, draw(st.booleans())


def _prep_from(plan: Any) -> Prep:
    nodes, in_multi = plan
    tree = DataTree()
    prep = Prep(tree, AccessControl({}), SessionTracker(1, 2000, 0), False, lambda: 0)
    for path, (node, change) in nodes.items():
        if node is not None:
            version, acl, children, cversion, owner = node
            tree.nodes[path] = Node(b"d", acl, 1, 1, 0, 0, version, cversion, 4, owner, 1, set(children))
        if change is not None:
            exists, version, acl, nchildren, cversion, owner = change
            prep._add(_Change(1, path, exists, version, cversion, 8, owner, acl, nchildren))
    prep._undo = [] if in_multi else None
    return prep


def _prep_state(prep: Any) -> Any:
    def fields(c: Any) -> Any:
        return None if c is None else (c.zxid, c.path, c.exists, c.version, c.cversion, c.aversion,
                                       c.ephemeral_owner, c.acl, c.nchildren)
    undo = None if prep._undo is None else [(p, fields(c)) for p, c in prep._undo]
    return [(p, fields(c)) for p, c in prep._pending.items()], [fields(c) for c in prep._order], undo


def _assert_prepped_alike(name: str, python: Any, c_prep: Prep, py_prep: Prep, *args: Any) -> None:
    """Prep's method `name` (in C) and its Python method give the same outcome and records."""
    assert getattr(Prep, name) is not python
    assert outcome(getattr(c_prep, name), *args) == outcome(python, py_prep, *args)
    assert _prep_state(c_prep) == _prep_state(py_prep)


@needs_native
@settings(max_examples=300)
@given(plan=prep_plans(), data=st.data())
def test_a_set_data_is_prepped_in_c_as_in_python(plan: Any, data: st.DataObject) -> None:
    c_prep, py_prep = (_prep_from(plan) for _ in range(2))
    path = data.draw(st.sampled_from(["/a", "/b", "/c"]) | st.sampled_from(["/d", "", "bad"]))
    rec = SetDataRequest(path, b"new", data.draw(st.just(-1) | st.sampled_from(_VERSIONS + [3])))
    auth = data.draw(st.sampled_from([[], [Id("super", "x")], [Id("digest", "alice:x")]]))
    request = Request(5, 6, OpCode.setData, rec, b"", auth)
    _assert_prepped_alike("_set_data", PY_SET_DATA, c_prep, py_prep, OpCode.setData, rec, request, 10)


@needs_native
def test_a_plain_set_data_is_prepped_without_the_python_method() -> None:
    assert native.MODULE is not None
    set_data = native.MODULE.set_data_prepper(NODE_VIEW, _Change, SetDataRequest, SetDataTxn, _handed_to_python, 2, Prep, DataTree)
    prep = _prep_from(({"/a": ((4, tuple(_OPEN), frozenset("x"), 3, 0), None)}, True))
    request = Request(5, 6, OpCode.setData, None, b"", [])
    assert set_data(prep, OpCode.setData, SetDataRequest("/a", b"v", 4), request, 10) == SetDataTxn("/a", b"v", 5)
    assert set_data(prep, OpCode.setData, SetDataRequest("/a", b"w", -1), request, 11) == SetDataTxn("/a", b"w", 6)
    assert _prep_state(prep) == (
        [("/a", (11, "/a", True, 6, 3, 4, 0, _OPEN, 1))],
        [(10, "/a", True, 5, 3, 4, 0, _OPEN, 1), (11, "/a", True, 6, 3, 4, 0, _OPEN, 1)],
        [("/a", None), ("/a", (10, "/a", True, 5, 3, 4, 0, _OPEN, 1))])


@needs_native
@settings(max_examples=400)
@given(plan=prep_plans(), data=st.data())
def test_a_create_is_prepped_in_c_as_in_python(plan: Any, data: st.DataObject) -> None:
    c_prep, py_prep = (_prep_from(plan) for _ in range(2))
    t = data.draw(st.sampled_from([OpCode.create, OpCode.create2]) | st.sampled_from([OpCode.createContainer, 99]))
    path = data.draw(st.sampled_from(["/a/x", "/b/x", "/a/x0000000003", "/c/y"])
                     | st.sampled_from(["/d/x", "/a", "/c/", "/a/\0", "", "bad", "/a/..", "/", None]))
    acl = data.draw(st.just(list(_OPEN))
                    | st.sampled_from([[], [ACL(31, Id("auth", ""))], [ACL(1, _ANYONE), ACL(1, _ANYONE)]]))
    flags = data.draw(st.integers(0, 3) | st.sampled_from([4, 5, 6, 7, -1]))
    rec = CreateRequest(path, data.draw(st.none() | st.just(b"v")), acl, flags)
    request = Request(5, 6, t, rec, b"", [])
    _assert_prepped_alike("_create", PY_CREATE, c_prep, py_prep, t, rec, request, 10)


@needs_native
def test_a_plain_create_is_prepped_without_the_python_method() -> None:
    assert native.MODULE is not None
    create = native.MODULE.create_prepper(NODE_VIEW, _Change, CreateRequest, core.records.CreateTxn,
                                          _handed_to_python, 4, frozenset({OpCode.create, OpCode.create2}),
                                          Prep, DataTree)
    prep = _prep_from(({"/a": ((4, tuple(_OPEN), frozenset("x"), 3, 0), None)}, False))
    request = Request(5, 6, OpCode.create, None, b"", [])
    made = [create(prep, OpCode.create, CreateRequest("/a/s", b"v", list(_OPEN), flags), request, zxid)
            for zxid, flags in ((10, 2), (11, 1), (12, 3))]
    assert made == [core.records.CreateTxn("/a/s0000000003", b"v", _OPEN, False, 4),
                    core.records.CreateTxn("/a/s", b"v", _OPEN, True, 5),
                    core.records.CreateTxn("/a/s0000000005", b"v", _OPEN, True, 6)]
    assert _prep_state(prep)[0] == [
        ("/a", (12, "/a", True, 4, 6, 4, 0, _OPEN, 4)),
        ("/a/s0000000003", (10, "/a/s0000000003", True, 0, 0, 0, 0, _OPEN, 0)),
        ("/a/s", (11, "/a/s", True, 0, 0, 0, 5, _OPEN, 0)),
        ("/a/s0000000005", (12, "/a/s0000000005", True, 0, 0, 0, 5, _OPEN, 0))]


@needs_native
@settings(max_examples=400)
@given(plan=prep_plans(), data=st.data())
def test_a_delete_is_prepped_in_c_as_in_python(plan: Any, data: st.DataObject) -> None:
    c_prep, py_prep = (_prep_from(plan) for _ in range(2))
    path = data.draw(st.sampled_from(["/a", "/b", "/a/x0000000003", "/c"])
                     | st.sampled_from(["/d", "/", "/zookeeper", "/zookeeper/quota", "/a/\0", "", "bad", None]))
    node, change = plan[0].get(path, (None, None))
    held = [r[1] if r is change else r[0] for r in (node, change) if r is not None]  # its versions
    version = data.draw(st.sampled_from([-1, *held, *(v + 1 for v in held)]) | st.sampled_from(_VERSIONS))
    rec = DeleteRequest(path, version)
    request = Request(5, 6, OpCode.delete, rec, b"", [])
    _assert_prepped_alike("_delete", PY_DELETE, c_prep, py_prep, OpCode.delete, rec, request, 10)


@needs_native
def test_a_plain_delete_is_prepped_without_the_python_method() -> None:
    assert native.MODULE is not None
    delete = native.MODULE.delete_prepper(NODE_VIEW, _Change, DeleteRequest, core.records.DeleteTxn,
                                          _handed_to_python, 8, Prep, DataTree)
    prep = _prep_from(({"/a": ((4, tuple(_OPEN), frozenset("x"), 3, 0), None),
                        "/a/x0000000003": ((2, tuple(_OPEN), frozenset(), 3, 0), None)}, False))
    request = Request(5, 6, OpCode.delete, None, b"", [])
    txn = delete(prep, OpCode.delete, DeleteRequest("/a/x0000000003", 2), request, 10)
    assert txn == core.records.DeleteTxn("/a/x0000000003")
    assert _prep_state(prep)[0] == [("/a", (10, "/a", True, 4, 3, 4, 0, _OPEN, 0)),
                                    ("/a/x0000000003", (10, "/a/x0000000003", False, 0, 0, 0, 0, (), 0))]


def _assert_applied_alike(name: str, python: Any, c_tree: DataTree, py_tree: DataTree, *args: Any) -> None:
    """DataTree's method `name` (in C) and its Python method give the same outcome, nodes, digest,
    indexes and triggers."""
    assert getattr(DataTree, name) is not python
    assert outcome(getattr(c_tree, name), *args) == outcome(python, py_tree, *args)
    assert ({p: tuple(getattr(n, k) for k in _SLOTS) for p, n in c_tree.nodes.items()}
            == {p: tuple(getattr(n, k) for k in _SLOTS) for p, n in py_tree.nodes.items()})
    assert c_tree._digest == py_tree._digest
    assert (c_tree.ephemerals, c_tree.containers, c_tree.ttls) == (py_tree.ephemerals, py_tree.containers,
                                                                   py_tree.ttls)
    assert c_tree.listener.calls == py_tree.listener.calls  # type: ignore[attr-defined]


class _Recorder:
    """A tree listener that keeps every trigger."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def triggered(self, path: str, event_type: int, zxid: int, acl: Any) -> None:
        self.calls.append((path, event_type, zxid, acl))


@needs_native
@settings(max_examples=300)
@given(node=nodes(), path=st.sampled_from(["/a", "/zookeeper/q", "/a\udc80", "/"]), data=st.data())
def test_a_set_data_is_applied_in_c_as_in_python(node: Node, path: str, data: st.DataObject) -> None:
    if data.draw(st.booleans()):  # values the C code takes (unless the node's are odd)
        body = SetDataTxn(path, data.draw(st.binary(max_size=20)), data.draw(_INT32))
        zxid, time = data.draw(_INT64), data.draw(_INT64)
    else:
        body = SetDataTxn(data.draw(st.sampled_from([path, "/missing"])), data.draw(st.none() | st.binary(max_size=20)),
                          data.draw(st.sampled_from(_VERSIONS)))
        zxid, time = (data.draw(st.sampled_from([7, 2**63 - 1, 2**63])) for _ in range(2))
    c_tree, py_tree = DataTree(_Recorder()), DataTree(_Recorder())
    for tree in (c_tree, py_tree):
        tree.nodes[path] = replace(node, reply=b"a reply", digest=99)
        tree._digest = 12345
    _assert_applied_alike("_set_data", PY_APPLY_SET_DATA, c_tree, py_tree, OpCode.setData, body, 1, zxid, time)


@needs_native
@settings(max_examples=400)
@given(parent=nodes(), parent_path=st.sampled_from(["/a", "/zookeeper/q", "/a\udc80", "/"]), data=st.data())
def test_a_create_is_applied_in_c_as_in_python(parent: Node, parent_path: str, data: st.DataObject) -> None:
    path = ("" if parent_path == "/" else parent_path) + "/" + data.draw(st.sampled_from(["n", "m"]))
    if data.draw(st.booleans()):  # values the C code takes (unless the parent's are odd)
        t = data.draw(st.sampled_from([OpCode.create, OpCode.create2]))
        near = [parent.cversion + d for d in (-1, 0, 1)] if type(parent.cversion) is int else []
        body = core.records.CreateTxn(path, data.draw(st.binary(max_size=20)), list(_OPEN), False,
                                      data.draw(st.sampled_from([-1, *near]) | _INT32))
        zxid, time = data.draw(_INT64), data.draw(_INT64)
    else:
        t = data.draw(st.sampled_from([OpCode.create, OpCode.create2, OpCode.createContainer]))
        body = core.records.CreateTxn(data.draw(st.sampled_from([path, "/missing/n", "nothing"])),
                                      data.draw(st.none() | st.just(b"v")), list(_OPEN), data.draw(st.booleans()),
                                      data.draw(st.sampled_from(_VERSIONS)))
        zxid, time = (data.draw(st.sampled_from([7, 2**63 - 1, 2**63])) for _ in range(2))
    taken = data.draw(st.booleans())
    c_tree, py_tree = DataTree(_Recorder()), DataTree(_Recorder())
    for tree in (c_tree, py_tree):
        children = set(parent.children) if type(parent.children) is set else parent.children
        tree.nodes[parent_path] = replace(parent, reply=b"a reply", children_reply=b"names", digest=99,
                                          children=children)
        if taken:
            tree.nodes[path] = Node(b"", (), 1, 1, 1, 1, 0, 0, 0, 0, 1)
        tree._digest = 12345
    _assert_applied_alike("_create", PY_APPLY_CREATE, c_tree, py_tree, t, body, 5, zxid, time)


@needs_native
def test_a_plain_create_is_applied_without_the_python_method() -> None:
    assert native.MODULE is not None
    create = native.MODULE.create_applier(NODE_VIEW, core.records.CreateTxn, TxnResult, _handed_to_python,
                                          frozenset({OpCode.create}), 1, 4, DataTree)
    tree = DataTree(_Recorder())
    root, digest = tree.nodes["/"], tree.digest
    result = create(tree, OpCode.create, core.records.CreateTxn("/a", b"v", list(_OPEN), False, -1), 1, 2, 6)
    node = tree.nodes["/a"]
    assert (node.data, node.czxid, node.mzxid, node.ctime, node.mtime, node.pzxid) == (b"v", 2, 2, 6, 6, 2)
    assert (root.cversion, root.pzxid, root.children) == (1, 2, {"zookeeper", "a"})
    assert root.digest == py_node_digest("/", root)
    assert result == TxnResult(OpCode.create, 0, "/a", PY_STAT_BYTES(node))
    assert node.digest == py_node_digest("/a", node)
    assert tree.digest == (digest + node.digest + root.digest - py_node_digest("/", DataTree().nodes["/"])) % 2**64
    assert tree.listener.calls == [("/a", 1, 2, node.acl), ("/", 4, 2, root.acl)]  # type: ignore[attr-defined]


@needs_native
def test_each_tree_keeps_its_own_acls_when_creates_alternate_between_trees() -> None:
    """The C create remembers the last ACL it interned, for that tree only."""
    acl = (ACL(5, Id("digest", "u:x")),)
    given = list(acl)  # one object in every txn
    trees = [DataTree(), DataTree(), DataTree()]
    for i, tree in enumerate(trees * 2):
        tree.apply(Txn(1, 1, 10 + i, 0, OpCode.create, core.records.CreateTxn(f"/n{i}", b"", given, False, -1)))
    for tree in trees:
        assert all(node.acl is tree.intern_acl(acl) for path, node in tree.nodes.items() if path.startswith("/n"))
    assert trees[0].intern_acl(acl) is not trees[1].intern_acl(acl)


@needs_native
@settings(max_examples=400)
@given(parent=nodes(), node=nodes(), parent_path=st.sampled_from(["/a", "/zookeeper/q", "/a\udc80", "/"]),
       data=st.data())
def test_a_delete_is_applied_in_c_as_in_python(parent: Node, node: Node, parent_path: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["n", "m"]))
    path = ("" if parent_path == "/" else parent_path) + "/" + name
    body = core.records.DeleteTxn(data.draw(st.just(path) | st.sampled_from(["/missing/n", "/", "nothing"])))
    zxid = data.draw(st.sampled_from([parent.pzxid, 2**63]) | _INT64)
    owner = data.draw(st.just(0) | _OWNERS)
    listed, mutable, present = (data.draw(st.booleans()) for _ in range(3))
    c_tree, py_tree = DataTree(_Recorder()), DataTree(_Recorder())
    for tree in (c_tree, py_tree):
        kids = set(parent.children) | ({name} if listed else set())
        tree.nodes[parent_path] = replace(parent, reply=b"a reply", children_reply=b"names", digest=99,
                                          children=kids if mutable else frozenset(kids))
        if present:
            tree.nodes[path] = replace(node, ephemeral_owner=owner, digest=7)
            if owner:
                tree.ephemerals.setdefault(owner, set()).add(path)
        tree._digest = 12345
    _assert_applied_alike("_delete", PY_APPLY_DELETE, c_tree, py_tree, OpCode.delete, body, 5, zxid, 0)


@needs_native
def test_a_plain_delete_is_applied_without_the_python_method() -> None:
    assert native.MODULE is not None
    delete = native.MODULE.delete_applier(NODE_VIEW, core.records.DeleteTxn, TxnResult, _handed_to_python,
                                          NO_CHILDREN, 2, 4, DataTree)
    tree, twin = DataTree(_Recorder()), DataTree(_Recorder())
    for t in (tree, twin):
        t.apply(Txn(1, 1, 1, 5, OpCode.create, core.records.CreateTxn("/a", b"v", list(_OPEN), False, -1)))
        t.apply(Txn(1, 2, 2, 5, OpCode.create, core.records.CreateTxn("/a/b", b"w", list(_OPEN), False, -1)))
    parent, node = tree.nodes["/a"], tree.nodes["/a/b"]
    result = delete(tree, OpCode.delete, core.records.DeleteTxn("/a/b"), 1, 3, 6)
    assert result == PY_APPLY_DELETE(twin, OpCode.delete, core.records.DeleteTxn("/a/b"), 1, 3, 6)
    assert result == TxnResult(OpCode.delete, 0, "/a/b") and "/a/b" not in tree.nodes
    assert (parent.pzxid, parent.children, parent.digest) == (3, NO_CHILDREN, py_node_digest("/a", parent))
    assert tree.digest == twin.digest
    assert tree.listener.calls[-2:] == [("/a/b", 2, 3, node.acl), ("/a", 4, 3, parent.acl)]  # type: ignore[attr-defined]


@needs_native
def test_a_plain_set_data_is_applied_without_the_python_method() -> None:
    assert native.MODULE is not None
    set_data = native.MODULE.set_data_applier(NODE_VIEW, SetDataTxn, TxnResult, _handed_to_python, 3, DataTree)
    tree = DataTree(_Recorder())
    tree.apply(Txn(1, 1, 1, 5, OpCode.create, core.records.CreateTxn("/a", b"v", list(_OPEN), False, -1)))
    node, digest = tree.nodes["/a"], tree.digest
    result = set_data(tree, OpCode.setData, SetDataTxn("/a", b"w", 1), 1, 2, 6)
    assert (node.data, node.version, node.mzxid, node.mtime, node.reply) == (b"w", 1, 2, 6, None)
    assert result == TxnResult(OpCode.setData, 0, "/a", PY_STAT_BYTES(node))
    assert node.digest == py_node_digest("/a", node) and tree.digest != digest
    assert tree.listener.calls[-1] == ("/a", 3, 2, node.acl)  # type: ignore[attr-defined]


@native.fast_constructor
@dataclass(slots=True)
class _Sample:
    a: int
    b: Any
    c: str = "c"
    d: Any = None


@needs_native
@pytest.mark.parametrize("args, kwargs", [
    ((1, 2), {}), ((1, 2, "x", 4), {}), ((1,), {"b": 2}), ((), {"d": 4, "b": 2, "a": 1}),
    ((1, 2), {"c": "y"}), ((1, 2), {"".join(["c"]): "z"}),  # a name that is not the interned one
    ((1, 2, 3, 4, 5), {}), ((1,), {}), ((1, 2), {"a": 3}), ((1, 2), {"e": 3}), ((), {}),
])
def test_a_c_constructor_makes_what_init_makes_or_raises_what_it_raises(
        args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    made = outcome(lambda: _Sample(*args, **kwargs))
    assert made == outcome(lambda: type.__call__(_Sample, *args, **kwargs))  # __new__ + __init__
    if made[0] == "ok":
        assert type(made[1]) is _Sample


@needs_native
def test_znodes_made_or_loaded_stay_out_of_the_garbage_collector() -> None:
    tree = DataTree()
    tree.apply(Txn(1, 1, 1, 5, OpCode.create, core.records.CreateTxn("/a", b"v", list(_OPEN), False, -1)))
    tree.apply(Txn(1, 2, 2, 5, OpCode.create, core.records.CreateTxn("/a/b", b"w", list(_OPEN), False, -1)))
    loaded, _, _ = snapshot.deserialize(b"".join(snapshot.serialize(tree, {}, tree.last_zxid)))
    for t in (tree, loaded):
        assert not any(gc.is_tracked(node) for node in t.nodes.values())
        assert gc.is_tracked(t.nodes["/a"].children)  # a set: the collector still sees it
    assert gc.is_tracked(_Sample(1, 2))  # other classes' instances as ever


def test_only_plain_slotted_dataclasses_get_a_c_constructor() -> None:
    @dataclass
    class Unslotted:
        a: int

    @dataclass(slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(slots=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            self.a += 1

    class Plain:  # not a dataclass
        __slots__ = ("a",)

        def __init__(self, a: int) -> None:
            self.a = a

    for cls in (Unslotted, Factory, Post, Plain):
        native.fast_constructor(cls)
        assert "_native_maker" not in vars(cls)
    assert Post(1).a == 2
    assert ("_native_maker" in vars(_Sample)) == (native.MODULE is not None)

    class Sub(_Sample):  # not a dataclass of its own: the class's __init__, not the C one
        pass

    sub = Sub(1, 2)
    assert type(sub) is Sub and (sub.a, sub.b, sub.c, sub.d) == (1, 2, "c", None)


@pytest.mark.timeout(600)
@needs_native
def test_the_unit_suite_passes_on_the_pure_python_path() -> None:
    """The server without the accelerator: every unit test, with ZKSERVER_PURE_PYTHON=1."""
    env = {**os.environ, "ZKSERVER_PURE_PYTHON": "1"}
    probe = subprocess.run([sys.executable, "-c", "from core import native, records; "
                            "assert native.MODULE is None and records.SetDataRequest.native_codec is None"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/unit"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


_PATH_CHARS = st.sampled_from(["/", ".", "a", "\x00", "\x1f", " ", "\x7f", "\x9f", "\xa0", "\ud7ff", "\ud800",
                               "\uf8ff", "\uf900", "\uffef", "\ufff0", "\U0001f600", "é"])


_SEGMENTS = st.sampled_from(["", ".", "..", "...", ".a", "a.", "a", "é", "a\x00", "\x7fb", "\ud800", "\ufff0", "\U0001f600"])


@needs_native
@settings(max_examples=500)
@given(path=st.lists(_PATH_CHARS, max_size=8).map("".join) | st.text(max_size=8)
       | st.tuples(st.sampled_from(["", "/", "//"]), st.lists(_SEGMENTS, max_size=4)).map(lambda p: p[0] + "/".join(p[1])))
def test_paths_are_validated_in_c_as_in_python(path: str) -> None:
    assert native.MODULE is not None
    assert native.MODULE.valid_path(path) == py_valid_path(path)
