"""Request records by op code, and their decoding (shared by the client port and by a ZAB
leader decoding the REQUESTs its followers forward)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from core import native
from core.jute import JuteError
from core.opcodes import OpCode
from core.records import (
    CheckVersionRequest, CreateRequest, CreateSessionTxn, CreateTTLRequest, DeleteRequest,
    PathRequest, PathWatchRequest, ReconfigRequest, SetACLRequest, SetDataRequest,
)

# Request records of the ops that become txns (multi and sync handled on their own).
WRITE_REQUESTS: dict[int, Any] = {
    OpCode.create: CreateRequest,
    OpCode.create2: CreateRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.delete: DeleteRequest,
    OpCode.deleteContainer: PathRequest,
    OpCode.setData: SetDataRequest,
    OpCode.setACL: SetACLRequest,
    OpCode.reconfig: ReconfigRequest,
}
# Sub-op records inside a multi request.
MULTI_OPS: dict[int, Any] = {
    OpCode.create: CreateRequest,
    OpCode.create2: CreateRequest,
    OpCode.createContainer: CreateRequest,
    OpCode.createTTL: CreateTTLRequest,
    OpCode.delete: DeleteRequest,
    OpCode.setData: SetDataRequest,
    OpCode.check: CheckVersionRequest,
}
_MULTI_HEADER = struct.Struct(">i?i")  # MultiHeader: type, done, err
# what a record's decode raises for bytes that are not the record (a MARSHALLINGERROR)
RECORD_ERRORS = (JuteError, struct.error)

MULTI_READ_OPS: dict[int, Any] = {OpCode.getData: PathWatchRequest, OpCode.getChildren: PathWatchRequest}


def decode_record(cls: Any, buf: bytes, off: int) -> Any:
    """The record at `off`, or None when it does not decode or names no path (ZooKeeper
    answers both with MARSHALLINGERROR)."""
    try:
        record = cls.decode(buf, off)[0]
    except RECORD_ERRORS:
        return None
    return None if getattr(record, "path", "") is None else record


def py_decode_multi(buf: bytes, off: int, allowed: dict[int, Any]) -> list[tuple[int, Any]] | None:
    """The (op, record) list of a multi or multiRead at `off`, or None when it holds an op it
    may not hold or does not decode (MARSHALLINGERROR for the whole request). `decode_multi` is
    this, or the accelerator's equivalent, which hands it what it does not decode alike."""
    ops: list[tuple[int, Any]] = []
    try:
        while True:
            op, done, _ = _MULTI_HEADER.unpack_from(buf, off)  # MultiHeader, without the object
            off += _MULTI_HEADER.size
            if done:
                return ops
            cls = allowed.get(op)
            if cls is None:
                return None
            rec, off = cls.decode(buf, off)
            if getattr(rec, "path", "") is None:
                return None
            ops.append((op, rec))
    except RECORD_ERRORS:
        return None


decode_multi: Callable[[bytes, int, dict[int, Any]], list[tuple[int, Any]] | None] = (
    py_decode_multi if native.MODULE is None else native.MODULE.multi_decoder(py_decode_multi))


def decode_write(op: int, body: bytes) -> Any:
    """The record of a write request body as a follower forwards it (REQUEST packet): None
    for closeSession and for a body that does not decode (a MARSHALLINGERROR txn)."""
    if op in WRITE_REQUESTS:
        return decode_record(WRITE_REQUESTS[op], body, 0)
    if op == OpCode.multi:
        return decode_multi(body, 0, MULTI_OPS)
    if op == OpCode.sync:
        return decode_record(PathRequest, body, 0)
    if op == OpCode.createSession:
        return decode_record(CreateSessionTxn, body, 0)
    return None
