"""A write that cannot be made durable: never acknowledged, answered with an error, and the
server stops serving clients (ours only).

The fault comes from a test-only storage plugin, ``faulty``, registered like any third-party
plugin (a module and a ``*.dist-info`` entry point on PYTHONPATH, as in
test_third_party_scheme.py): it wraps the sqlite store on the same dataDir and makes ``append``
raise ``StoreError("disk full")`` once ``faulty.failAfter`` txns are stored. With
``faulty.mode=before`` nothing of the failing batch is written (a full disk); with ``after`` the
batch is written and then the error is raised (an fsync that fails after the write: the outcome
is unknown to the server).

A kazoo client makes acknowledged writes; then two raw clients (tests/wire.py: kazoo cannot
queue hundreds of requests while it reconnects) each pipeline creates and two-node multis past
the failure, reading replies until the server closes the connection. Then:

- each client's replies, in its order, are acknowledged writes, then SYSTEMERROR (the failed
  batch and what was queued behind it), then none (the connection closed); some client got
  SYSTEMERROR; nothing is acknowledged after an error;
- the server logs one critical line, refuses new sessions, answers ``srvr`` with "not currently
  serving", and keeps running;
- restarted (by PID) on the same dataDir with the healthy sqlite store: every acknowledged
  write is there with the zxid its reply gave; of the rest, ``before`` leaves nothing, and
  ``after`` leaves at most the failed batch, each multi whole or absent.
"""

from __future__ import annotations

import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from core.errors import Code
from core.opcodes import OpCode
from core.records import Create2Response, CreateRequest, RequestHeader
from harness import OurZK
from wire import OPEN_ACL_UNSAFE, ConnectionClosed, WireClient, frame, multi_body

WARM_UP = 20  # acknowledged creates through kazoo before the pipelines
# txns before the pipelines: kazoo's session, /d, the warm-up, kazoo's close, two sessions
BEFORE = 1 + 1 + WARM_UP + 1 + 2
FAIL_AFTER = BEFORE + 40  # txns stored before the "disk" fills
OPS_PER_CLIENT = 300
FIRST = 15  # writes per client sent, and acknowledged, before the rest
REPLY_TIMEOUT = 20.0

PLUGIN = '''
"""A test-only store: the sqlite store whose append fails after faulty.failAfter txns."""

from core import BackendSpec, hookimpl
from core.interfaces import StoreError
from plugins.storage_sqlite.store import create_store as create_sqlite_store


class FaultyStore:
    """Delegates to the sqlite store; append raises StoreError("disk full") from the batch
    that would take the stored txns past `fail_after` on (mode "before": nothing of it is
    written; "after": it is written, then the error comes)."""

    def __init__(self, inner, fail_after, mode):
        self.inner = inner
        self.fail_after = fail_after
        self.mode = mode
        self.stored = None

    def open(self):
        self.inner.open()
        self.stored = len(list(self.inner.read_from(0)))

    def append(self, txns):
        if self.stored + len(txns) > self.fail_after or self.stored >= self.fail_after:
            if self.mode == "after":
                self.inner.append(txns)
            self.stored = self.fail_after
            raise StoreError("disk full")
        self.inner.append(txns)
        self.stored += len(txns)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def create_store(config):
    options = config.plugin_options("faulty")
    return FaultyStore(create_sqlite_store(config), int(options["failAfter"]),
                       options.get("mode", "before"))


@hookimpl
def zk_storage_backends():
    return [BackendSpec("faulty", "sqlite, failing after faulty.failAfter txns", create_store)]
'''


def install_plugin(directory: Path) -> dict[str, str]:
    """Write the faulty store plugin into `directory`; the child environment that finds it."""
    (directory / "zk_faulty_store.py").write_text(textwrap.dedent(PLUGIN))
    info = directory / "zk_faulty_store-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zk-faulty-store\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zkserver.plugins]\nfaulty = zk_faulty_store\n")
    return {"PYTHONPATH": str(directory)}


@dataclass
class Write:
    """One pipelined write: a create2 of one node or a multi creating two."""

    index: int
    nodes: list[str]
    status: str = "lost"  # "ok", "error" (SYSTEMERROR) or "lost" (no reply: connection closed)
    zxid: int = 0  # the czxid the reply gave, for an acknowledged create2


