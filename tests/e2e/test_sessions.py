"""Sessions as clients rely on them, on both servers: expiry of a silent client (its ephemerals
go, watchers hear it, its reconnect gets the expired answer), reconnect on a new connection,
wrong passwords, a lastZxidSeen from the future, timeout negotiation, sessions across a restart,
watches restored on reconnect (setWatches, also split over several packets), and floods.

Expiry tests use their own module-scoped pair of servers with tickTime=500, so that a session
of 1000 ms (the minimum, 2 x tick) expires within a second or two.
"""

from __future__ import annotations

import queue
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest
from kazoo.protocol.states import EventType as KEventType, KazooState

from core.errors import Code
from core.opcodes import EventType, OpCode
from core.records import (
    AuthPacket, CreateRequest, PathWatchRequest, SetWatches, StatResponse,
)
from harness import SERVER_KINDS
from wire import AUTH_XID, OPEN_ACL_UNSAFE, SET_WATCHES_XID, ConnectionClosed, WireClient

TICK = 500
ZERO_PASSWD = bytes(16)
QUIET = 0.3


@pytest.fixture(scope="module", params=["apache", "ours"])
def short(request):
    """A server of `request.param` kind with tickTime=500 (sessions of 1..10 s)."""
    srv = SERVER_KINDS[request.param](extra_cfg={"tickTime": str(TICK)})
    srv.start()
    yield srv
    srv.stop()


def create(c: WireClient, path: str, data: bytes = b"", flags: int = 0) -> int:
    """Create `path` (open ACL); the reply's zxid."""
    r = c.call(OpCode.create, CreateRequest(path, data, OPEN_ACL_UNSAFE, flags))
    assert r.err == 0, f"create {path}: {r.err}"
    return r.zxid


def exists(c: WireClient, path: str, watch: bool = False):
    """(err, stat or None)."""
    r = c.call(OpCode.exists, PathWatchRequest(path, watch))
    return r.err, (r.decode(StatResponse).stat if r.err == 0 else None)


def expired_answer(resp) -> bool:
    return (resp.timeOut, resp.sessionId, resp.passwd) == (0, 0, ZERO_PASSWD)


# -- expiry ----------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_silent_client_expires(short, wire_factory, root):
    silent = wire_factory(short, timeout_ms=1000)
    assert silent.negotiated_timeout == 1000
    create(silent, root)
    eph = f"{root}/e"
    create(silent, eph, flags=1)
    watcher = wire_factory(short, timeout_ms=10000)
    err, stat = exists(watcher, eph, watch=True)
    assert err == 0 and stat.ephemeralOwner == silent.session_id
    t0 = time.monotonic()
    events = watcher.wait_events(1, timeout=10)  # pings keep the watcher alive meanwhile
    took = time.monotonic() - t0
    assert [(e.type, e.path) for e in events] == [(EventType.NodeDeleted, eph)]
    assert took < 5.0, f"a 1000 ms session took {took:.1f} s to expire"
    assert exists(watcher, eph)[0] == Code.NONODE
    assert silent.wait_closed(5.0), "the expired session's connection stays open"
    # the client comes back with its old id and password: the expired answer, then close
    again = wire_factory(short, connect=False)
    resp = again.connect(timeout_ms=1000, session_id=silent.session_id, passwd=silent.passwd)
    assert expired_answer(resp), resp
    assert again.wait_closed(5.0)


def test_expired_answer_carries_the_read_only_byte_only_if_asked(short, wire_factory):
    for ro in (False, None):
        c = wire_factory(short, connect=False)
        resp = c.connect(session_id=0x0123456789ABCDEF, passwd=b"x" * 16, read_only=ro)
        assert expired_answer(resp)
        assert c.read_only is (False if ro is False else None)
        assert c.wait_closed(5.0)


# -- reconnect -------------------------------------------------------------------------------

def test_reconnect_on_a_new_connection_keeps_the_session(short, wire_factory, root):
    first = wire_factory(short, timeout_ms=4000)
    create(first, root)
    eph = f"{root}/e"
    last = create(first, eph, flags=1)
    second = wire_factory(short, connect=False)
    resp = second.connect(timeout_ms=4000, session_id=first.session_id, passwd=first.passwd,
                          last_zxid=last)
    assert (resp.sessionId, resp.passwd, resp.timeOut) == (first.session_id, first.passwd, 4000)
    assert first.wait_closed(5.0), "the session's old connection stays open"
    err, stat = exists(second, eph)
    assert err == 0 and stat.ephemeralOwner == first.session_id
    # the session lives on past its timeout as long as the new connection pings
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        second.ping()
        time.sleep(0.3)
    assert exists(second, eph)[0] == 0


