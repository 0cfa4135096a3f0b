"""Crash tests: nothing acknowledged is ever lost.

For each durable store, our server runs as a child process on a free port of 127.0.0.1 with a
temp dataDir. Three kazoo clients (threads) write steadily, each in its own numbered sequence
(op i: create ``n<i>`` when i is even, set ``counter`` to i when odd), one request at a time,
recording the reply of each (its Stat) or that the connection broke before one came
(uncertain). At a seeded-random moment the server is killed with SIGKILL by PID and restarted
on the same dataDir and port; the clients reconnect with their sessions. Then, for every
client, cumulatively over the rounds:

- every acknowledged create is there with its data and the czxid its reply gave; an
  acknowledged set is reflected in the counter (version, data, mzxid);
- the replies' zxids increase in the client's order;
- what exists is the client's sequence up to its last request: nothing it never sent, and an
  uncertain write, once seen present or absent, stays so (it never appears later, out of order);
- the session resumed (same session id, no LOST state, its ephemeral node still there).

At the end, with the server down, `zkserver log` on the store must list every acknowledged
create with the zxid its reply gave.

Each store gets ROUNDS rounds within BUDGET seconds; every process is stopped by PID in a
finally block.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, SessionExpiredError
from kazoo.protocol.states import ZnodeStat

from core import cli
from harness import REPO_ROOT, START_TIMEOUT, STOP_TIMEOUT, free_port, require_ours
from wire import ConnectionClosed, WireClient

SEED = 20240611
ROUNDS = 5
CLIENTS = 3
KILL_AFTER = (0.2, 1.0)  # seconds into each round's load
BUDGET = 60.0  # seconds per store, all rounds
SESSION_TIMEOUT = 10.0
RECONNECT_TIMEOUT = 15.0
BASE = "/crash"

# What a broken connection raises in a kazoo call: the request's fate is unknown.
CONNECTION_ERRORS = (ConnectionLoss, SessionExpiredError, ConnectionClosedError)


class CrashServer:
    """Our server as a child process on one dataDir and port, killed and restarted at will."""

    def __init__(self, workdir: Path, storage: str) -> None:
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.workdir = workdir
        self.cfg = workdir / "zoo.cfg"
        self.cfg.write_text(
            f"tickTime=2000\ndataDir={workdir / 'data'}\nclientPortAddress={self.host}\n"
            f"clientPort={self.port}\nadmin.enableServer=false\nstorage={storage}\n")
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def hosts(self) -> str:
        """The connection string for kazoo."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start `twistd -n zkserver` on the dataDir; wait until it makes sessions."""
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                 "-n", "--pidfile=", "zkserver", "-c", str(self.cfg)],
                cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:  # serving: a session can be made (and closed)
                with WireClient(self.host, self.port, timeout=2.0) as probe:
                    probe.connect()
                    probe.close_session()
                return
            except (OSError, ConnectionClosed):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not serving after {START_TIMEOUT}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL by PID and reap."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)

    def tail(self, n: int = 40) -> str:
        """The server log's last `n` lines, for failure messages."""
        return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-n:])


@dataclass
class Op:
    """One request of a writer: op i creates n<i> (even i) or sets the counter to i (odd i)."""

    index: int
    acked: bool = False
    stat: ZnodeStat | None = None  # the reply's Stat when acked
    seen: bool | None = None  # an uncertain op: whether it was found applied (once checked)

    @property
    def is_create(self) -> bool:
        return self.index % 2 == 0

    @property
    def path_name(self) -> str:
        return f"n{self.index:07d}" if self.is_create else "counter"

    @property
    def data(self) -> bytes:
        return str(self.index).encode()

    @property
    def zxid(self) -> int:
        """The zxid of an acknowledged op, from its reply."""
        assert self.stat is not None
        return self.stat.czxid if self.is_create else self.stat.mzxid

    @property
    def version(self) -> int:
        """The node's data version after an acknowledged op, from its reply."""
        assert self.stat is not None
        return self.stat.version


