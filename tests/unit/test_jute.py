"""The generated jute codec: round trips, malformed input, and ZooKeeper's own txn bytes."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, strategies as st

from core.jute import JuteError, VectorTable, fixed_struct
from core.opcodes import OpCode
from core.records import (
    ACL, ACL_LISTS, ConnectRequest, CreateRequest, CreateTxn, GetDataResponse, Id, MultiTxn, Stat, SubTxn,
    TxnHeader,
)
from core.txn import decode_txn, encode_txn
from tests.fixtures.hexfile import read_hex


def test_stat_is_68_bytes_and_round_trips() -> None:
    s = Stat(1, 2, 3, 4, 5, 6, 7, -8, 9, 10, 11)
    data = Stat.encode(s)
    assert len(data) == 68
    assert Stat.decode(data, 0) == (s, 68)


def test_create_request_wire_layout() -> None:
    data = CreateRequest.encode(CreateRequest("/a", b"x", [ACL(31, Id("world", "anyone"))], 0))
    assert data == bytes.fromhex("000000022f610000000178000000010000001f00000005776f726c6400000006616e796f6e6500000000")


def test_null_buffer_string_and_vector_are_minus_one() -> None:
    data = CreateRequest.encode(CreateRequest(None, None, None, 0))
    assert data == b"\xff" * 12 + b"\x00" * 4
    assert CreateRequest.decode(data, 0)[0] == CreateRequest(None, None, None, 0)


def test_truncated_input_raises_jute_error() -> None:
    data = GetDataResponse.encode(GetDataResponse(b"hello", Stat(*range(11))))
    for cut in range(len(data)):
        with pytest.raises(JuteError):
            GetDataResponse.decode(data[:cut], 0)


def test_huge_vector_count_is_refused_without_allocating() -> None:
    with pytest.raises(JuteError):
        MultiTxn.decode(struct.pack(">i", 0x7FFFFFFF), 0)


def test_acl_lists_are_interned_by_their_bytes() -> None:
    acl = [ACL(31, Id("world", "anyone")), ACL(1, Id("ip", "10.0.0.1"))]
    first = CreateRequest.decode(CreateRequest("/a", b"x", acl, 0).encode(), 0)[0]
    second = CreateRequest.decode(CreateRequest("/b", b"", acl, 1).encode(), 0)[0]
    assert first.acl == tuple(acl) and first.acl is second.acl and ACL_LISTS.holds(first.acl)
    other = CreateRequest.decode(CreateRequest("/c", b"", acl[:1], 0).encode(), 0)[0]
    assert other.acl == tuple(acl[:1]) and other.acl is not first.acl
    # a txn holding the interned tuple encodes exactly as one holding an equal list
    assert CreateTxn("/a", b"x", first.acl, False, 1).encode() == CreateTxn("/a", b"x", acl, False, 1).encode()


def test_the_last_interned_vector_is_matched_by_its_bytes_and_no_other() -> None:
    one = [ACL(31, Id("world", "anyone"))]
    two = [ACL(31, Id("world", "anyone")), ACL(1, Id("ip", "10.0.0.1"))]
    decoded = [CreateRequest.decode(CreateRequest(f"/{i}", b"v", acl, 0).encode(), 0)[0]
               for i, acl in enumerate([one, one, two, two, one, [], one])]
    assert [r.acl for r in decoded] == [tuple(one), tuple(one), tuple(two), tuple(two), tuple(one), (), tuple(one)]
    assert decoded[0].acl is decoded[1].acl is decoded[4].acl is decoded[6].acl
    assert decoded[2].acl is decoded[3].acl
    assert [r.path for r in decoded] == [f"/{i}" for i in range(7)] and {r.data for r in decoded} == {b"v"}
    assert CreateRequest.decode(CreateRequest("/n", b"", None, 0).encode(), 0)[0].acl is None


def test_an_interned_vector_with_a_bad_length_inside_is_refused() -> None:
    good = CreateRequest("/a", b"", [ACL(31, Id("world", "anyone"))], 0).encode()
    at = good.index(b"\x00\x00\x00\x05world")
    for bad in (good[:at] + b"\x7f\xff\xff\xff" + good[at + 4:],  # scheme runs past the end
                good[:at - 8] + b"\x00\x00\x00\x02" + good[at - 4:]):  # two ACLs, one there
        with pytest.raises(JuteError):
            CreateRequest.decode(bad, 0)
    for cut in range(len(good)):
        with pytest.raises(JuteError):
            CreateRequest.decode(good[:cut], 0)


def test_a_full_vector_table_decodes_new_vectors_to_tuples_of_their_own() -> None:
    table = VectorTable(limit=1, max_bytes=4)
    assert table.add(b"large", (0,)) == (0,) and not table.by_bytes  # over max_bytes: not kept
    kept = table.add(b"a", (1,))
    assert table.add(b"b", (2,)) == (2,)
    assert table.by_bytes == {b"a": kept} and table.holds(kept) and not table.holds((2,))


@given(st.binary(max_size=64))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    for cls in (ConnectRequest, CreateRequest, MultiTxn, GetDataResponse):
        try:
            cls.decode(data, 0)
        except JuteError:
            pass


def _log_entries(data: bytes) -> list[bytes]:
    magic, version, dbid = struct.unpack_from(">iiq", data, 0)
    assert (magic, version, dbid) == (0x5A4B4C47, 2, 0)
    off, out = 16, []
    while off + 12 <= len(data):
        checksum, n = struct.unpack_from(">qi", data, off)
        if n == 0 or off + 12 + n + 1 > len(data):
            break
        payload = data[off + 12:off + 12 + n]
        assert zlib.adler32(payload) == checksum
        assert data[off + 12 + n] == 0x42
        out.append(payload)
        off += 12 + n + 1
    return out


def test_every_txn_zookeeper_logged_decodes_and_reencodes_byte_for_byte() -> None:
    entries = _log_entries(read_hex("txnlog-sample.hex"))
    assert len(entries) == 25
    types = set()
    for payload in entries:
        txn = decode_txn(payload)
        types.add(txn.type)
        assert encode_txn(txn) == payload
    assert {OpCode.createSession, OpCode.create, OpCode.createContainer, OpCode.createTTL,
            OpCode.deleteContainer, OpCode.closeSession} <= types


def test_multi_txn_sub_records_round_trip() -> None:
    data = MultiTxn.encode(MultiTxn([SubTxn(1, b"ab"), SubTxn(-1, None)]))
    assert MultiTxn.decode(data, 0)[0] == MultiTxn([SubTxn(1, b"ab"), SubTxn(-1, None)])


def test_fixed_struct_packs_an_all_fixed_record_as_its_codec_does() -> None:
    header = TxnHeader(0x1234, 7, 0x100000002, 1_700_000_000_000, 5)
    packer = fixed_struct(TxnHeader)
    assert packer.pack(0x1234, 7, 0x100000002, 1_700_000_000_000, 5) == header.encode()
    assert packer.unpack_from(header.encode(), 0) == (0x1234, 7, 0x100000002, 1_700_000_000_000, 5)
    with pytest.raises(TypeError):
        fixed_struct(CreateTxn)  # a path, data and an ACL vector: not fixed-size
