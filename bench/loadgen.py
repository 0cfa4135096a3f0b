"""A pipelining ZooKeeper load generator that speaks the client wire protocol itself.

No client library: each session is a raw TCP socket that does the handshake (ConnectRequest +
readOnly byte) and then keeps a *window* of requests in flight (64-256 outstanding), refilled as
replies arrive, with several sessions per process and several processes (multiprocessing), so
that the client is not what limits the server. Requests are prebuilt bytes (core.records
encodes them once); a refill is a slice of a ring of prebuilt frames and one ``send``; a reply is
counted by walking frame lengths and reading ReplyHeader.err, nothing more.

Latency under load: each session keeps the perf_counter_ns send time of every request in flight
in a deque, in send order (a session's replies come back in request order; notifications and
pings, xid < 0, are skipped); each reply received inside the measured window pops one and appends
``now - sent`` (ns) to an array('q') of the worker, `now` being read once per ``recv``. The
coordinator merges the workers' sorted arrays and reports p50/p99/p99.9 (µs).

Measured window: the coordinator (`run_load`) waits until every worker has connected, then
gives all of them the same CLOCK_MONOTONIC instants ``t_start = now + warmup`` and
``t_stop = t_start + duration``. Replies received inside [t_start, t_stop) are counted; the
coordinator reads the server's utime+stime from /proc/<pid>/stat at t_start and t_stop, each
worker reads its own process CPU time at the same instants. After t_stop the workers stop
sending, drain what is in flight and report.

Everything is bounded: connect/handshake timeouts, a hard deadline for the drain, finite
(ring or count-bounded) request sources, loopback addresses only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import re
import resource
import selectors
import socket
import struct
import sys
import time
from array import array
from collections import Counter, deque
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from core.records import (  # noqa: E402
    ACL, ConnectRequest, ConnectResponse, CreateRequest, DeleteRequest, Id, MultiHeader,
    PathWatchRequest, SetDataRequest, StatResponse,
)
from core.testing.net import four_letter_word  # noqa: E402

# -- wire constants -------------------------------------------------------------------------

OP_CREATE, OP_DELETE, OP_EXISTS, OP_GETDATA, OP_SETDATA = 1, 2, 3, 4, 5
OP_GETCHILDREN, OP_MULTI = 8, 14
OP_CLOSESESSION = -11
PERSISTENT, PERSISTENT_SEQUENTIAL = 0, 2
OPEN_ACL_UNSAFE = [ACL(31, Id("world", "anyone"))]
NONODE, NODEEXISTS = -101, -110

REQ_HDR = struct.Struct(">iii")      # frame length, xid, op type
REPLY_HDR = struct.Struct(">iiqi")   # frame length, xid, zxid, err
LEN = struct.Struct(">i")

CONNECT_TIMEOUT = 10.0
DRAIN_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0
LAT_CAP = 1_000_000   # latencies kept per worker process and run (8 MB); later replies uncounted
CLK_TCK = os.sysconf("SC_CLK_TCK")

# -- the benchmark's data layout ------------------------------------------------------------

ROOT = "/bench"
KEYS_PARENT = ROOT + "/k"
CHILDREN_PARENT = ROOT + "/children"
WATCH_PARENT = ROOT + "/w"           # never created: the watched paths do not exist
N_KEYS = 1000
N_CHILDREN = 1000
VALUE_SIZE = 100


def key_path(i: int) -> str:
    return f"{KEYS_PARENT}/{i:04d}"   # fixed width: every key's request has the same length


def watch_path(i: int) -> str:
    """The `i`-th path the `watches` option sets an exists-watch on (a node that never exists)."""
    return f"{WATCH_PARENT}/{i:05d}"


def value(size: int = VALUE_SIZE, salt: int = 0) -> bytes:
    return bytes((salt + i) % 251 for i in range(size))


# -- /proc ----------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    fields = raw[raw.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_until_quiet(cores: float = 0.15, window: float = 0.3, limit: float = 10.0) -> float | None:
    """Wait until the whole machine used less than `cores` CPUs over a `window` of seconds;
    the seconds waited, or None when it stayed busy for `limit` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        busy0 = system_busy_seconds()
        time.sleep(window)
        if (system_busy_seconds() - busy0) / window < cores:
            return time.monotonic() - start
    return None