@dataclass
class Writer:
    """A kazoo client with its session, its numbered ops, and what the server answered."""

    number: int
    client: KazooClient
    session_id: int = 0
    ops: list[Op] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"{BASE}/c{self.number}"

    @property
    def ephemeral(self) -> str:
        return f"{BASE}/eph-c{self.number}"

    def run(self, stop: threading.Event) -> None:
        """Send ops one at a time until `stop`, or until the connection breaks."""
        while not stop.is_set():
            op = Op(len(self.ops))
            self.ops.append(op)
            path = f"{self.base}/{op.path_name}"
            try:
                if op.is_create:
                    _, op.stat = self.client.create(path, op.data, include_data=True)
                else:
                    op.stat = self.client.set(path, op.data)
            except CONNECTION_ERRORS:
                return
            except Exception as e:  # a wrong answer: the check reports it
                self.errors.append(f"op {op.index} {path}: {e!r}")
                return
            op.acked = True


def check_writer(w: Writer, reader: KazooClient) -> list[str]:
    """Everything wrong with what the server holds for `w` (see the module docstring)."""
    problems = list(w.errors)
    acked = [op for op in w.ops if op.acked]
    zxids = [op.zxid for op in acked]
    if zxids != sorted(set(zxids)):
        problems.append(f"reply zxids not increasing in the client's order: {zxids}")
    names = set(reader.get_children(w.base))
    sent = {"counter"} | {op.path_name for op in w.ops}  # the counter is made at the start
    if names - sent:
        problems.append(f"nodes the client never created: {sorted(names - sent)[:5]}")
    creates = [op for op in w.ops if op.is_create]
    found = {op.index: reader.get_async(f"{w.base}/{op.path_name}")
             for op in creates if op.path_name in names}
    for op in creates:
        present = op.index in found
        if op.acked:
            if not present:
                problems.append(f"acknowledged create n{op.index} (czxid {op.zxid:#x}) is lost")
                continue
            data, stat = found[op.index].get(timeout=10)
            if data != op.data or stat.czxid != op.zxid:
                problems.append(f"n{op.index}: data {data!r} czxid {stat.czxid:#x}, acknowledged "
                                f"as {op.data!r} czxid {op.zxid:#x}")
        elif op.seen is None:
            op.seen = present
        elif op.seen != present:
            problems.append(f"uncertain create n{op.index} was {'present' if op.seen else 'absent'}"
                            f", now {'present' if present else 'absent'}")
    czxids = [found[i].get(timeout=10)[1].czxid for i in sorted(found)]
    if czxids != sorted(czxids):
        problems.append("czxids of the client's nodes not increasing in its order")
    problems.extend(_check_counter(w, reader))
    problems.extend(_check_session(w, reader))
    return problems


def _check_counter(w: Writer, reader: KazooClient) -> list[str]:
    """The counter holds the last acknowledged set, or an uncertain one sent after it."""
    sets = [op for op in w.ops if not op.is_create]
    acked = [op for op in sets if op.acked]
    data, stat = reader.get(f"{w.base}/counter")
    value = int(data or b"-1")
    last = acked[-1] if acked else None
    later = {op.index for op in sets if not op.acked and (last is None or op.index > last.index)}
    problems = []
    if not len(acked) <= stat.version <= len(sets):
        problems.append(f"counter version {stat.version}: {len(acked)} sets acknowledged, "
                        f"{len(sets)} sent")
    if last is not None and value == last.index:
        if stat.mzxid != last.zxid or stat.version != last.version:
            problems.append(f"counter at acknowledged set {value}: mzxid {stat.mzxid:#x} "
                            f"version {stat.version}, reply said {last.zxid:#x} "
                            f"{last.version}")
    elif value not in later and not (last is None and value == -1):
        problems.append(f"counter holds {value}; last acknowledged set {last and last.index}, "
                        f"uncertain ones after it {sorted(later)}")
    return problems


def _check_session(w: Writer, reader: KazooClient) -> list[str]:
    """The writer's session came back: connected, same id, never LOST, ephemeral kept."""
    problems = []
    if w.client.state != KazooState.CONNECTED:
        problems.append(f"session {w.session_id:#x} did not reconnect ({w.client.state})")
    if KazooState.LOST in w.states:
        problems.append(f"session {w.session_id:#x} was lost")
    if w.client.client_id is None or w.client.client_id[0] != w.session_id:
        problems.append(f"session {w.session_id:#x} did not resume ({w.client.client_id})")
    stat = reader.exists(w.ephemeral)
    if stat is None or stat.ephemeralOwner != w.session_id:
        problems.append(f"ephemeral {w.ephemeral} of session {w.session_id:#x}: {stat}")
    return problems


