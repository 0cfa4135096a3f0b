"""Session expiry through the whole server, driven by a twisted Clock: no sleeping, no sockets.

A real core.server.ZKServer (storage=memory, standalone consensus) runs on
``twisted.internet.task.Clock`` (tests/inprocess.py).
"""

from __future__ import annotations

import pytest

from core.opcodes import EventType, OpCode
from core.records import ACL, CreateRequest, Id, PathWatchRequest, RequestHeader, WatcherEvent
from core.sessions import session_password
from tests.inprocess import Client, start_server

TICK = 500
OPEN = [ACL(31, Id("world", "anyone"))]


@pytest.fixture
def rig(tmp_path):
    server, clock = start_server(tmp_path, TICK)
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
