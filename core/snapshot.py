"""ZooKeeper's snapshot serialization of a DataTree and the session table (quorum.md 4.3, 2.5).

A snapshot file::

    FileHeader {int magic "ZKSN", int version 2, long dbid -1}
    int sessionCount, (long sessionId, int timeoutMs)*
    int aclCount, (long ref, vector<ACL>)*            ref -1 = OPEN_ACL_UNSAFE, never listed
    (ustring path, buffer data, long aclRef, StatPersisted)*   pre-order, the root's path ""
    ustring "/"                                       end of nodes
    long adler32(bytes so far), ustring "/"           seal 1
    long zxid, int digestVersion 2, long digest       ZxidDigest
    long adler32(bytes so far, from byte 0), ustring "/"   seal 2

The SNAP payload of the learner protocol is the part from the session count to the "/" end
marker (`serialize_stream` / `deserialize_stream`).

ACL refs are numbered 1, 2, ... in order of first use; only nodes holding the very object
`core.acl.OPEN_ACL_UNSAFE` (the tree's built-in nodes, or nodes read with ref -1) are written
with ref -1, as ZooKeeper writes -1 only for nodes it created without an ACL list. Children
are written in sorted order (ZooKeeper's is hash order), so equal trees give equal bytes; for
sequential names that is also the order their znodes were made in, which a walk over memory
goes through faster than hash order.

Serializing reads the tree as it goes and is fuzzy like ZooKeeper's: it may be consumed while
the tree changes (on another thread); a node created or re-ACLed meanwhile may be missing or
carry a stale ACL, which replaying the log from `zxid` repairs (quorum.md 4.4).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator, Mapping

from core.acl import OPEN_ACL_UNSAFE
from core.records import ACL, Id
from core.tree import DIGEST_VERSION, NO_CHILDREN, NODE_VIEW, DataTree, Node

MAGIC = 0x5A4B534E  # "ZKSN"
VERSION = 2
DBID = -1
CHUNK = 1 << 16

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_HEADER = struct.Struct(">iiq")
_SESSION = struct.Struct(">qi")
_ACL_HEAD = struct.Struct(">qi")
_NODE_TAIL = struct.Struct(">qqqqqiiiqq")  # aclRef + StatPersisted
_DIGEST = struct.Struct(">qiq")
_END = b"\x00\x00\x00\x01/"  # ustring "/"


def serialize(tree: DataTree, sessions: Mapping[int, int], zxid: int) -> Iterator[bytes]:
    """The bytes of a snapshot file of `tree` and `sessions` ({session id: timeout ms}) taken
    when `zxid` was the last applied txn, in chunks; the digest section holds the tree's
    digest as it was when the iteration started."""
    digest = tree.digest
    check = zlib.adler32(b"")
    for chunk in _with_header(tree, sessions, zxid):
        check = zlib.adler32(chunk, check)
        yield chunk
    tail = _LONG.pack(check) + _END + _DIGEST.pack(zxid, DIGEST_VERSION, digest)
    check = zlib.adler32(tail, check)
    yield tail + _LONG.pack(check) + _END


def _with_header(tree: DataTree, sessions: Mapping[int, int], zxid: int) -> Iterator[bytes]:
    yield _HEADER.pack(MAGIC, VERSION, DBID)
    yield from serialize_stream(tree, sessions, zxid)


def serialize_stream(tree: DataTree, sessions: Mapping[int, int], upto: int | None = None) -> Iterator[bytes]:
    """The sessions, ACL cache and nodes up to the "/" end marker (the SNAP payload), in
    chunks of about 64 KiB.

    The tree may change between chunks (a fuzzy snapshot, made whole by replaying the log
    after `upto`, the zxid it was taken at): nodes created after `upto` are left out, since
    their creates replay; a node whose ACL changed meanwhile is fixed by its setACL's replay."""
    upto = tree.last_zxid if upto is None else upto
    parts = [_INT.pack(len(sessions))]
    parts.extend(_SESSION.pack(sid, timeout) for sid, timeout in list(sessions.items()))
    refs = _acl_refs(tree)
    parts.append(_INT.pack(len(refs)))
    for acl, ref in refs.values():
        parts.append(_ACL_HEAD.pack(ref, len(acl)))
        for entry in acl:
            parts.append(_INT.pack(entry.perms))
            parts.append(_ustring(entry.id.scheme))
            parts.append(_ustring(entry.id.id))
    yield b"".join(parts)
    yield from _nodes(tree, refs, upto)


def _acl_refs(tree: DataTree) -> dict[int, tuple[tuple[ACL, ...], int]]:
    """id(acl) -> (acl, ref) for every distinct ACL object in the tree but OPEN_ACL_UNSAFE, in
    order of first use (in C with the accelerator)."""
    refs = None if NODE_VIEW is None else NODE_VIEW.acl_refs(tree.nodes, OPEN_ACL_UNSAFE)
    return py_acl_refs(tree) if refs is None else refs


