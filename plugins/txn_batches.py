"""A group commit's txns as one stored record, the layout the sqlite and rocksdb stores share:
each txn's zxid (8 bytes, signed) and length (4 bytes), big-endian, then its bytes. The stores
keep a checksum beside it; a record whose checksum matches decodes whole."""

from __future__ import annotations

import struct
from collections.abc import Sequence

TXN_HEADER = struct.Struct(">qI")


def encode_batch(txns: Sequence[tuple[int, bytes]]) -> bytes:
    """The record of `txns` (zxid, bytes), in the order given."""
    parts: list[bytes] = []
    for zxid, payload in txns:
        parts.append(TXN_HEADER.pack(zxid, len(payload)))
        parts.append(payload)
    return b"".join(parts)


def decode_batch(record: bytes, offset: int = 0) -> list[tuple[int, bytes]]:
    """The (zxid, bytes) of the txns in `record` from `offset` on (struct.error when truncated)."""
    txns = []
    end = len(record)
    while offset < end:
        zxid, size = TXN_HEADER.unpack_from(record, offset)
        offset += TXN_HEADER.size
        if offset + size > end:
            raise struct.error(f"a txn of {size} bytes runs past the record's end")
        txns.append((zxid, record[offset:offset + size]))
        offset += size
    return txns