def _client(hosts: str) -> KazooClient:
    """A kazoo client that retries its connection quickly and forever."""
    return KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT, connection_retry={
        "max_tries": -1, "delay": 0.05, "backoff": 1.5, "max_delay": 0.5, "max_jitter": 0.05})


def _wait_connected(clients: list[KazooClient]) -> None:
    """Wait up to RECONNECT_TIMEOUT until every client is connected again (those that are not
    are reported by the session check)."""
    deadline = time.monotonic() + RECONNECT_TIMEOUT
    while any(c.state != KazooState.CONNECTED for c in clients) and time.monotonic() < deadline:
        time.sleep(0.02)


def crash_round(server: CrashServer, writers: list[Writer], delay: float) -> list[str]:
    """Load for `delay` seconds, SIGKILL, restart, reconnect; what check_writer finds."""
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in writers]
    for t in threads:
        t.start()
    time.sleep(delay)
    server.kill()
    stop.set()
    server.start()
    _wait_connected([w.client for w in writers])
    problems = []
    for w, t in zip(writers, threads):
        t.join(RECONNECT_TIMEOUT if w.client.state == KazooState.CONNECTED else 0.5)
        if t.is_alive():
            problems.append(f"client {w.number}: op {len(w.ops) - 1} still has no answer")
    reader = _client(server.hosts)  # a new session: nothing seen, so always let in
    reader.start(timeout=15)
    try:
        problems.extend(f"client {w.number}: {p}" for w in writers for p in check_writer(w, reader))
    finally:
        reader.stop()
        reader.close()
    return problems


def acknowledged_creates_not_logged(cfg: Path, writers: list[Writer]) -> list[str]:
    """The acknowledged creates that `zkserver log` does not list with their zxid: the store
    itself, read without the server, must hold them."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["log", "-c", str(cfg)]) == 0
    logged = {(m.group(2), int(m.group(1), 16))
              for m in re.finditer(r" zxid (0x[0-9a-f]+) create2? ([^,]+),", out.getvalue())}
    return [f"{w.base}/{op.path_name} {op.zxid:#x}" for w in writers for op in w.ops
            if op.acked and op.is_create and (f"{w.base}/{op.path_name}", op.zxid) not in logged]


@pytest.mark.timeout(BUDGET + 60)
@pytest.mark.parametrize("storage", ["sqlite", "rocksdb"])
def test_nothing_acknowledged_is_lost(storage: str, tmp_path: Path) -> None:
    """ROUNDS rounds of load, SIGKILL and restart; after each, check every writer."""
    require_ours()
    rng = random.Random(SEED ^ zlib.crc32(storage.encode()))
    began = time.monotonic()
    server = CrashServer(tmp_path, storage)
    writers: list[Writer] = []
    try:
        server.start()
        for number in range(CLIENTS):
            w = Writer(number, _client(server.hosts))
            writers.append(w)
            w.client.add_listener(w.states.append)
            w.client.start(timeout=15)
            w.session_id = w.client.client_id[0]
            w.client.ensure_path(w.base)
            w.client.create(f"{w.base}/counter", b"-1")
            w.client.create(w.ephemeral, b"", ephemeral=True)
        report = []
        for round_number in range(1, ROUNDS + 1):
            delay = rng.uniform(*KILL_AFTER)
            problems = crash_round(server, writers, delay)
            ops = [op for w in writers for op in w.ops]
            applied = sum(op.seen is True for op in ops)
            report.append(f"round {round_number}: killed after {delay:.2f}s, "
                          f"{sum(op.acked for op in ops)}/{len(ops)} acknowledged so far, "
                          f"{applied} unacknowledged creates applied")
            assert not problems, (f"{storage}, seed {SEED}, round {round_number}:\n"
                                  + "\n".join(problems[:20]) + f"\nserver log:\n{server.tail()}")
        server.kill()
        missing = acknowledged_creates_not_logged(server.cfg, writers)
        assert not missing, f"acknowledged creates missing from `zkserver log`: {missing[:10]}"
        elapsed = time.monotonic() - began
        print(f"\n{storage}: " + "; ".join(report) + f"; {elapsed:.1f}s")
        assert elapsed < BUDGET, f"{ROUNDS} rounds took {elapsed:.1f}s (budget {BUDGET}s)"
    finally:
        for w in writers:
            w.client.stop()
            w.client.close()
        server.kill()
