"""Session expiry through the whole server, driven by a twisted Clock: no sleeping, no sockets.

A real core.server.ZKServer (storage=memory, standalone consensus) runs on
``twisted.internet.task.Clock``. The one thing a Clock cannot drive is the storage thread
(``deferToThreadPool`` needs ``reactor.callFromThread``), so the server's StorageThread is
swapped for one that runs each store call inline and returns a fired Deferred: the store, the
consensus (group commit via ``callLater(0)``, the tick LoopingCall), the session tracker and
the connections are the real ones. Clients are ServerConnections on StringTransports.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from core.config import parse
from core.connection import ServerConnection
from core.opcodes import EventType, OpCode
from core.records import (
    ACL, ConnectRequest, ConnectResponse, CreateRequest, Id, PathWatchRequest, ReplyHeader,
    RequestHeader, WatcherEvent,
)
from core.server import ZKServer
from core.sessions import session_password
from core.storage_thread import StorageThread

TICK = 500
OPEN = [ACL(31, Id("world", "anyone"))]
_LEN = struct.Struct(">i")


class Client:
    """A ServerConnection on a StringTransport, with framing helpers."""

    def __init__(self, server: ZKServer, clock: Clock, port: int) -> None:
        self.clock = clock
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.conn = ServerConnection(server)
        self.conn.makeConnection(self.transport)
        self.xid = 0
        self.frames: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.conn.dataReceived(_LEN.pack(len(payload)) + payload)
        self.clock.advance(0)  # the consensus writes and commits on callLater(0)

    def take(self) -> list[bytes]:
        data = self.transport.value()
        self.transport.clear()
        off = 0
        while off < len(data):
            (n,) = _LEN.unpack_from(data, off)
            self.frames.append(data[off + 4:off + 4 + n])
            off += 4 + n
        out, self.frames = self.frames, []
        return out

    def connect(self, timeout_ms: int, session_id: int = 0, passwd: bytes = bytes(16)) -> ConnectResponse:
        self.send(ConnectRequest.encode(ConnectRequest(0, 0, timeout_ms, session_id, passwd)) + b"\0")
        (frame,) = self.take()
        return ConnectResponse.decode(frame, 0)[0]

    def request(self, op: int, record: Any) -> list[tuple[ReplyHeader, bytes]]:
        self.xid += 1
        self.send(RequestHeader.encode(RequestHeader(self.xid, op)) + type(record).encode(record))
        return self.replies()

    def replies(self) -> list[tuple[ReplyHeader, bytes]]:
        out = []
        for f in self.take():
            hdr, off = ReplyHeader.decode(f, 0)
            out.append((hdr, f[off:]))
        return out

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting


@pytest.fixture
def rig(tmp_path):
    clock = Clock()
    clock.advance(1_000_000)  # a clock far from 0, like a real one
    cfg = parse(f"tickTime={TICK}\ndataDir={tmp_path}\nclientPort=2999\nstorage=memory\n")
    server = ZKServer(cfg, reactor=clock)
    server.storage = StorageThread(clock, threaded=False)
    d = server.start()
    assert d.called, "start-up waits for something a Clock cannot drive"
    yield server, clock
    server.stop()


def test_a_silent_session_expires_on_the_tick_after_its_timeout(rig):
    server, clock = rig
    a = Client(server, clock, 4001)
    resp = a.connect(timeout_ms=1000)
    sid = resp.sessionId
    assert resp.timeOut == 1000 and sid in server.sessions.sessions
    [(hdr, _)] = a.request(OpCode.create, CreateRequest("/e", b"", OPEN, 1))
    assert hdr.err == 0 and server.tree.get("/e").stat().ephemeralOwner == sid
    w = Client(server, clock, 4002)
    w.connect(timeout_ms=10000)
    [(hdr, _)] = w.request(OpCode.exists, PathWatchRequest("/e", True))
    assert hdr.err == 0
    # the last touch was at the create; expiry is the tick bucket after touch + 1000 ms
    for _ in range(int(1000 / 50) - 1):
        clock.advance(0.05)
    assert server.tree.get("/e") is not None and not a.closed
    clock.advance(TICK / 1000.0 + 0.05)
    assert server.tree.get("/e") is None
    assert sid not in server.sessions.sessions
    assert a.closed
    events = [WatcherEvent.decode(body, 0)[0] for hdr, body in w.replies() if hdr.xid == -1]
    assert [(e.type, e.path) for e in events] == [(EventType.NodeDeleted, "/e")]
    # the watcher, silent as well, is still within its 10 s
    assert w.conn.session_id in server.sessions.sessions and not w.closed


def test_pings_keep_a_session_alive_and_the_old_id_gets_the_expired_answer(rig):
    server, clock = rig
    a = Client(server, clock, 4003)
    sid = a.connect(timeout_ms=1000).sessionId
    for _ in range(20):  # 10 s of pings every 400 ms
        clock.advance(0.4)
        a.send(RequestHeader.encode(RequestHeader(-2, OpCode.ping)))
        assert [h.xid for h, _ in a.replies()] == [-2]
    assert sid in server.sessions.sessions
    clock.advance(1.6)  # silence: 1000 ms + rounding to the tick
    assert sid not in server.sessions.sessions and a.closed
    b = Client(server, clock, 4004)
    resp = b.connect(timeout_ms=1000, session_id=sid, passwd=session_password(sid))
    assert (resp.timeOut, resp.sessionId, resp.passwd) == (0, 0, bytes(16))
    assert b.closed


def test_expiry_buckets_follow_the_tick(rig):
    """Sessions touched at different times within one tick expire on the same tick."""
    server, clock = rig
    clients = []
    for i in range(3):
        c = Client(server, clock, 4010 + i)
        c.connect(timeout_ms=2000)
        clients.append(c)
        clock.advance(0.1)
    buckets = {server.sessions.sessions[c.conn.session_id].expires_at for c in clients}
    assert len(buckets) <= 2  # 0.2 s of spread crosses at most one tick boundary
    assert all(b % TICK == 0 for b in buckets)
    clock.advance(2.0 + TICK / 1000.0)
    assert not server.sessions.sessions
    assert all(c.closed for c in clients)
