"""A tiny raw ZooKeeper wire-protocol client for tests, built on core.records.

It does what kazoo will not: choose the xid, the op code and the body bytes, skip or send the
readOnly byte, send garbage, and show replies exactly as they come (ReplyHeader + raw body)::

    c = WireClient(host, port)
    c.connect()                                   # ConnectRequest (+ readOnly byte)
    r = c.call(OpCode.getData, PathWatchRequest("/", False))
    assert r.err == 0 and r.decode(GetDataResponse).stat.czxid == 0

Watch notifications (xid -1) met while waiting for a reply are kept, in order, in
``c.events`` as ``Notification(zxid, WatcherEvent)``; pings (xid -2) are dropped.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any, Iterable

from core.jute import INT
from core.opcodes import OpCode
from core.records import (
    ACL, ConnectRequest, ConnectResponse, Create2Response, CreateResponse, ErrorResponse,
    GetChildren2Response, GetChildrenResponse, GetDataResponse, Id, MultiHeader, ReplyHeader,
    RequestHeader, StatResponse, WatcherEvent,
)

NOTIFICATION_XID = -1
PING_XID = -2
AUTH_XID = -4
SET_WATCHES_XID = -8

OPEN_ACL_UNSAFE = [ACL(31, Id("world", "anyone"))]


class ConnectionClosed(Exception):
    """The server closed the connection (EOF or reset) while we waited for bytes."""


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: bytes

    def decode(self, cls: Any) -> Any:
        obj, _ = cls.decode(self.body, 0)
        return obj


@dataclass
class Notification:
    zxid: int
    event: WatcherEvent

    @property
    def type(self) -> int:
        return self.event.type

    @property
    def path(self) -> str | None:
        return self.event.path


def encode(record: Any) -> bytes:
    """A record's bytes; `None` or raw bytes pass through (b'' / themselves)."""
    if record is None:
        return b""
    if isinstance(record, (bytes, bytearray)):
        return bytes(record)
    return type(record).encode(record)


def frame(payload: bytes) -> bytes:
    return INT.pack(len(payload)) + payload


class WireClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.xid = 0
        self.events: list[Notification] = []
        self.session_id = 0
        self.passwd = b""
        self.read_only: bool | None = None
        self.negotiated_timeout = 0

    # -- bytes ---------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        (n,) = INT.unpack(self.recv_exact(4))
        return self.recv_exact(n)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """True when the server closes the connection within `timeout` (anything read is dropped)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    if not self.sock.recv(65536):
                        return True
                except (ConnectionResetError, BrokenPipeError):
                    return True
                except socket.timeout:
                    return False
        finally:
            self.sock.settimeout(self.timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "WireClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the handshake -------------------------------------------------------------------

    def connect(self, timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = b"\0" * 16,
                last_zxid: int = 0, read_only: bool | None = False,
                protocol_version: int = 0) -> ConnectResponse:
        """ConnectRequest, plus the readOnly byte unless `read_only` is None. Returns the
        ConnectResponse; the server's readOnly byte (if it sent one) lands in self.read_only."""
        body = ConnectRequest.encode(ConnectRequest(protocol_version, last_zxid, timeout_ms, session_id,
                                                    passwd))
        if read_only is not None:
            body += b"\1" if read_only else b"\0"
        self.send_frame(body)
        payload = self.recv_frame()
        resp, off = ConnectResponse.decode(payload, 0)
        self.read_only = bool(payload[off]) if len(payload) > off else None
        self.session_id = resp.sessionId
        self.passwd = resp.passwd or b""
        self.negotiated_timeout = resp.timeOut
        return resp

    # -- requests ------------------------------------------------------------------------

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    def send(self, op: int, record: Any = None, xid: int | None = None) -> int:
        """Send RequestHeader{xid, op} + the record (or raw body bytes); returns the xid used."""
        if xid is None:
            xid = self.next_xid()
        self.send_frame(RequestHeader.encode(RequestHeader(xid, int(op))) + encode(record))
        return xid

    def read_reply(self) -> Reply:
        """The next frame that is a reply (not a notification or ping)."""
        while True:
            payload = self.recv_frame()
            hdr, off = ReplyHeader.decode(payload, 0)
            if hdr.xid == NOTIFICATION_XID:
                ev, _ = WatcherEvent.decode(payload, off)
                self.events.append(Notification(hdr.zxid, ev))
                continue
            if hdr.xid == PING_XID:
                continue
            return Reply(hdr.xid, hdr.zxid, hdr.err, payload[off:])

    def call(self, op: int, record: Any = None, xid: int | None = None) -> Reply:
        """Send one request and return its reply (checking that the xid matches)."""
        xid = self.send(op, record, xid)
        reply = self.read_reply()
        assert reply.xid == xid, f"reply xid {reply.xid} for request xid {xid}"
        return reply

    def ping(self) -> Reply:
        self.send_frame(RequestHeader.encode(RequestHeader(PING_XID, int(OpCode.ping))))
        while True:
            payload = self.recv_frame()
            hdr, off = ReplyHeader.decode(payload, 0)
            if hdr.xid == NOTIFICATION_XID:
                ev, _ = WatcherEvent.decode(payload, off)
                self.events.append(Notification(hdr.zxid, ev))
                continue
            return Reply(hdr.xid, hdr.zxid, hdr.err, payload[off:])

    def wait_events(self, n: int, timeout: float | None = None) -> list[Notification]:
        """Wait until at least `n` notifications have arrived (pinging to pull them in)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.events) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.events)} of {n} watch events: {self.events}")
            self.ping()
            if len(self.events) < n:
                time.sleep(0.02)
        return self.events

    def close_session(self) -> Reply:
        return self.call(OpCode.closeSession)

    def close_quietly(self) -> None:
        """End the session if it still has a connection (so that it does not linger until it
        expires and moves the zxid under a later test), then close the socket."""
        if self.session_id:
            try:
                self.sock.settimeout(1.0)
                self.close_session()
            except (OSError, ConnectionClosed, AssertionError, ValueError):
                pass
        self.close()


# -- multi ---------------------------------------------------------------------------------

MULTI_END = MultiHeader(-1, True, -1)

_RESULT_RECORDS: dict[int, Any] = {
    int(OpCode.create): CreateResponse,
    int(OpCode.create2): Create2Response,
    int(OpCode.createContainer): Create2Response,
    int(OpCode.createTTL): Create2Response,
    int(OpCode.setData): StatResponse,
    int(OpCode.exists): StatResponse,
    int(OpCode.getData): GetDataResponse,
    int(OpCode.getChildren): GetChildrenResponse,
    int(OpCode.getChildren2): GetChildren2Response,
    int(OpCode.error): ErrorResponse,
}


def multi_body(ops: Iterable[tuple[int, Any]]) -> bytes:
    """A multi / multiRead body: (MultiHeader{type, false, -1}, record)... MultiHeader{-1, true, -1}."""
    parts = []
    for op, record in ops:
        parts.append(MultiHeader.encode(MultiHeader(int(op), False, -1)))
        parts.append(encode(record))
    parts.append(MultiHeader.encode(MULTI_END))
    return b"".join(parts)


@dataclass
class MultiResult:
    type: int
    err: int
    record: Any  # the op's response record, ErrorResponse for type -1, None for delete/check


def decode_multi(body: bytes) -> list[MultiResult]:
    results = []
    off = 0
    while True:
        hdr, off = MultiHeader.decode(body, off)
        if hdr.done:
            break
        cls = _RESULT_RECORDS.get(hdr.type)
        rec = None
        if cls is not None:
            rec, off = cls.decode(body, off)
        results.append(MultiResult(hdr.type, rec.err if hdr.type == -1 else hdr.err, rec))
    return results
