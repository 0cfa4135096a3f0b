"""Server CPU per request without the network: frames fed to a connection on a StringTransport.

    python bench/micro.py [get|exists|set|mixed|create|multi] [--n 20000] [--repeat 5] [--profile]

Reads are answered inside dataReceived; writes go through prep, the memory store's append on
the calling thread (no storage thread), commit and reply, so the figure is the reactor's own
work per op; the best of --repeat runs is shown, as the machine is shared. Use it to find where the microseconds go before changing the design.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import struct
import time
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from core.config import parse
from core.connection import ServerConnection
from core.opcodes import OpCode
from core.records import ACL, CreateRequest, Id, MultiHeader, PathWatchRequest, RequestHeader, SetDataRequest
from core.server import ZKServer
from core.storage_thread import StorageThread

OPEN = [ACL(31, Id("world", "anyone"))]


def frame(xid: int, op: int, record: Any) -> bytes:
    body = RequestHeader(xid, op).encode() + record.encode()
    return struct.pack(">i", len(body)) + body


def build() -> tuple[ZKServer, ServerConnection, Clock]:
    clock = Clock()
    clock.advance(1_800_000_000)
    config = parse("tickTime=2000\nclientPort=0\nstorage=memory\nsnapCount=100000000\n")
    server = ZKServer(config, clock)
    server.storage = StorageThread(clock, threaded=False)
    server.store.open()
    server.consensus.start()
    conn = ServerConnection(server)
    conn.makeConnection(StringTransport())
    server.sessions.add(1, 30000, server.now_ms())
    conn.bind(1, 30000)
    server.connections[1] = conn
    server.heap.start(clock.seconds())  # the collector as the service sets it up (core.heap)
    return server, conn, clock


def multi_frame(xid: int, paths: list[str]) -> bytes:
    """A multi of one setData per path."""
    ops = b"".join(MultiHeader(OpCode.setData, False, -1).encode() + SetDataRequest(p, b"x" * 100, -1).encode()
                   for p in paths)
    body = RequestHeader(xid, OpCode.multi).encode() + ops + MultiHeader(-1, True, -1).encode()
    return struct.pack(">i", len(body)) + body


def requests(kind: str, n: int, first: int = 0) -> bytes:
    """`n` request frames of one workload; creates are numbered from `first`."""
    if kind == "get":
        return b"".join(frame(i, OpCode.getData, PathWatchRequest(f"/k{i % 1000}", False)) for i in range(n))
    if kind == "exists":
        return b"".join(frame(i, OpCode.exists, PathWatchRequest(f"/k{i % 1000}", False)) for i in range(n))
    if kind == "mixed":  # 90 % get / 10 % set, as bench/run.py's mixed
        return b"".join(frame(i, OpCode.setData, SetDataRequest(f"/k{i % 1000}", b"x" * 100, -1)) if i % 10 == 9
                        else frame(i, OpCode.getData, PathWatchRequest(f"/k{i % 1000}", False)) for i in range(n))
    if kind == "set":
        return b"".join(frame(i, OpCode.setData, SetDataRequest(f"/k{i % 1000}", b"x" * 100, -1)) for i in range(n))
    if kind == "multi":
        return b"".join(multi_frame(i, [f"/k{(i * 5 + j) % 1000}" for j in range(5)]) for i in range(n))
    if kind == "create":
        return b"".join(frame(i, OpCode.create, CreateRequest(f"/c{i}", b"x" * 100, OPEN, 0))
                        for i in range(first, first + n))
    raise SystemExit(f"unknown workload {kind}")


def _chunks(data: bytes, batch: int) -> list[bytes]:
    """`data` cut after every `batch` frames (one dataReceived each)."""
    chunks, start, off, count = [], 0, 0, 0
    while off < len(data):
        off += 4 + struct.unpack_from(">i", data, off)[0]
        count += 1
        if count == batch or off == len(data):
            chunks.append(data[start:off])
            start, count = off, 0
    return chunks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", nargs="?", default="get")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=100, help="requests per dataReceived")
    ap.add_argument("--repeat", type=int, default=5, help="runs; the best is shown")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    server, conn, clock = build()
    conn.dataReceived(requests("create", 1000).replace(b"/c", b"/k"))
    clock.advance(0)
    prof = cProfile.Profile() if args.profile else None
    best = float("inf")
    for run in range(args.repeat):
        data = requests(args.kind, args.n, first=run * args.n)
        chunks = _chunks(data, args.batch)
        start = time.process_time()
        if prof:
            prof.enable()
        for chunk in chunks:
            conn.dataReceived(chunk)
            clock.advance(0)  # the group commit's callLater(0)
            conn.transport.clear()
        if prof:
            prof.disable()
        best = min(best, time.process_time() - start)
    print(f"{args.kind}: {best / args.n * 1e6:.2f} us of server CPU per request "
          f"(best of {args.repeat} runs of {args.n} requests)")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)

if __name__ == "__main__":
    main()