def pipeline(client: WireClient, name: str, both_first: threading.Barrier) -> list[Write]:
    """Send FIRST writes and read their replies, then (once the other client has its FIRST
    replies too) the rest of OPS_PER_CLIENT at once (every 5th a two-node multi), reading
    replies until the server closes the connection."""
    writes: list[Write] = []
    frames = []
    for i in range(OPS_PER_CLIENT):
        xid = client.next_xid()
        if i % 5 == 4:
            nodes = [f"{name}-{i:04d}-a", f"{name}-{i:04d}-b"]
            body = multi_body([(OpCode.create, CreateRequest(f"/d/{n}", b"m", OPEN_ACL_UNSAFE, 0))
                               for n in nodes])
            op = OpCode.multi
        else:
            nodes = [f"{name}-{i:04d}"]
            body = CreateRequest.encode(CreateRequest(f"/d/{nodes[0]}", b"v", OPEN_ACL_UNSAFE, 0))
            op = OpCode.create2
        writes.append(Write(xid, nodes))
        frames.append(frame(RequestHeader.encode(RequestHeader(xid, int(op))) + body))
    by_xid = {w.index: w for w in writes}
    client.sock.settimeout(REPLY_TIMEOUT)
    client.send_raw(b"".join(frames[:FIRST]))  # the "disk" has room for these
    replies = [client.read_reply() for _ in range(FIRST)]
    both_first.wait(REPLY_TIMEOUT)  # neither client's bulk may take the other's FIRST room
    try:
        client.send_raw(b"".join(frames[FIRST:]))
    except OSError:
        pass  # closed while we were still sending: what was not read gets no reply
    while True:
        if replies:
            reply = replies.pop(0)
        else:
            try:
                reply = client.read_reply()
            except (ConnectionClosed, OSError):
                break
        write = by_xid[reply.xid]
        if reply.err == 0:
            write.status = "ok"
            if len(write.nodes) == 1:
                write.zxid = reply.decode(Create2Response).stat.czxid
        elif reply.err == Code.SYSTEMERROR:
            write.status = "error"
        else:
            raise AssertionError(f"{name}: unexpected error {reply.err} for xid {reply.xid}")
    return writes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["before", "after"])
def test_a_write_that_cannot_be_made_durable(tmp_path: Path, mode: str) -> None:
    env = install_plugin(tmp_path)
    data_dir = tmp_path / "data"
    faulty = OurZK(extra_cfg={"storage": "faulty", "dataDir": str(data_dir),
                              "faulty.failAfter": str(FAIL_AFTER), "faulty.mode": mode}, env=env)
    outcomes: dict[str, list[Write]] = {}
    warm: dict[str, int] = {}
    wires: list[WireClient] = []
    faulty.start()
    try:
        zk = KazooClient(hosts=faulty.hosts, timeout=10)
        zk.start(timeout=15)
        try:
            zk.create("/d")
            for i in range(WARM_UP):
                warm[f"warm-{i:02d}"] = zk.create(f"/d/warm-{i:02d}", b"w", include_data=True)[1].czxid
        finally:
            zk.stop()
            zk.close()
        for _ in range(2):
            wires.append(WireClient(faulty.host, faulty.port, timeout=REPLY_TIMEOUT))
            wires[-1].connect()
        both_first = threading.Barrier(2)
        threads = [threading.Thread(
            target=lambda c=c, n=n: outcomes.__setitem__(n, pipeline(c, n, both_first)))
            for n, c in zip("pq", wires)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(REPLY_TIMEOUT * 2)
        assert sorted(outcomes) == ["p", "q"]

        # per client: acknowledged, then SYSTEMERROR (the failed batch and what was queued
        # behind it), then no reply; someone got SYSTEMERROR; never more acked than stored
        order = {"ok": 0, "error": 1, "lost": 2}
        for name, writes in outcomes.items():
            statuses = [w.status for w in writes]
            assert statuses == sorted(statuses, key=order.__getitem__), name
        statuses = [w.status for writes in outcomes.values() for w in writes]
        assert "error" in statuses
        assert 2 * FIRST <= statuses.count("ok") <= FAIL_AFTER - BEFORE

        # one critical line; still running, but serving no client
        log = faulty.log_tail(5000)
        critical = [line for line in log.splitlines() if "#critical]" in line]
        assert len(critical) == 1, critical
        assert "durable" in critical[0] and "disk full" in critical[0]
        assert "Traceback" not in log
        assert faulty.alive()
        assert "not currently serving" in faulty.four_letter("srvr")
        probe = WireClient(faulty.host, faulty.port, timeout=5.0)
        try:
            with pytest.raises((ConnectionClosed, OSError)):
                probe.connect()
        finally:
            probe.close()
    finally:
        for client in wires:
            client.close()
        faulty.stop()

    healthy = OurZK(extra_cfg={"storage": "sqlite", "dataDir": str(data_dir)})
    healthy.start()
    try:
        zk = KazooClient(hosts=healthy.hosts, timeout=10)
        zk.start(timeout=15)
        try:
            present = set(zk.get_children("/d"))
            for node, czxid in warm.items():
                assert zk.exists(f"/d/{node}").czxid == czxid
            for name, writes in outcomes.items():
                unacked_present = []
                for w in writes:
                    there = [n in present for n in w.nodes]
                    assert all(there) or not any(there), f"half-applied multi {w.nodes}"
                    if w.status == "ok":
                        assert all(there), f"acknowledged {w.nodes} lost"
                        if w.zxid:
                            assert zk.exists(f"/d/{w.nodes[0]}").czxid == w.zxid
                    elif all(there):
                        unacked_present.append(w.status)
                if mode == "before":  # nothing of the failed batch was written
                    assert unacked_present == [], name
                else:  # only the failed batch, answered SYSTEMERROR, may have been written
                    assert set(unacked_present) <= {"error"}, name
            zk.create("/d/after-restart")  # the healthy store takes writes again
        finally:
            zk.stop()
            zk.close()
        assert "Traceback" not in healthy.log_tail(400)
    finally:
        healthy.stop()