def raise_nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children started afterwards
    inherit it: servers and load workers with 1,000 sessions); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def server_watch_count(host: str, port: int) -> int | None:
    """Total watches the server reports (`wchs`), None if it does not answer it."""
    try:
        m = re.search(r"Total watches:\s*(\d+)", four_letter_word(host, port, "wchs"))
    except OSError:
        return None
    return int(m.group(1)) if m else None


def percentiles_us(lat_ns: Sequence[int]) -> dict[str, float | None]:
    """p50 / p99 / p99.9 (nearest rank) of sorted latencies in ns, in µs (None when empty)."""
    n = len(lat_ns)

    def pct(p: float) -> float | None:
        return lat_ns[min(n - 1, int(math.ceil(p / 100.0 * n)) - 1)] / 1000.0 if n else None

    return {"p50_us": pct(50), "p99_us": pct(99), "p999_us": pct(99.9)}


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- request bytes --------------------------------------------------------------------------


def frame_request(xid: int, op: int, body: bytes) -> bytes:
    return REQ_HDR.pack(8 + len(body), xid, op) + body


def body_get(path: str, watch: bool = False) -> bytes:
    return PathWatchRequest.encode(PathWatchRequest(path, watch))


def body_set(path: str, data: bytes) -> bytes:
    return SetDataRequest.encode(SetDataRequest(path, data, -1))


def body_create(path: str, data: bytes, flags: int) -> bytes:
    return CreateRequest.encode(CreateRequest(path, data, OPEN_ACL_UNSAFE, flags))


def body_delete(path: str) -> bytes:
    return DeleteRequest.encode(DeleteRequest(path, -1))


def body_multi_set(paths: list[str], data: bytes) -> bytes:
    parts = []
    for p in paths:
        parts.append(MultiHeader.encode(MultiHeader(OP_SETDATA, False, -1)))
        parts.append(body_set(p, data))
    parts.append(MultiHeader.encode(MultiHeader(-1, True, -1)))
    return b"".join(parts)


class Source:
    """Prebuilt request frames handed out `k` at a time as one bytes-like slice.

    `cycle=True`: a ring (the frames repeat forever, xids repeat too: the server only echoes
    them); otherwise the frames are sent once and the source is then exhausted.
    """

    __slots__ = ("buf", "offs", "n", "pos", "cycle", "left")

    def __init__(self, frames: list[bytes], cycle: bool, start: int = 0) -> None:
        self.n = len(frames)
        self.cycle = cycle
        if cycle:
            frames = frames + frames     # doubled: any run of up to n frames is one slice
        offs = [0]
        for fr in frames:
            offs.append(offs[-1] + len(fr))
        self.offs = offs
        self.buf = memoryview(b"".join(frames))
        self.pos = start % self.n if (cycle and self.n) else 0
        self.left = math.inf if cycle else self.n

    def take(self, k: int) -> tuple[memoryview | None, int]:
        if self.cycle:
            k = min(k, self.n)
            p = self.pos
            q = p + k
            self.pos = q if q < self.n else q - self.n
            return self.buf[self.offs[p]:self.offs[q]], k
        k = min(k, self.left)
        if k <= 0:
            return None, 0
        p = self.pos
        self.pos = p + k
        self.left -= k
        return self.buf[self.offs[p]:self.offs[p + k]], k


def _ring(bodies_op: list[tuple[int, bytes]], start: int) -> Source:
    frames = [frame_request(i + 1, op, b) for i, (op, b) in enumerate(bodies_op)]
    return Source(frames, cycle=True, start=start)


RING = 4096

# Workloads whose requests repeat (ring) and the ones that are count-bounded lists.
CYCLIC = {"get", "exists", "set", "mixed", "children", "multi", "create"}


