"""Transactions: ZooKeeper's TxnHeader + txn record [+ TxnDigest], decoded and encoded.

These are the bytes of a log entry, of a ZAB PROPOSAL and of what a Store keeps
(quorum.md 3.1). Every change of the tree, session creation and close included, is a Txn.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import native
from core.jute import INT, JuteError, fixed_struct
from core.opcodes import OpCode
from core.records import (
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTTLTxn,
    CreateTxn, DeleteTxn, ErrorTxn, MultiTxn, SetACLTxn, SetDataTxn, SubTxn, TxnDigest, TxnHeader,
)

BODY: dict[int, Any] = {
    OpCode.create: CreateTxn,
    OpCode.create2: CreateTxn,
    OpCode.createContainer: CreateContainerTxn,
    OpCode.createTTL: CreateTTLTxn,
    OpCode.delete: DeleteTxn,
    OpCode.deleteContainer: DeleteTxn,
    OpCode.setData: SetDataTxn,
    OpCode.reconfig: SetDataTxn,
    OpCode.setACL: SetACLTxn,
    OpCode.check: CheckVersionTxn,
    OpCode.createSession: CreateSessionTxn,
    OpCode.closeSession: CloseSessionTxn,
    OpCode.error: ErrorTxn,
}

_HEADER = fixed_struct(TxnHeader)
_SUB_HEAD = struct.Struct(">ii")  # a MultiTxn entry (jute Txn): type, then its body's length
# compared with per txn, bound once (see core.opcodes)
_MULTI, _CLOSE_SESSION = OpCode.multi, OpCode.closeSession


@native.fast_constructor
@dataclass(slots=True)
class Txn:
    """One transaction: the TxnHeader's fields (clientId, cxid, zxid, time, type; kept here
    rather than in a TxnHeader of their own), the body, and the TxnDigest if any. For a multi,
    `body` is the list of (type, record) sub-txns; a closeSession written without a body
    (closeSessionTxn disabled) has `body` None."""

    clientId: int
    cxid: int
    zxid: int
    time: int
    type: int
    body: Any
    digest: TxnDigest | None = None


def py_encode_txn(txn: Txn) -> bytes:
    """The log-entry payload: TxnHeader, body, then TxnDigest if present (`encode_txn` is
    this, or the accelerator's equivalent, which hands it what it does not encode alike)."""
    t = txn.type
    parts = [_HEADER.pack(txn.clientId, txn.cxid, txn.zxid, txn.time, t)]
    if t == _MULTI:  # MultiTxn: the count, then each sub-txn's type and body
        parts.append(INT.pack(len(txn.body)))
        for st, r in txn.body:
            sub = BODY[st].encode(r)
            parts += (_SUB_HEAD.pack(st, len(sub)), sub)
    elif txn.body is not None:
        BODY[t].encode_into(txn.body, parts)
    if txn.digest is not None:
        TxnDigest.encode_into(txn.digest, parts)
    return b"".join(parts)


def _encode_txn() -> Any:
    """The accelerator's encode_txn over the body records' C codecs, or py_encode_txn."""
    codecs = {int(t): cls.native_codec for t, cls in BODY.items() if cls.native_codec is not None}
    if native.MODULE is None or TxnDigest.native_codec is None:
        return py_encode_txn
    return native.MODULE.txn_encoder(Txn, codecs, TxnDigest.native_codec, int(_MULTI), py_encode_txn)


encode_txn: Callable[[Txn], bytes] = _encode_txn()


def decode_txn(data: bytes) -> Txn:
    """Inverse of encode_txn; raises JuteError on bytes that are not a txn."""
    try:
        client_id, cxid, zxid, time, t = _HEADER.unpack_from(data, 0)
    except struct.error as e:
        raise JuteError("truncated TxnHeader") from e
    off = _HEADER.size
    body: Any = None
    if t == _MULTI:
        multi, off = MultiTxn.decode(data, off)
        body = [(s.type, _decode_sub(s)) for s in multi.txns or ()]
    elif t in BODY:
        if off < len(data) or t != _CLOSE_SESSION:
            body, off = BODY[t].decode(data, off)
    else:
        raise JuteError(f"unknown txn type {t}")
    digest = None
    if len(data) - off >= 12:
        digest, off = TxnDigest.decode(data, off)
    return Txn(client_id, cxid, zxid, time, t, body, digest)


def _decode_sub(sub: SubTxn) -> Any:
    cls = BODY.get(sub.type)
    if cls is None:
        raise JuteError(f"unknown sub-txn type {sub.type}")
    return cls.decode(sub.data or b"", 0)[0]