def test_wrong_password_gets_the_expired_answer_and_closes_the_live_connection(short, wire_factory, root):
    owner = wire_factory(short, timeout_ms=4000)
    create(owner, root)
    eph = f"{root}/e"
    create(owner, eph, flags=1)
    bad = wire_factory(short, connect=False)
    wrong = bytes(b ^ 0xFF for b in owner.passwd)
    resp = bad.connect(timeout_ms=4000, session_id=owner.session_id, passwd=wrong)
    assert expired_answer(resp), resp
    assert bad.wait_closed(5.0)
    assert owner.wait_closed(5.0), "a reconnect naming the session closes its live connection"
    # the session itself lives: the right password resumes it with its ephemeral
    good = wire_factory(short, connect=False)
    resp = good.connect(timeout_ms=4000, session_id=owner.session_id, passwd=owner.passwd)
    assert resp.sessionId == owner.session_id
    err, stat = exists(good, eph)
    assert err == 0 and stat.ephemeralOwner == owner.session_id


def test_last_zxid_ahead_of_the_server_closes_without_an_answer(short, wire_factory):
    c = wire_factory(short, connect=False)
    with pytest.raises(ConnectionClosed):
        c.connect(last_zxid=1 << 40)


@pytest.mark.parametrize("asked,negotiated", [
    (1, 2 * TICK), (999, 2 * TICK), (1000, 1000), (4321, 4321), (10000, 20 * TICK),
    (60000, 20 * TICK),
])
def test_negotiated_timeout_is_clamped(short, wire_factory, asked, negotiated):
    c = wire_factory(short, timeout_ms=asked)
    assert c.negotiated_timeout == negotiated


# -- restart ---------------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["apache", "ours"])
def test_sessions_survive_a_restart(kind, tmp_path: Path):
    """Both servers log sessions: a client coming back within its timeout after a restart
    resumes with its ephemerals; one that does not is expired by the restarted server."""
    data = tmp_path / "data"
    data.mkdir()
    cfg = {"tickTime": str(TICK), "dataDir": str(data)}
    if kind == "ours":
        cfg["storage"] = "sqlite"
    srv = SERVER_KINDS[kind](extra_cfg=cfg)
    clients: list[WireClient] = []

    def wire(**kw) -> WireClient:
        c = WireClient(srv.host, srv.port)
        clients.append(c)
        if kw:
            c.connect(**kw)
        return c

    try:
        srv.start()
        back = wire(timeout_ms=10000)
        gone = wire(timeout_ms=2000)
        create(back, "/r")
        create(back, "/r/back", flags=1)
        last = create(gone, "/r/gone", flags=1)
        srv.stop()
        srv.start()
        resumed = wire(timeout_ms=10000, session_id=back.session_id, passwd=back.passwd, last_zxid=last)
        assert resumed.session_id == back.session_id
        err, stat = exists(resumed, "/r/back")
        assert err == 0 and stat.ephemeralOwner == back.session_id
        deadline = time.monotonic() + 15.0
        while exists(resumed, "/r/gone")[0] == 0:
            assert time.monotonic() < deadline, "the absent session was never expired"
            time.sleep(0.1)
        err, stat = exists(resumed, "/r/back")
        assert err == 0 and stat.ephemeralOwner == back.session_id
        late = wire()
        assert expired_answer(late.connect(session_id=gone.session_id, passwd=gone.passwd))
        resumed.close_session()
    finally:
        for c in clients:
            c.close()
        srv.stop()


# -- watches on reconnect --------------------------------------------------------------------

def kinds(events) -> set[tuple[int, str]]:
    return {(e.type, e.path) for e in events}


def set_watches(c: WireClient, rel: int, data=(), exist=(), child=()):
    r = c.call(OpCode.setWatches, SetWatches(rel, list(data), list(exist), list(child)), xid=SET_WATCHES_XID)
    assert r.err == 0
    return r