def build_source(spec: dict[str, Any], g: int, G: int) -> Source:
    """The request source of global session `g` of `G` for the workload in `spec`.

    spec keys: workload, and per workload: parent (create/populate/delete), count
    (populate/delete), value_size, seed.
    """
    w = spec["workload"]
    size = spec.get("value_size", VALUE_SIZE)
    rnd = random.Random(spec.get("seed", 1) * 7919 + g)
    data = value(size, g)
    keys = [key_path(i) for i in range(N_KEYS)]
    get_bodies = {k: body_get(k) for k in keys}
    if w in ("get", "exists"):
        op = OP_GETDATA if w == "get" else OP_EXISTS
        return _ring([(op, get_bodies[rnd.choice(keys)]) for _ in range(RING)], rnd.randrange(RING))
    if w == "set":
        return _ring([(OP_SETDATA, body_set(rnd.choice(keys), data)) for _ in range(RING)], 0)
    if w == "mixed":
        reqs = []
        for _ in range(RING):
            k = rnd.choice(keys)
            if rnd.random() < 0.9:
                reqs.append((OP_GETDATA, get_bodies[k]))
            else:
                reqs.append((OP_SETDATA, body_set(k, data)))
        return _ring(reqs, 0)
    if w == "children":
        return _ring([(OP_GETCHILDREN, body_get(CHILDREN_PARENT))] * 256, 0)
    if w == "multi":
        return _ring([(OP_MULTI, body_multi_set(rnd.sample(keys, 5), data)) for _ in range(1024)], 0)
    if w == "create":    # sequential creates under spec["parent"], cyclic (same bytes each time)
        return _ring([(OP_CREATE, body_create(spec["parent"] + "/n", data, PERSISTENT_SEQUENTIAL))] * 256, 0)
    if w == "populate":  # `count` sequential creates in all, split over the sessions
        count = spec["count"]
        mine = count // G + (1 if g < count % G else 0)
        b = body_create(spec["parent"] + "/n", data, PERSISTENT_SEQUENTIAL)
        return Source([frame_request(i + 1, OP_CREATE, b) for i in range(mine)], cycle=False)
    if w == "delete":    # delete parent/n%010d for i in range(count), i = g mod G
        parent = spec["parent"]
        frames = [frame_request(j + 1, OP_DELETE, body_delete(f"{parent}/n{i:010d}"))
                  for j, i in enumerate(range(g, spec["count"], G))]
        return Source(frames, cycle=False)
    raise ValueError(f"unknown workload {w!r}")


# -- sessions -------------------------------------------------------------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = sock.recv(n - got)
        if not b:
            raise ConnectionError("server closed the connection")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    (n,) = LEN.unpack(_recv_exact(sock, 4))
    return _recv_exact(sock, n)


