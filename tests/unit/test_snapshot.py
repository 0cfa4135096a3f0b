"""core.snapshot: ZooKeeper's snapshot format, against a Java-written 3.8.0 snapshot."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from core.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from core.opcodes import CONTAINER_EPHEMERAL_OWNER, OpCode
from core.records import ACL, CreateTTLTxn, CreateTxn, Id, SetACLTxn
from core.snapshot import deserialize, deserialize_stream, serialize, serialize_stream
from core.tree import DataTree
from core.txn import Txn

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zk38"
SESSION = 0x100000BFCC00001
OPEN = list(OPEN_ACL_UNSAFE)


def read_hex(name: str) -> bytes:
    lines = (FIXTURES / name).read_text().splitlines()
    return bytes.fromhex("".join(l.strip() for l in lines if l.strip() and not l.startswith("#")))


@pytest.fixture(scope="module")
def sample() -> bytes:
    return read_hex("snapshot-sample.hex")


def content(tree: DataTree) -> dict[str, tuple]:
    """Everything a snapshot holds about each node, ACL by value."""
    out = {}
    for path, n in tree.nodes.items():
        if path == "":
            continue
        acl = tuple((a.perms, a.id.scheme, a.id.id) for a in n.acl)
        out[path] = (n.data, acl, n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion,
                     n.aversion, n.ephemeral_owner, n.pzxid, frozenset(n.children))
    return out


def test_java_snapshot_loads(sample: bytes) -> None:
    tree, sessions, zxid = deserialize(sample)
    assert len(sample) == 1479
    assert zxid == 0x600000006 and tree.last_zxid == zxid
    assert sessions == {SESSION: 20000}
    assert sorted(p for p in tree.nodes if p) == [
        "/", "/a", "/cont", "/cont/child", "/d0", "/d1", "/d2", "/eph-held", "/fromfake",
        "/fromleader", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]
    root = tree.get("/")
    assert (root.cversion, root.pzxid) == (11, 0x600000006)
    assert root.stat().numChildren == 9
    a = tree.get("/a")
    assert a.data == b"mm"
    assert (a.czxid, a.mzxid, a.ctime, a.mtime) == (4294967298, 4294967305, 1795682696447,
                                                    1795682699338)
    assert (a.version, a.cversion, a.aversion, a.pzxid) == (2, 2, 1, 4294967307)
    assert [(e.perms, e.id.scheme, e.id.id) for e in a.acl] == [
        (31, "digest", "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ="), (31, "world", "anyone")]
    config = tree.get("/zookeeper/config")
    assert config.acl == READ_ACL_UNSAFE and (config.version, config.aversion) == (-1, -1)
    assert config.data.startswith(b"server.1=127.0.0.1:2888:3888:participant\n")
    assert tree.get("/zookeeper").acl is OPEN_ACL_UNSAFE  # ref -1
    assert tree.get("/d0").acl == OPEN_ACL_UNSAFE and tree.get("/d0").acl is not OPEN_ACL_UNSAFE
    assert tree.ephemerals == {SESSION: {"/eph-held"}}
    assert tree.get("/eph-held").stat().ephemeralOwner == SESSION
    assert tree.containers == {"/cont"} and tree.ttls == set()
    assert tree.get("/cont").ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    assert tree.get("/cont").stat().ephemeralOwner == 0


def test_tree_digest_matches_javas(sample: bytes) -> None:
    tree, _, _ = deserialize(sample)
    (digest,) = struct.unpack_from(">q", sample, 1479 - 13 - 8)
    assert digest == 13938941749
    assert tree.digest == digest


def test_reserialized_java_snapshot_has_the_same_content(sample: bytes) -> None:
    tree, sessions, zxid = deserialize(sample)
    out = b"".join(serialize(tree, sessions, zxid))
    assert len(out) == len(sample)  # refs renumbered and children sorted, sizes equal
    assert out[:16] == sample[:16] and out[-26:-13] == sample[-26:-13]  # header, digest section
    again, sessions2, zxid2 = deserialize(out)
    assert (sessions2, zxid2) == (sessions, zxid)
    assert content(again) == content(tree)
    assert again.get("/zookeeper").acl is OPEN_ACL_UNSAFE
    assert again.get("/d0").acl is not OPEN_ACL_UNSAFE
    assert b"".join(serialize(again, sessions2, zxid2)) == out


def test_fresh_tree_round_trip() -> None:
    tree = DataTree()
    tree.apply(Txn(5, 1, 0x100000001, 1234, OpCode.create, CreateTxn("/a", b"x" * 70000, OPEN, False, 1)))
    tree.apply(Txn(5, 2, 0x100000002, 1235, OpCode.create, CreateTxn("/a/e", b"", [ACL(1, Id("ip", "10.0.0.1"))], True, 1)))
    tree.apply(Txn(5, 3, 0x100000003, 1236, OpCode.createTTL, CreateTTLTxn("/\u00e9t\u00e9", b"", OPEN, 2, 60000)))
    tree.apply(Txn(5, 4, 0x100000004, 1237, OpCode.setACL, SetACLTxn("/zookeeper/quota", [ACL(1, Id("ip", "10.0.0.1"))], 0)))
    chunks = list(serialize(tree, {5: 30000, 6: 4000}, tree.last_zxid))
    assert len(chunks) > 2
    data = b"".join(chunks)
    loaded, sessions, zxid = deserialize(data)
    assert sessions == {5: 30000, 6: 4000} and zxid == 0x100000004
    assert content(loaded) == content(tree)
    assert loaded.digest == tree.digest
    assert loaded.ephemerals == {5: {"/a/e"}} and loaded.ttls == {"/\u00e9t\u00e9"}
    assert loaded.get("/a/e").acl is loaded.get("/zookeeper/quota").acl  # one ACL ref
    assert loaded.descendants_count("/") == tree.descendants_count("/") == 6


def test_seals_are_adler32_of_everything_before(sample: bytes) -> None:
    out = b"".join(serialize(*deserialize(sample)))
    end1 = len(out) - 13 - 20 - 13
    assert struct.unpack_from(">q", out, end1)[0] == zlib.adler32(out[:end1])
    assert out[end1 + 8:end1 + 13] == b"\x00\x00\x00\x01/"
    end2 = len(out) - 13
    assert struct.unpack_from(">q", out, end2)[0] == zlib.adler32(out[:end2])


def test_stream_is_the_snap_payload(sample: bytes) -> None:
    tree, sessions, _ = deserialize(sample)
    stream = b"".join(serialize_stream(tree, sessions))
    file_bytes = b"".join(serialize(tree, sessions, tree.last_zxid))
    assert file_bytes[16:16 + len(stream)] == stream
    payload = stream + b"\x00\x00\x00\x0aBenWasHere"
    loaded, sessions2, end = deserialize_stream(payload)
    assert end == len(stream) and sessions2 == sessions
    assert content(loaded) == content(tree)


def test_snapshot_without_digest_section_loads(sample: bytes) -> None:
    cut = len(sample) - 13 - 20
    tree, sessions, zxid = deserialize(sample[:cut])
    assert zxid == 0 and sessions == {SESSION: 20000} and "/a" in tree.nodes


def test_39_last_processed_zxid_section(sample: bytes) -> None:
    extra = struct.pack(">q", 0x600000009)
    body = sample + extra
    data = body + struct.pack(">q", zlib.adler32(body)) + b"\x00\x00\x00\x01/"
    assert deserialize(data)[2] == 0x600000009


@pytest.mark.parametrize("cut", [0, 10, 16, 40, 200, 1000, 1430, 1450, 1470, 1478])
def test_truncated_snapshot_is_refused(sample: bytes, cut: int) -> None:
    with pytest.raises(ValueError):
        deserialize(sample[:cut])


@pytest.mark.parametrize("offset", [20, 300, 700, 1400])
def test_corrupt_byte_is_refused(sample: bytes, offset: int) -> None:
    data = bytearray(sample)
    data[offset] ^= 0x01
    with pytest.raises(ValueError):
        deserialize(bytes(data))


def test_wrong_magic_is_refused(sample: bytes) -> None:
    with pytest.raises(ValueError, match="magic"):
        deserialize(b"ZKLG" + sample[4:])


def test_trailing_garbage_is_refused(sample: bytes) -> None:
    with pytest.raises(ValueError):
        deserialize(sample + b"\x00")


def test_node_before_its_parent_is_refused() -> None:
    stream = (struct.pack(">i", 0) + struct.pack(">i", 0)
              + struct.pack(">i", 4) + b"/x/y" + struct.pack(">i", 0)
              + struct.pack(">qqqqqiiiqq", -1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
              + b"\x00\x00\x00\x01/")
    with pytest.raises(ValueError, match="parent"):
        deserialize_stream(stream)


def test_unknown_acl_ref_is_refused() -> None:
    stream = (struct.pack(">i", 0) + struct.pack(">i", 0)
              + struct.pack(">i", 2) + b"/x" + struct.pack(">i", 0)
              + struct.pack(">qqqqqiiiqq", 9, 0, 0, 0, 0, 0, 0, 0, 0, 0)
              + b"\x00\x00\x00\x01/")
    with pytest.raises(ValueError, match="ACL ref 9"):
        deserialize_stream(stream)


def test_39_without_digest_section(sample: bytes) -> None:
    body = sample[:len(sample) - 13 - 20] + struct.pack(">q", 0x600000007)
    data = body + struct.pack(">q", zlib.adler32(body)) + b"\x00\x00\x00\x01/"
    assert deserialize(data)[2] == 0x600000007


def test_null_node_path_is_refused() -> None:
    stream = struct.pack(">iii", 0, 0, -1)
    with pytest.raises(ValueError, match="null"):
        deserialize_stream(stream)