def test_set_watches_on_reconnect_fires_what_was_missed(server, wire_factory, zk, root):
    d, g, u, c, uc, m, m2 = (f"{root}/{n}" for n in ("d", "g", "u", "c", "uc", "m", "m2"))
    for p in (d, g, u, c, uc):
        zk.create(p, b"0")
    w = wire_factory(server, timeout_ms=10000)
    for p in (d, g, u):
        assert w.call(OpCode.getData, PathWatchRequest(p, True)).err == 0
    for p in (c, uc):
        assert w.call(OpCode.getChildren, PathWatchRequest(p, True)).err == 0
    for p in (m, m2):
        last = w.call(OpCode.exists, PathWatchRequest(p, True)).zxid
    w.close()  # the connection goes (and its watches with it); the session lives
    zk.set(d, b"1")
    zk.delete(g)
    zk.create(f"{c}/x")
    zk.create(m)
    w2 = wire_factory(server, connect=False)
    w2.connect(timeout_ms=10000, session_id=w.session_id, passwd=w.passwd, last_zxid=last)
    set_watches(w2, last, data=[d, g, u], exist=[m, m2], child=[c, uc])
    # what was missed arrives before the setWatches reply, with zxid -1 on both servers
    assert kinds(w2.events) == {(EventType.NodeDataChanged, d), (EventType.NodeDeleted, g),
                                (EventType.NodeChildrenChanged, c), (EventType.NodeCreated, m)}
    assert all(e.zxid == -1 for e in w2.events)
    assert len(w2.events) == 4
    w2.events.clear()
    # the others are registered again
    zk.set(u, b"1")
    zk.create(f"{uc}/y")
    zk.create(m2)
    w2.wait_events(3)
    assert kinds(w2.events) == {(EventType.NodeDataChanged, u), (EventType.NodeChildrenChanged, uc),
                                (EventType.NodeCreated, m2)}


def test_set_watches_split_over_several_packets(server, wire_factory, zk, root):
    """3000 long watched paths, sent as the Java client does: SetWatches packets of at most
    128 KiB of paths each, all with the same relativeZxid."""
    paths = [f"{root}/w-{i:05d}-" + "x" * 220 for i in range(3000)]
    created_while_away = {paths[i] for i in (0, 1, 777, 1999, 2998)}
    w = wire_factory(server, timeout_ms=10000)
    last = w.ping().zxid
    w.close()
    for p in sorted(created_while_away):
        zk.create(p)
    w2 = wire_factory(server, connect=False)
    w2.connect(timeout_ms=10000, session_id=w.session_id, passwd=w.passwd, last_zxid=last)
    batches, batch, size = [], [], 0
    for p in paths:
        if size + len(p) > 128 * 1024:
            batches.append(batch)
            batch, size = [], 0
        batch.append(p)
        size += len(p)
    batches.append(batch)
    assert len(batches) >= 5
    for b in batches:
        set_watches(w2, last, exist=b)
    assert kinds(w2.events) == {(EventType.NodeCreated, p) for p in created_while_away}
    w2.events.clear()
    later = [paths[2], paths[1500], paths[-1]]
    for p in later:
        zk.create(p)
    w2.wait_events(3)
    assert kinds(w2.events) == {(EventType.NodeCreated, p) for p in later}


class Events:
    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def __call__(self, event) -> None:
        self.q.put(event)

    def none(self, timeout: float = QUIET) -> bool:
        try:
            ev = self.q.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected event {ev}")


def test_kazoo_reconnect_keeps_its_session(server, zk_factory, root):
    """kazoo (2.11) resumes its session when its connection drops. It sends no setWatches: it
    hands its watchers a NONE/CONNECTING event and forgets them, so the server's side of
    setWatches is tested with the wire client above; new watches work after the reconnect."""
    zk = zk_factory(server, connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5})
    zk.ensure_path(root)
    other = zk_factory(server)
    p = f"{root}/d"
    eph = zk.create(f"{root}/e", ephemeral=True)
    zk.create(p, b"0")
    old = Events()
    zk.get(p, watch=old)
    states: queue.Queue = queue.Queue()
    zk.add_listener(states.put)
    sid = zk.client_id[0]
    zk._connection._socket.shutdown(socket.SHUT_RDWR)  # the connection thread sees EOF
    assert states.get(timeout=10) == KazooState.SUSPENDED
    assert states.get(timeout=10) == KazooState.CONNECTED
    assert zk.client_id[0] == sid
    assert other.exists(eph).ephemeralOwner == sid
    # kazoo tells each of its watchers about the lost connection and forgets them
    e = old.q.get(timeout=10)
    assert (e.type, e.state) == (KEventType.NONE, "CONNECTING")
    other.set(p, b"1")
    other.sync(p)
    assert old.none()
    new = Events()
    zk.get(p, watch=new)
    other.set(p, b"2")
    assert new.q.get(timeout=10).type == KEventType.CHANGED