def connect_session(host: str, port: int, timeout_ms: int = 30000,
                    io_timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A connected, handshaken, blocking socket (with `io_timeout`)."""
    sock = socket.create_connection((host, port), timeout=io_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = ConnectRequest.encode(ConnectRequest(0, 0, timeout_ms, 0, b"\0" * 16)) + b"\0"
    sock.sendall(LEN.pack(len(req)) + req)
    body = recv_frame(sock)
    resp, _ = ConnectResponse.decode(body, 0)
    if resp.sessionId == 0 or resp.timeOut <= 0:
        sock.close()
        raise ConnectionError(f"handshake refused: {resp}")
    return sock


class SyncClient:
    """A blocking one-session client for setup and checks, with a pipelined batch call."""

    def __init__(self, host: str, port: int, io_timeout: float = 30.0) -> None:
        self.sock = connect_session(host, port, io_timeout=io_timeout)
        self.xid = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, op: int, body: bytes) -> tuple[int, bytes]:
        return self.pipeline([(op, body)])[0]

    def pipeline(self, reqs: list[tuple[int, bytes]], window: int = 128) -> list[tuple[int, bytes]]:
        """Send `reqs` keeping up to `window` in flight; [(err, body)] in order."""
        out = pipeline(self.sock, reqs, self.xid, window)
        self.xid += len(reqs)
        return out

    def num_children(self, path: str) -> int | None:
        err, body = self.call(OP_EXISTS, body_get(path))
        if err != 0:
            return None
        return StatResponse.decode(body, 0)[0].stat.numChildren


def pipeline(sock: socket.socket, reqs: list[tuple[int, bytes]], xid0: int = 0,
             window: int = 128) -> list[tuple[int, bytes]]:
    """Send `reqs` (xids from `xid0` + 1) on a blocking session socket keeping up to `window`
    in flight; [(err, body)] in order."""
    out: list[tuple[int, bytes]] = []
    xid = xid0
    i = 0
    while i < len(reqs):
        chunk = reqs[i:i + window]
        frames = []
        for op, body in chunk:
            xid += 1
            frames.append(frame_request(xid, op, body))
        sock.sendall(b"".join(frames))
        for _ in chunk:
            fr = recv_frame(sock)
            rxid, _zxid, err = struct.unpack_from(">iqi", fr, 0)
            while rxid < 0:   # notification / ping: not ours
                fr = recv_frame(sock)
                rxid, _zxid, err = struct.unpack_from(">iqi", fr, 0)
            out.append((err, fr[16:]))
        i += window
    return out


def set_watches(sock: socket.socket, g: int, G: int, count: int) -> None:
    """Session `g` of `G` sets exists-watches on its share (i = g mod G) of `count` paths."""
    reqs = [(OP_EXISTS, body_get(watch_path(i), watch=True)) for i in range(g, count, G)]
    bad = Counter(err for err, _ in pipeline(sock, reqs) if err not in (0, NONODE))
    if bad:
        raise RuntimeError(f"setting watches failed: {dict(bad)}")


def close_sessions(socks: list[socket.socket], timeout: float = CLOSE_TIMEOUT) -> None:
    """closeSession on every session (as a client library's close does), then wait, at most
    `timeout` s in all, until the server has closed each connection: no session outlives the
    run to expire during a later one."""
    frame = frame_request(0x7FFFFFFF, OP_CLOSESESSION, b"")
    deadline = time.monotonic() + timeout
    for sock in socks:
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.sendall(frame)
        except OSError:   # already closed by the server: nothing to close
            pass
    for sock in socks:
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            while sock.recv(1 << 16):   # the reply, then EOF
                pass
        except OSError:   # timed out or reset: stop waiting for this one
            pass


def setup_tree(host: str, port: int, size: int = VALUE_SIZE) -> None:
    """/bench, 1000 keys of `size` bytes, and /bench/children with 1000 children (idempotent)."""
    with SyncClient(host, port) as c:
        reqs = [(OP_CREATE, body_create(p, b"", PERSISTENT)) for p in (ROOT, KEYS_PARENT, CHILDREN_PARENT)]
        reqs += [(OP_CREATE, body_create(key_path(i), value(size, i), PERSISTENT)) for i in range(N_KEYS)]
        reqs += [(OP_CREATE, body_create(f"{CHILDREN_PARENT}/c{i:04d}", value(size, i), PERSISTENT))
                 for i in range(N_CHILDREN)]
        bad = Counter(err for err, _ in c.pipeline(reqs) if err not in (0, NODEEXISTS))
        if bad:
            raise RuntimeError(f"setup failed: {dict(bad)}")


def create_parent(host: str, port: int, path: str) -> None:
    with SyncClient(host, port) as c:
        err, _ = c.call(OP_CREATE, body_create(path, b"", PERSISTENT))
        if err not in (0, NODEEXISTS):
            raise RuntimeError(f"create {path}: err {err}")


# -- the worker process -----------------------------------------------------------------------


@dataclasses.dataclass
class _Sess:
    sock: socket.socket
    src: Source
    rbuf: bytes = b""
    wbuf: memoryview | None = None
    outstanding: int = 0
    done: bool = False    # source exhausted and nothing in flight
    sent: deque[int] = dataclasses.field(default_factory=deque)   # send times (ns) in flight


def _worker(conn: Any, host: str, port: int, spec: dict[str, Any], g0: int, nsess: int, G: int,
            window: int) -> None:
    try:
        conn.send(("result", _worker_body(conn, host, port, spec, g0, nsess, G, window)))
    except BaseException as e:  # report, never hang the coordinator
        try:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass
    finally:
        conn.close()


def _worker_body(conn: Any, host: str, port: int, spec: dict[str, Any], g0: int, nsess: int,
                 G: int, window: int) -> dict[str, Any]:
    sources = [build_source(spec, g0 + j, G) for j in range(nsess)]
    sessions = []
    try:
        for j, src in enumerate(sources):
            s = connect_session(host, port)
            sessions.append(_Sess(s, src))
            if spec.get("watches"):
                set_watches(s, g0 + j, G, spec["watches"])
            s.setblocking(False)
        conn.send(("ready", None))
        if not conn.poll(120):
            raise TimeoutError("no start signal from the coordinator")
        t_start, t_stop = conn.recv()
        result = _drive(sessions, window, t_start, t_stop)
        if not result["timed_out"]:
            close_sessions([s.sock for s in sessions])
        return result
    finally:
        for s in sessions:
            try:
                s.sock.close()
            except OSError:
                pass


def _drive(sessions: list[_Sess], window: int, t_start: float, t_stop: float) -> dict[str, Any]:
    sel = selectors.DefaultSelector()
    errors: Counter[int] = Counter()
    counted = total = ok_total = 0
    cpu_start = cpu_stop = None
    last_counted_t = t_start
    mono = time.monotonic
    ns = time.perf_counter_ns
    lat = array("q")
    lat_append = lat.append
    pcpu = time.process_time
    unpack = REPLY_HDR.unpack_from
    refill_min = max(1, window // 8)
    hard_deadline = t_stop + DRAIN_TIMEOUT
    stopped = False
    timed_out = False

    def push(s: _Sess, k: int) -> None:
        data, got = s.src.take(k)
        if not got:
            return
        s.outstanding += got
        s.sent.extend(repeat(ns(), got))
        if s.wbuf is not None:   # a send is pending: append after it
            s.wbuf = memoryview(bytes(s.wbuf) + bytes(data))
            return
        try:
            n = s.sock.send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            s.wbuf = data[n:]
            sel.modify(s.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, s)

    for s in sessions:
        sel.register(s.sock, selectors.EVENT_READ, s)
    for s in sessions:
        push(s, window)

    live = len(sessions)
    while live:
        now = mono()
        if cpu_start is None and now >= t_start:
            cpu_start = pcpu()
        if not stopped and now >= t_stop:
            stopped = True
            cpu_stop = pcpu()
        if now > hard_deadline:
            timed_out = True
            break
        for key, ev in sel.select(0.05):
            s: _Sess = key.data
            if ev & selectors.EVENT_WRITE and s.wbuf is not None:
                try:
                    n = s.sock.send(s.wbuf)
                except BlockingIOError:
                    n = 0
                s.wbuf = s.wbuf[n:] if n < len(s.wbuf) else None
                if s.wbuf is None:
                    sel.modify(s.sock, selectors.EVENT_READ, s)
            if not ev & selectors.EVENT_READ:
                continue
            try:
                data = s.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("server closed a session")
            buf = s.rbuf + data if s.rbuf else data
            off, end, n = 0, len(buf), 0
            while end - off >= 20:
                ln, xid, _zxid, err = unpack(buf, off)
                nxt = off + 4 + ln
                if nxt > end:
                    break
                if xid >= 0:   # skip pings (-2) and notifications (-1)
                    n += 1
                    if err:
                        errors[err] += 1
                off = nxt
            s.rbuf = buf[off:] if off < end else b""
            if not n:
                continue
            s.outstanding -= n
            total += n
            ok_total += n
            t = mono()
            in_window = t_start <= t < t_stop
            if in_window:
                counted += n
                last_counted_t = t
            popleft = s.sent.popleft
            if in_window and len(lat) < LAT_CAP:
                t_ns = ns()
                for _ in range(n):
                    lat_append(t_ns - popleft())
            else:
                for _ in range(n):
                    popleft()
            if not stopped and s.src.left and window - s.outstanding >= refill_min:
                push(s, window - s.outstanding)
            if s.outstanding == 0 and (stopped or not s.src.left) and s.wbuf is None:
                if not s.done:
                    s.done = True
                    live -= 1
        if stopped and live:
            # sessions with nothing in flight are done once sending has stopped
            for s in sessions:
                if not s.done and s.outstanding == 0 and s.wbuf is None:
                    s.done = True
                    live -= 1
    now = mono()
    if cpu_start is None:
        cpu_start = pcpu()
    if cpu_stop is None:
        cpu_stop = pcpu()
    sel.close()
    err_total = sum(errors.values())
    exhausted = all(not s.src.left for s in sessions)
    return {
        "ops": counted,
        "total": total,
        "ok_total": ok_total - err_total,
        "errors": dict(errors),
        "client_cpu": cpu_stop - cpu_start,
        "exhausted": exhausted and last_counted_t < t_stop,
        "last_counted_t": last_counted_t,
        "timed_out": timed_out,
        "lat_ns": array("q", sorted(lat)),   # sorted here: the coordinator's merge is then cheap
    }


# -- the coordinator ------------------------------------------------------------------------


def run_load(host: str, port: int, spec: dict[str, Any], *, server_pid: int | None,
             procs: int = 2, sessions: int = 4, window: int = 100, duration: float = 5.0,
             warmup: float = 1.0) -> dict[str, Any]:
    """Run `spec` with `procs` processes x `sessions` sessions x `window` in flight.

    Returns ops/s in the measured window, server and client CPU, errors, p50/p99/p99.9 of the
    replies' latencies (µs). spec["watches"] = N: before the window, the sessions set
    exists-watches on N paths that do not exist (`watch_path`), split over them.
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork")
    G = procs * sessions
    workers = []
    try:
        for i in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child, host, port, spec, i * sessions, sessions,
                                                  G, window), daemon=True)
            p.start()
            child.close()
            workers.append((p, parent))
        for p, c in workers:
            if not c.poll(120):
                raise TimeoutError("a load worker did not connect in 120 s")
            kind, msg = c.recv()
            if kind != "ready":
                raise RuntimeError(f"load worker failed: {msg}")
        server_watches = server_watch_count(host, port) if spec.get("watches") else None
        t_start = time.monotonic() + warmup
        t_stop = t_start + duration
        for _, c in workers:
            c.send((t_start, t_stop))
        _sleep_until(t_start)
        srv0 = proc_cpu_seconds(server_pid) if server_pid else None
        sys0 = system_busy_seconds()
        # until t_stop, or earlier when every worker has reported (count-bounded sources)
        pending = {c: p for p, c in workers}
        results: list[dict[str, Any]] = []

        def collect(timeout: float) -> None:
            for c in wait(list(pending), timeout):
                kind, msg = c.recv()
                if kind != "result":
                    raise RuntimeError(f"load worker failed: {msg}")
                results.append(msg)
                del pending[c]

        while pending and time.monotonic() < t_stop:
            collect(min(0.5, max(0.0, t_stop - time.monotonic())))
        srv1 = proc_cpu_seconds(server_pid) if server_pid else None
        sys1 = system_busy_seconds()
        deadline = time.monotonic() + DRAIN_TIMEOUT + 30
        while pending and time.monotonic() < deadline:
            collect(0.5)
        if pending:
            raise TimeoutError("a load worker did not report")
    finally:
        for p, c in workers:
            p.join(10)
            if p.is_alive():
                p.terminate()   # our own child, by its handle
                p.join(5)
            c.close()
    ops = sum(r["ops"] for r in results)
    elapsed = duration
    exhausted = all(r["exhausted"] for r in results) if results else False
    if exhausted:   # a count-bounded source ran dry before t_stop: time until the last reply
        elapsed = max(1e-6, max(r["last_counted_t"] for r in results) - t_start)
    errors: Counter[int] = Counter()
    for r in results:
        errors.update(r["errors"])
    client_cpu = sum(r["client_cpu"] for r in results)
    lat_ns = sorted(chain.from_iterable(r["lat_ns"] for r in results))
    out = {
        "workload": spec["workload"],
        "ops": ops,
        "elapsed": elapsed,
        "ops_per_s": ops / elapsed if elapsed else 0.0,
        "total": sum(r["total"] for r in results),
        "ok_total": sum(r["ok_total"] for r in results),
        "errors": dict(errors),
        "exhausted": exhausted,
        "timed_out": any(r["timed_out"] for r in results),
        "client_cpu_s": client_cpu,
        "client_us_per_op": client_cpu * 1e6 / ops if ops else None,
        "procs": procs, "sessions": G, "window": window,
        "lat_n": len(lat_ns), **percentiles_us(lat_ns),
    }
    if spec.get("watches"):
        out["watches"] = spec["watches"]
        out["server_watches"] = server_watches
    if srv0 is not None and srv1 is not None:
        out["server_cpu_s"] = srv1 - srv0
        out["server_us_per_op"] = (srv1 - srv0) * 1e6 / ops if ops else None
        # CPU used by neither the server nor this load generator: other work on the machine
        out["other_cpu_s"] = max(0.0, (sys1 - sys0) - (srv1 - srv0) - client_cpu)
    return out