def py_acl_refs(tree: DataTree) -> dict[int, tuple[tuple[ACL, ...], int]]:
    """_acl_refs in Python."""
    refs: dict[int, tuple[tuple[ACL, ...], int]] = {}
    for node in list(tree.nodes.values()):
        acl = node.acl
        if acl is not OPEN_ACL_UNSAFE and id(acl) not in refs:
            refs[id(acl)] = (acl, len(refs) + 1)
    return refs


def _nodes(tree: DataTree, refs: dict[int, tuple[tuple[ACL, ...], int]], upto: int) -> Iterator[bytes]:
    """The node records in pre-order, then the "/" end marker, in chunks of about CHUNK bytes
    (written in C with the accelerator: `write_nodes`)."""
    stack = ["/"]
    while stack:
        yield write_nodes(tree.nodes, stack, refs, OPEN_ACL_UNSAFE, upto, CHUNK, _node_record)
    yield _END


def py_write_nodes(nodes: dict[str, Node], stack: list[str], refs: dict[int, tuple[tuple[ACL, ...], int]],
                   open_acl: tuple[ACL, ...], upto: int, limit: int,
                   record: Callable[[str, Node, dict[int, tuple[tuple[ACL, ...], int]], int], bytes | None]) -> bytes:
    """The records of the nodes popped from `stack` (paths; each written node's children are
    pushed, to be popped in sorted order) until `limit` bytes or the stack is empty. A path no
    longer in `nodes`, or whose `record` is None, is skipped with its subtree."""
    parts: list[bytes] = []
    size = 0
    while stack and size < limit:
        path = stack.pop()
        node = nodes.get(path)
        rec = None if node is None else record(path, node, refs, upto)
        if rec is None:
            continue
        parts.append(rec)
        size += len(rec)
        prefix = "" if path == "/" else path
        stack.extend(f"{prefix}/{child}" for child in sorted(node.children, reverse=True))  # type: ignore[union-attr]
    return b"".join(parts)


def _node_record(path: str, node: Node, refs: dict[int, tuple[tuple[ACL, ...], int]], upto: int) -> bytes | None:
    """One node's record, or None for a node created after `upto` (its create replays)."""
    if node.czxid > upto:
        return None
    acl = node.acl
    ref = -1 if acl is OPEN_ACL_UNSAFE else refs.get(id(acl), (acl, -1))[1]
    name = b"" if path == "/" else path.encode("utf-8", "surrogatepass")
    data = node.data
    return b"".join((
        _INT.pack(len(name)), name, _INT.pack(len(data)), data,
        _NODE_TAIL.pack(ref, node.czxid, node.mzxid, node.ctime, node.mtime, node.version,
                        node.cversion, node.aversion, node.ephemeral_owner, node.pzxid)))


write_nodes = py_write_nodes if NODE_VIEW is None else NODE_VIEW.write_nodes