# -- floods (last: on the module's tickTime=500 servers, which nothing uses after them) --------

def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Prober(threading.Thread):
    """Another client doing getData in a loop, recording each latency."""

    def __init__(self, srv, path: str) -> None:
        super().__init__(daemon=True)
        self.client = WireClient(srv.host, srv.port, timeout=30.0)
        self.client.connect(timeout_ms=30000)
        self.path = path
        self.latencies: list[float] = []
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_flag.is_set():
                t0 = time.monotonic()
                r = self.client.call(OpCode.getData, PathWatchRequest(self.path, False))
                assert r.err == 0
                self.latencies.append(time.monotonic() - t0)
                time.sleep(0.005)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(30)
        self.client.close_quietly()
        assert self.error is None, repr(self.error)


def _flood(srv, wire_factory, root, frames: list[bytes], replies: int) -> tuple[Prober, int, int]:
    """Another client probes getData latency while a flooder sends `frames` (1000 at a time)
    and reads its `replies`; (prober, RSS KiB before, after) - RSS of ours only."""
    setup = wire_factory(srv)
    create(setup, root)
    create(setup, f"{root}/probe", b"p")
    prober = Prober(srv, f"{root}/probe")
    prober.start()
    time.sleep(0.3)
    rss0 = _rss_kib(srv.pid) if srv.kind == "ours" else 0
    flooder = WireClient(srv.host, srv.port, timeout=60.0)
    try:
        flooder.connect(timeout_ms=30000)
        reader_done = threading.Event()
        got = [0]

        def read_all() -> None:
            try:
                while got[0] < replies:
                    flooder.recv_frame()
                    got[0] += 1
            except (OSError, ConnectionClosed):
                pass
            reader_done.set()

        t = threading.Thread(target=read_all, daemon=True)
        t.start()
        chunk = 1000
        for i in range(0, len(frames), chunk):
            flooder.send_raw(b"".join(frames[i:i + chunk]))
        assert reader_done.wait(30), f"{got[0]} of {replies} replies"
        time.sleep(0.3)
        rss1 = _rss_kib(srv.pid) if srv.kind == "ours" else 0
    finally:
        prober.finish()
        flooder.close_quietly()
    return prober, rss0, rss1


def _check_prober(prober: Prober) -> None:
    lat = sorted(prober.latencies)
    assert len(lat) >= 20, f"only {len(lat)} probes completed"
    median = statistics.median(lat)
    p95 = lat[int(len(lat) * 0.95)]
    assert median < 0.05, f"median probe latency {median * 1000:.0f} ms"
    assert p95 < 0.5, f"95th percentile probe latency {p95 * 1000:.0f} ms"


@pytest.mark.timeout(120)
def test_watch_flood_does_not_stall_others(short, wire_factory, root):
    server = short
    from wire import frame
    from core.records import RequestHeader
    frames = [frame(RequestHeader.encode(RequestHeader(i + 1, int(OpCode.exists)))
                    + PathWatchRequest.encode(PathWatchRequest(f"{root}/nope-{i:06d}", True)))
              for i in range(50000)]
    prober, rss0, rss1 = _flood(server, wire_factory, root, frames, replies=50000)
    _check_prober(prober)
    if server.kind == "ours":
        assert rss1 - rss0 < 300 * 1024, f"RSS grew {rss0} -> {rss1} KiB"


@pytest.mark.timeout(120)
def test_auth_flood_does_not_stall_others(short, wire_factory, root):
    server = short
    from wire import frame
    from core.records import RequestHeader
    hdr = RequestHeader.encode(RequestHeader(AUTH_XID, int(OpCode.auth)))
    frames = [frame(hdr + AuthPacket.encode(AuthPacket(0, "digest", b"user%d:pw" % i)))
              for i in range(20000)]
    prober, rss0, rss1 = _flood(server, wire_factory, root, frames, replies=20000)
    _check_prober(prober)
    if server.kind == "ours":
        assert rss1 - rss0 < 200 * 1024, f"RSS grew {rss0} -> {rss1} KiB"