def _sleep_until(t: float) -> None:
    while True:
        d = t - time.monotonic()
        if d <= 0:
            return
        time.sleep(min(d, 0.5))


def run_latency(host: str, port: int, workload: str, *, server_pid: int | None,
                duration: float = 5.0, warmup: float = 1.0, seed: int = 1) -> dict[str, Any]:
    """One session, one request in flight: p50/p99/p99.9 of `get` or `set` round trips (µs)."""
    rnd = random.Random(seed)
    data = value()
    if workload == "get":
        bodies = [(OP_GETDATA, body_get(key_path(rnd.randrange(N_KEYS)))) for _ in range(RING)]
    elif workload == "set":
        bodies = [(OP_SETDATA, body_set(key_path(rnd.randrange(N_KEYS)), data)) for _ in range(RING)]
    else:
        raise ValueError(workload)
    frames = [frame_request(i + 1, op, b) for i, (op, b) in enumerate(bodies)]
    sock = connect_session(host, port)
    lat: list[int] = []
    errors: Counter[int] = Counter()
    ns = time.perf_counter_ns
    mono = time.monotonic
    t_start = mono() + warmup
    t_stop = t_start + duration
    srv0 = srv1 = None
    cpu0 = cpu1 = None
    i = 0
    cap = 5_000_000
    try:
        while True:
            now = mono()
            if srv0 is None and now >= t_start:
                srv0 = proc_cpu_seconds(server_pid) if server_pid else None
                cpu0 = time.process_time()
                sys0 = system_busy_seconds()
            if now >= t_stop:
                srv1 = proc_cpu_seconds(server_pid) if server_pid else None
                cpu1 = time.process_time()
                sys1 = system_busy_seconds()
                break
            fr = frames[i % RING]
            i += 1
            t0 = ns()
            sock.sendall(fr)
            reply = recv_frame(sock)
            t1 = ns()
            while LEN.unpack_from(reply, 0)[0] < 0:   # a ping or notification: not ours
                reply = recv_frame(sock)
                t1 = ns()
            err = struct.unpack_from(">i", reply, 12)[0]
            if err:
                errors[err] += 1
            if srv0 is not None and len(lat) < cap:
                lat.append(t1 - t0)
    finally:
        sock.close()
    lat.sort()
    n = len(lat)
    out = {
        "workload": f"lat-{workload}", "ops": n, "elapsed": duration,
        "ops_per_s": n / duration, "errors": dict(errors), **percentiles_us(lat),
        "mean_us": (sum(lat) / n / 1000.0) if n else None,
        "client_cpu_s": (cpu1 - cpu0) if cpu0 is not None else None,
        "client_us_per_op": ((cpu1 - cpu0) * 1e6 / n) if (cpu0 is not None and n) else None,
    }
    if srv0 is not None and srv1 is not None:
        out["server_cpu_s"] = srv1 - srv0
        out["server_us_per_op"] = (srv1 - srv0) * 1e6 / n if n else None
        out["other_cpu_s"] = max(0.0, (sys1 - sys0) - (srv1 - srv0) - (cpu1 - cpu0))
    return out


if __name__ == "__main__":   # a quick manual run against a server already listening
    import argparse
    import json

    ap = argparse.ArgumentParser(description="pipelined ZooKeeper load against host:port")
    ap.add_argument("hostport")
    ap.add_argument("--workload", default="get")
    ap.add_argument("--pid", type=int, help="server PID, for its CPU time")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--watches", type=int, default=0, help="exists-watches to set before the load")
    a = ap.parse_args()
    raise_nofile_limit()
    h, _, pt = a.hostport.rpartition(":")
    if not h.startswith("127.") and h != "localhost":
        sys.exit("loopback only")
    setup_tree(h, int(pt))
    if a.workload.startswith("lat-"):
        r = run_latency(h, int(pt), a.workload[4:], server_pid=a.pid, duration=a.duration)
    else:
        spec: dict[str, Any] = {"workload": a.workload, "watches": a.watches}
        if a.workload == "create":
            spec["parent"] = ROOT + f"/seq{os.getpid()}"
            create_parent(h, int(pt), spec["parent"])
        r = run_load(h, int(pt), spec, server_pid=a.pid, procs=a.procs, sessions=a.sessions,
                     window=a.window, duration=a.duration)
    print(json.dumps(r, indent=2))
