"""Server and connection statistics for the operations endpoints (ServerStats, ServerCnxn's stats).

Kept cheap on the request path: the connection counts its immediate replies with one integer
add; latency is taken from the reactor's clock once per received batch and once per written
batch (replies that waited for a commit are counted when written, once per run of replies
to one received batch). Latency is in milliseconds, from
the batch the request arrived in to the batch its reply was written in, as ZooKeeper measures
from a request's creation to its reply (ServerStats.updateLatency).
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.connection import ServerConnection

# ZooTrace's default mask (CLIENT_REQUEST_TRACE_MASK | SERVER_PACKET_TRACE_MASK | ...): 306.
DEFAULT_TRACE_MASK = 306
# DataTree.DIGEST_LOG_INTERVAL / DIGEST_LOG_LIMIT (3.8): a digest every 128 zxids, the last 1024.
DIGEST_LOG_INTERVAL = 128
DIGEST_LOG_LIMIT = 1024
DIGEST_VERSION = 2

_HDR = struct.Struct(">ii")

# FinalRequestProcessor's lastOp names, by op code.
OP_NAMES: dict[int, str] = {
    1: "CREA", 2: "DELE", 3: "EXIS", 4: "GETD", 5: "SETD", 6: "GETA", 7: "SETA", 8: "GETC",
    9: "SYNC", 11: "PING", 12: "GETC", 13: "CHEC", 14: "MULT", 15: "CREA", 16: "RECO",
    17: "CHKW", 18: "REMW", 19: "CREA", 20: "DELE", 21: "CREA", 22: "MLTR", 101: "SETW",
    103: "GETE", 104: "GETACN", 105: "SETW", 106: "ADDW", 107: "HOMI", -11: "CLOS", -10: "SESS",
}


class Latency:
    """min/avg/max over a count of replies, in ms; ZooKeeper's reading of an empty counter is 0."""

    __slots__ = ("count", "total", "min", "max")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def add(self, n: int, ms: int) -> None:
        """Record `n` replies that each took `ms` milliseconds."""
        if not self.count or ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms
        self.count += n
        self.total += n * ms

    @property
    def avg(self) -> float:
        """The mean, rounded to 4 places as ServerStats.getAvgLatency does (0.0 when empty)."""
        return round(self.total / self.count, 4) if self.count else 0.0


class ConnectionStats:
    """One connection's statistics (ServerCnxn): the fields `cons` prints."""

    __slots__ = ("established", "latency", "last_op", "last_cxid", "last_zxid",
                 "last_response", "last_latency")

    def __init__(self, established_ms: int) -> None:
        self.established = established_ms
        self.reset()

    def reset(self) -> None:
        """ServerCnxn.resetStats: crst."""
        self.latency = Latency()
        self.last_op = "NA"
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_response = 0
        self.last_latency = 0


class ServerStats:
    """Server-wide counters (ZooKeeper's ServerStats and a few ServerMetrics counters).

    ``srst`` (`reset`) clears latency, packet counts, response sizes and the auth-failure count,
    as ServerStats.reset does; the byte counters and rejections are metrics that ZooKeeper
    never resets either.
    """

    def __init__(self, clock: Any) -> None:
        """:param clock: a callable returning seconds (the reactor's ``seconds``)."""
        self.clock = clock
        self.trace_mask = DEFAULT_TRACE_MASK
        self.digests: deque[tuple[int, int]] = deque(maxlen=DIGEST_LOG_LIMIT)
        self.bytes_received = 0
        self.response_bytes = 0
        self.connection_rejected = 0
        self.throttled: set[ServerConnection] = set()
        self.reset()

    def reset(self) -> None:
        """srst / stat_reset."""
        self.latency = Latency()
        self.packets_received = 0
        self.packets_sent = 0
        self.last_response_size = -1
        self.min_response_size = -1
        self.max_response_size = -1
        self.auth_failed = 0

    # -- called by the connection, once per batch ---------------------------------------------

    def received(self, conn: ServerConnection, packets: int, nbytes: int, last: bytes) -> None:
        """A batch of `packets` frames (`nbytes` bytes) was read; `last` is its last frame."""
        self.packets_received += packets
        self.bytes_received += nbytes
        if conn.handshaken and len(last) >= 8:
            xid, op = _HDR.unpack_from(last, 0)
            s = conn.cstats
            s.last_op = OP_NAMES.get(op, "NA")
            if xid >= 0:
                s.last_cxid = xid

    def sent(self, conn: ServerConnection, frames: list[bytes]) -> None:
        """A batch of frames was written; the immediate replies in it complete their latency."""
        self.packets_sent += len(frames)
        lengths = list(map(len, frames))  # each with its 4-byte length prefix
        self.response_bytes += sum(lengths) - 4 * len(lengths)
        low, high = min(lengths) - 4, max(lengths) - 4
        self.last_response_size = lengths[-1] - 4
        if self.min_response_size < 0 or low < self.min_response_size:
            self.min_response_size = low
        if high > self.max_response_size:
            self.max_response_size = high
        n = conn.replied_now
        if n:
            conn.replied_now = 0
            self._record(conn, n, conn.received_at)
        later = conn.replied_later
        if later:
            conn.replied_later = []
            start, n = later[0], 0
            for t in later:  # runs of replies to requests of one received batch
                if t != start:
                    self._record(conn, n, start)
                    start, n = t, 0
                n += 1
            self._record(conn, n, start)

    def _record(self, conn: ServerConnection, n: int, started: float) -> None:
        now = self.clock()
        ms = max(0, round((now - started) * 1000))
        self.latency.add(n, ms)
        s = conn.cstats
        s.latency.add(n, ms)
        s.last_latency = ms
        s.last_response = int(now * 1000)
        s.last_zxid = conn.server.tree.last_zxid

    # -- other events --------------------------------------------------------------------------

    def log_digest(self, zxid: int, digest: int) -> None:
        """DataTree.logZxidDigest: keep the tree digest of every 128th zxid."""
        if zxid % DIGEST_LOG_INTERVAL == 0:
            self.digests.append((zxid, digest))

    # -- globalOutstandingLimit ----------------------------------------------------------------

    def throttle(self, conn: ServerConnection) -> None:
        """Stop reading from `conn` (ZooKeeper's disableRecv) while the server is over
        globalOutstandingLimit; `unthrottle` resumes it when the count drops."""
        if conn not in self.throttled and not conn.closing and conn.transport is not None:
            self.throttled.add(conn)
            conn.transport.pauseProducing()

    def unthrottle(self) -> None:
        """Resume reading from every throttled connection (enableRecv)."""
        conns, self.throttled = self.throttled, set()
        for conn in conns:
            if not conn.closing and conn.transport is not None:
                conn.transport.resumeProducing()