def _ustring(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return _INT.pack(len(b)) + b


def deserialize(data: bytes) -> tuple[DataTree, dict[int, int], int]:
    """Rebuild (tree, sessions, zxid) from a snapshot file's bytes, checking its header and
    seals. Reads 3.8 files with or without the digest section and 3.9 files with the
    lastProcessedZxid section. `zxid` is the last of those sections' zxid, 0 when the file has
    none; ZooKeeper writes 0 in the digest section when nothing was applied since it loaded,
    so the file name's zxid is authoritative. The tree's last_zxid is set to it.
    Raises ValueError naming the problem on a truncated or corrupt snapshot."""
    view = memoryview(data)
    try:
        magic, version, _ = _HEADER.unpack_from(view, 0)
    except struct.error:
        raise ValueError("snapshot truncated in its file header") from None
    if magic != MAGIC:
        raise ValueError(f"not a snapshot: magic {magic:#x}, expected {MAGIC:#x}")
    if version != VERSION:
        raise ValueError(f"unsupported snapshot version {version}")
    tree, sessions, off = deserialize_stream(data, _HEADER.size)
    off = _check_seal(view, off, "first")
    zxid = 0
    if len(view) - off >= _DIGEST.size + 13:  # ZxidDigest (written when digest is enabled)
        zxid, _digest_version, _digest = _unpack(_DIGEST, view, off)
        off = _check_seal(view, off + _DIGEST.size, "digest")
    if len(view) - off == _LONG.size + 13:  # 3.9: long lastProcessedZxid + seal
        (zxid,) = _unpack(_LONG, view, off)
        off = _check_seal(view, off + _LONG.size, "lastProcessedZxid")
    if off != len(view):
        raise ValueError(f"snapshot has {len(view) - off} unexpected bytes after its last seal")
    tree.last_zxid = zxid
    return tree, sessions, zxid


def _check_seal(view: memoryview, off: int, which: str) -> int:
    """Check the Adler32 seal at `off` (covering every byte before it); return its end."""
    (stored,) = _unpack(_LONG, view, off)
    if bytes(view[off + 8:off + 13]) != _END:
        raise ValueError(f"snapshot {which} seal is not followed by '/' at byte {off + 8}")
    actual = zlib.adler32(view[:off])
    if stored != actual:
        raise ValueError(f"snapshot {which} checksum mismatch at byte {off}: "
                         f"stored {stored:#x}, computed {actual:#x}")
    return off + 13


def deserialize_stream(data: bytes, offset: int = 0) -> tuple[DataTree, dict[int, int], int]:
    """Read sessions, ACL cache and nodes up to the "/" end marker starting at `offset`;
    return (tree, sessions, offset after the marker). Raises ValueError when truncated or
    inconsistent (unknown ACL ref, node without parent)."""
    view = memoryview(data)
    off = offset
    (count,) = _unpack(_INT, view, off)
    off += 4
    sessions: dict[int, int] = {}
    for _ in range(count):
        sid, timeout = _unpack(_SESSION, view, off)
        sessions[sid] = timeout
        off += _SESSION.size
    tree = DataTree()
    acls, off = _read_acls(tree, view, off)
    off = _read_nodes(tree, acls, data, off)
    return tree, sessions, off


def _read_acls(tree: DataTree, view: memoryview, off: int
               ) -> tuple[dict[int, tuple[ACL, ...]], int]:
    (count,) = _unpack(_INT, view, off)
    off += 4
    acls: dict[int, tuple[ACL, ...]] = {-1: OPEN_ACL_UNSAFE}
    for _ in range(count):
        ref, n = _unpack(_ACL_HEAD, view, off)
        off += _ACL_HEAD.size
        entries = []
        for _ in range(max(n, 0)):
            (perms,) = _unpack(_INT, view, off)
            scheme, off = _read_string(view, off + 4)
            ident, off = _read_string(view, off)
            entries.append(ACL(perms, Id(scheme, ident)))  # type: ignore[arg-type]
        acls[ref] = tree.intern_acl(entries)
    return acls, off


def _read_nodes(tree: DataTree, acls: dict[int, tuple[ACL, ...]], data: bytes, off: int) -> int:
    """Read nodes up to the "/" marker into `tree`; return the offset after it. One loop with
    the record layout read in place: this is most of a restart's time. With the accelerator,
    C reads the runs of plain records (`read_plain_nodes`) and this loop the others."""
    fast = NODE_VIEW is not None and type(data) is bytes
    size = len(data)
    unpack_int = _INT.unpack_from
    unpack_tail = _NODE_TAIL.unpack_from
    tail = _NODE_TAIL.size
    add = tree.add_node
    try:
        while True:
            if fast:
                off, digests = NODE_VIEW.read_plain_nodes(data, off, acls, tree.nodes, NO_CHILDREN)  # type: ignore[union-attr]
                tree.count_digests(digests)
            (n,) = unpack_int(data, off)
            off += 4
            if n < 0:
                raise ValueError(f"snapshot has a null node path before byte {off}")
            end = off + n
            if end > size:
                raise ValueError(f"snapshot truncated in a string at byte {off}")
            raw = data[off:end]
            off = end
            try:
                path = raw.decode()
            except UnicodeDecodeError:
                path = raw.decode("utf-8", "replace")
            if path == "/":
                return off
            (n,) = unpack_int(data, off)
            off += 4
            if n > 0:
                end = off + n
                if end > size:
                    raise ValueError(f"snapshot truncated in the data of {path!r}")
                value = data[off:end]
                off = end
            else:
                value = b""
            (ref, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
             pzxid) = unpack_tail(data, off)
            off += tail
            acl = acls.get(ref)
            if acl is None:
                raise ValueError(f"snapshot node {path!r} names unknown ACL ref {ref}")
            node = Node(value, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
                        pzxid)
            try:
                add(path, node)
            except ValueError:
                raise ValueError(f"snapshot node {path!r} comes before its parent") from None
    except struct.error:
        raise ValueError(f"snapshot truncated at byte {off} ({size} bytes)") from None


def _read_string(view: memoryview, off: int) -> tuple[str | None, int]:
    (n,) = _unpack(_INT, view, off)
    off += 4
    if n < 0:
        return None, off
    if off + n > len(view):
        raise ValueError(f"snapshot truncated in a string at byte {off}")
    return str(view[off:off + n], "utf-8", "replace"), off + n


def _unpack(st: struct.Struct, view: memoryview, off: int) -> tuple[int, ...]:
    try:
        return st.unpack_from(view, off)
    except struct.error:
        raise ValueError(f"snapshot truncated at byte {off} ({len(view)} bytes)") from None
