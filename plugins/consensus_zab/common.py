"""What the leader and the learners share: quorum-port framing, group commit, epochs, quorums.

The quorum port carries QuorumPackets back to back with no length prefix (quorum.md 2.1); only
after a SNAP does a raw snapshot stream sit between two packets (2.5). `QuorumStream` splits
the bytes into packets and lets its owner pause the stream while a packet's work waits for the
storage thread (so the next packet is handled only after it).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from core.connection import write_now
from core.jute import JuteError
from core.records import Id
from plugins.consensus_zab.packets import QuorumPacket

log = Logger()

ACCEPTED_EPOCH = "acceptedEpoch"
CURRENT_EPOCH = "currentEpoch"
COMMIT_LOG_COUNT = 500  # zookeeper.commitLogCount
MAX_PACKET_DATA = 64 * 1024 * 1024  # a sanity bound on one packet's data (jute.maxbuffer-ish)
MAX_AUTH_IDS = 4096
SNAP_SIGNATURE = "BenWasHere"
COUNTER_MASK = 0xFFFFFFFF

_INT = struct.Struct(">i")
_HEAD = struct.Struct(">iqi")  # type, zxid, data length
_NULL_VECTOR = _INT.pack(-1)
_AUTHINFO: dict[bytes, tuple[Id, ...]] = {}
_AUTHINFO_BYTES: dict[int, tuple[Sequence[Id], bytes]] = {}  # id(a tuple of ids) -> it, its bytes
_AUTHINFO_CACHE = 1024


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def is_new_epoch_zxid(zxid: int) -> bool:
    """A zxid whose counter is 0 names no txn (quorum.md 0)."""
    return zxid & COUNTER_MASK == 0


def packet(ptype: int, zxid: int, data: bytes | None = None, authinfo: Sequence[Id] | None = None) -> bytes:
    """One QuorumPacket's bytes, packed directly: type, zxid, data, then the authinfo vector
    (null but in a learner's REQUEST)."""
    head = _HEAD.pack(ptype, zxid, -1 if data is None else len(data))
    auth = _NULL_VECTOR if authinfo is None else _authinfo_bytes(authinfo)
    return head + auth if data is None else head + data + auth


def _authinfo_bytes(authinfo: Sequence[Id]) -> bytes:
    """The authinfo vector's bytes. A connection's ids are one tuple, replaced and never
    changed, sent with each of its forwarded writes: a tuple is encoded once (held here, so its
    id names it while remembered; at most _AUTHINFO_CACHE of them)."""
    hit = _AUTHINFO_BYTES.get(id(authinfo))
    if hit is not None and hit[0] is authinfo:
        return hit[1]
    raw = _INT.pack(len(authinfo)) + b"".join(map(Id.encode, authinfo))
    if type(authinfo) is tuple:
        if len(_AUTHINFO_BYTES) >= _AUTHINFO_CACHE:
            _AUTHINFO_BYTES.clear()
        _AUTHINFO_BYTES[id(authinfo)] = (authinfo, raw)
    return raw


def read_packet(buf: bytes | bytearray, off: int) -> tuple[QuorumPacket, int] | None:
    """The QuorumPacket at `off` and the offset after it, or None while bytes are missing.
    Raises JuteError on lengths no packet has. A packet without authinfo (PROPOSAL, ACK,
    COMMIT...) is read from its header; one with authinfo goes through the jute decoder."""
    n = len(buf)
    if n - off < _HEAD.size + 4:
        return None
    ptype, zxid, size = _HEAD.unpack_from(buf, off)
    if size < -1 or size > MAX_PACKET_DATA:
        raise JuteError(f"quorum packet data length {size}")
    start = off + _HEAD.size
    pos = start + max(size, 0)
    if n - pos < 4:
        return None
    data = bytes(buf[start:pos]) if size >= 0 else None
    if _INT.unpack_from(buf, pos)[0] == -1:
        return QuorumPacket(ptype, zxid, data, None), pos + 4
    end = _authinfo_end(buf, pos)  # validates the authinfo's lengths
    if end is None:
        return None
    return QuorumPacket(ptype, zxid, data, list(_authinfo(bytes(buf[pos:end])))), end


def _authinfo(vector: bytes) -> tuple[Id, ...]:
    """A REQUEST's authinfo vector, decoded once per distinct vector (a learner's client
    connections repeat a few: their ip and authenticated ids)."""
    ids = _AUTHINFO.get(vector)
    if ids is None:
        count, off, decoded = _INT.unpack_from(vector, 0)[0], 4, []
        for _ in range(count):
            i, off = Id.decode(vector, off)
            decoded.append(i)
        ids = tuple(decoded)
        if len(_AUTHINFO) < _AUTHINFO_CACHE:
            _AUTHINFO[vector] = ids
    return ids


def packet_end(buf: bytes | bytearray, off: int) -> int | None:
    """Where the QuorumPacket starting at `off` ends, or None while bytes are missing.
    Raises JuteError on lengths no packet has."""
    n = len(buf)
    if n - off < _HEAD.size:
        return None
    _, _, size = _HEAD.unpack_from(buf, off)
    if size < -1 or size > MAX_PACKET_DATA:
        raise JuteError(f"quorum packet data length {size}")
    return _authinfo_end(buf, off + _HEAD.size + max(size, 0))


def _authinfo_end(buf: bytes | bytearray, pos: int) -> int | None:
    """Where the authinfo vector at `pos` (the end of a packet) ends, or None while bytes are
    missing. Raises JuteError on lengths no packet has."""
    n = len(buf)
    if n - pos < 4:
        return None
    (count,) = _INT.unpack_from(buf, pos)
    pos += 4
    if count < -1 or count > MAX_AUTH_IDS:
        raise JuteError(f"quorum packet authinfo count {count}")
    for _ in range(max(count, 0) * 2):  # each Id: two ustrings
        if n - pos < 4:
            return None
        (length,) = _INT.unpack_from(buf, pos)
        if length < -1 or length > MAX_PACKET_DATA:
            raise JuteError(f"quorum packet string length {length}")
        pos += 4 + max(length, 0)
    return pos if pos <= n else None


class SnapScanner:
    """Finds, as bytes arrive, where a SNAP payload ends: sessions, ACL cache, nodes up to the
    "/" marker, then the ustring "BenWasHere" (quorum.md 2.5). Resumable, so a large snapshot
    arriving in many reads is scanned once."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.pos = start
        self.phase = "sessions"
        self.left = 0
        self.acl_entries = 0
        self.nodes_end = 0  # where the "/" end marker ends (where the signature starts)

    def feed(self, buf: bytes | bytearray) -> int | None:
        """The offset just after the signature once it has arrived, else None. Raises
        ValueError on a malformed stream."""
        n = len(buf)
        while True:
            p = self.pos
            if self.phase == "sessions":
                if n - p < 4:
                    return None
                self.left = _count(buf, p)
                self.pos, self.phase = p + 4, "session"
            elif self.phase == "session":
                if self.left == 0:
                    self.phase = "acls"
                    continue
                if n - p < 12:
                    return None
                self.pos, self.left = p + 12, self.left - 1
            elif self.phase == "acls":
                if n - p < 4:
                    return None
                self.left = _count(buf, p)
                self.pos, self.phase = p + 4, "acl"
            elif self.phase == "acl":
                if self.left == 0:
                    self.phase = "node"
                    continue
                if n - p < 12:
                    return None
                self.acl_entries = max(_INT.unpack_from(buf, p + 8)[0], 0)
                self.pos, self.phase = p + 12, "acl_entry"
            elif self.phase == "acl_entry":
                if self.acl_entries == 0:
                    self.left -= 1
                    self.phase = "acl"
                    continue
                end = _skip_strings(buf, p + 4, 2)
                if end is None:
                    return None
                self.pos, self.acl_entries = end, self.acl_entries - 1
            elif self.phase == "node":
                if n - p < 4:
                    return None
                (length,) = _INT.unpack_from(buf, p)
                if length == 1 and n - p >= 5 and buf[p + 4:p + 5] == b"/":
                    self.pos = self.nodes_end = p + 5
                    self.phase = "signature"
                    continue
                end = _skip_strings(buf, p, 2)  # path, data
                if end is None or n - end < 68:  # aclRef + StatPersisted
                    return None
                self.pos = end + 68
            elif self.phase == "signature":
                end = _skip_strings(buf, p, 1)
                if end is None:
                    return None
                if bytes(buf[p + 4:end]) != SNAP_SIGNATURE.encode():
                    raise ValueError("SNAP payload without its BenWasHere signature")
                self.pos, self.phase = end, "done"
                return end
            else:
                return self.pos


def _count(buf: bytes | bytearray, off: int) -> int:
    (c,) = _INT.unpack_from(buf, off)
    if c < 0 or c > 1 << 28:
        raise ValueError(f"SNAP payload count {c} at byte {off}")
    return c


def _skip_strings(buf: bytes | bytearray, off: int, count: int) -> int | None:
    """The end of `count` consecutive length-prefixed fields at `off`, or None if incomplete."""
    n = len(buf)
    for _ in range(count):
        if n - off < 4:
            return None
        (length,) = _INT.unpack_from(buf, off)
        if length < -1 or length > MAX_PACKET_DATA:
            raise ValueError(f"SNAP payload field length {length} at byte {off}")
        off += 4 + max(length, 0)
        if off > n:
            return None
    return off


class QuorumStream(Protocol):
    """A quorum-port connection: feeds each complete QuorumPacket to `packet_received`.

    When `packet_received` returns a Deferred, later packets wait until it fires (the work of
    a packet, e.g. persisting an epoch, finishes before the next is looked at). `raw` lets the
    owner take the bytes after a packet itself (the SNAP payload): set it to a callable
    (buffer, offset) -> None while more bytes are needed, else (end offset, a Deferred to wait
    for or None)."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.buf = bytearray()
        self.off = 0
        self.blocked = False
        self.draining = False
        self.closed = False
        self.out: list[bytes] = []  # packets sent in this reactor turn, written at its end
        self.raw: Callable[[bytearray, int], tuple[int, Deferred[Any] | None] | None] | None = None

    # -- to override --------------------------------------------------------------------------

    def packet_received(self, pkt: QuorumPacket) -> Deferred[Any] | None:
        raise NotImplementedError

    def stream_failed(self, why: str) -> None:
        """A malformed stream or a failed packet handler: log and close."""
        log.info("quorum connection closed: {why}", why=why)
        self.close()

    # -- Protocol -----------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        self.drain()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True

    # -- output -------------------------------------------------------------------------------

    def send(self, ptype: int, zxid: int, data: bytes | None = None, authinfo: Sequence[Id] | None = None) -> None:
        """Queue one packet; the packets of a reactor turn (a burst's PROPOSALs, COMMITs or
        ACKs) leave together in one socket write when the turn's work is done."""
        self.send_packet(packet(ptype, zxid, data, authinfo))

    def send_packet(self, data: bytes) -> None:
        """Queue a packet already made (`packet`), as `send` does."""
        if not self.closed and self.transport is not None:
            if not self.out:
                self.reactor.callLater(0, self.flush)
            self.out.append(data)

    def flush(self) -> None:
        """Write the queued packets now."""
        out, self.out = self.out, []
        if out and not self.closed and self.transport is not None:
            write_now(self.transport, out)

    def send_raw(self, chunks: Iterable[bytes]) -> None:
        """Write bytes that are not packets (a SNAP payload), after the queued packets."""
        if not self.closed and self.transport is not None:
            self.flush()
            self.transport.writeSequence(list(chunks))

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            if self.transport is not None:
                self.transport.loseConnection()

    # -- input --------------------------------------------------------------------------------

    def drain(self) -> None:
        """Handle every complete packet in the buffer, unless blocked."""
        if self.draining:
            return
        self.draining = True
        try:
            self._drain()
        finally:
            self.draining = False

    def _drain(self) -> None:
        while not self.blocked and not self.closed:
            if self.raw is not None:
                try:
                    res = self.raw(self.buf, self.off)
                except ValueError as e:
                    self.stream_failed(str(e))
                    return
                if res is None:
                    return
                self.off, d = res
            else:
                try:
                    read = read_packet(self.buf, self.off)
                    if read is None:
                        break
                    pkt, self.off = read
                except (JuteError, struct.error) as e:
                    self.stream_failed(f"malformed quorum packet: {e}")
                    return
                try:
                    d = self.packet_received(pkt)
                except (ValueError, struct.error) as e:  # a protocol violation: this connection ends
                    self.stream_failed(f"packet type {pkt.type}: {e}")
                    return
                except Exception as e:  # a bug: logged with its traceback, the connection ends
                    log.failure("handling quorum packet type {t}", t=pkt.type)
                    self.stream_failed(f"packet type {pkt.type}: {e}")
                    return
            if d is not None:
                self.blocked = True
                d.addCallbacks(self._unblock, self._handler_failed)
        if self.raw is None and self.off and (self.off > 65536 or self.off == len(self.buf)):
            del self.buf[:self.off]
            self.off = 0

    def _unblock(self, _: Any) -> None:
        self.blocked = False
        self.drain()

    def _handler_failed(self, failure: Failure) -> None:
        self.blocked = False
        self.stream_failed(failure.getErrorMessage())


class GroupLog:
    """Group commit of txns to the store: the txns of one reactor turn, and those queued while
    a write is in flight, go to the store together in one append (one sync), on the storage
    thread. A lone txn while the storage thread is idle is appended on the reactor instead
    (`StorageThread.run_small`: no thread hand-offs on a lone write's path), after `flush`
    has sent the packets queued this turn (PROPOSALs, ACKs), so that the other members log
    beside this sync, not after it. `on_durable(zxid)` runs on the reactor after each batch,
    in order. `reset()` drops what is queued but not yet handed to the store."""

    def __init__(self, reactor: Any, storage: Any, store: Any, on_error: Callable[[Failure], None],
                 flush: Callable[[], None]) -> None:
        self.reactor = reactor
        self.storage = storage
        self.store = store
        self.on_error = on_error
        self.flush = flush
        self.queue: list[tuple[int, bytes, Callable[[int], None]]] = []
        self.writing = False
        self.generation = 0
        self.last_durable = 0

    def append(self, zxid: int, payload: bytes, on_durable: Callable[[int], None]) -> None:
        self.queue.append((zxid, payload, on_durable))
        if not self.writing:
            self.writing = True
            self.reactor.callLater(0, self._write)  # gather the rest of this reactor turn

    def _write(self, inline: bool = True) -> None:
        """Hand what is queued to the store in one append; `inline=False`: never on the reactor
        itself (the caller is running the callbacks of the batch before this one)."""
        batch, self.queue = self.queue, []
        if not batch:  # reset() emptied the queue meanwhile
            self.writing = False
            return
        generation = self.generation
        payloads = [(z, p) for z, p, _ in batch]
        if len(batch) == 1 and inline:
            self.flush()
            d: Deferred[None] = self.storage.run_small(self.store.append, payloads)
        else:
            d = self.storage.run(self.store.append, payloads)
        d.addCallbacks(lambda _: self._done(batch, generation), self._failed)

    def _done(self, batch: Sequence[tuple[int, bytes, Callable[[int], None]]], generation: int) -> None:
        """A batch is durable: with a storage thread, the batch queued behind it goes to the
        store first, so that its append overlaps this batch's callbacks (a leader's commits)."""
        overlap = bool(self.queue) and self.storage.threaded
        if overlap:
            self._write(inline=False)
        else:
            self.writing = False
        if batch:
            self.last_durable = max(self.last_durable, batch[-1][0])
        if generation == self.generation:
            for zxid, _, callback in batch:
                callback(zxid)
        if not overlap and self.queue:
            self._write()

    def _failed(self, failure: Failure) -> None:
        self.writing = False
        self.queue = []
        self.on_error(failure)

    def reset(self) -> None:
        """Forget queued entries and ignore the completion of the batch in flight (its txns
        are durable all the same; the role that wanted them is gone)."""
        self.queue = []
        self.generation += 1


def voters(servers: Mapping[int, Any]) -> frozenset[int]:
    """The voting members' sids (participants)."""
    return frozenset(sid for sid, s in servers.items() if s.role == "participant")


def has_quorum(acks: Iterable[int], voting: frozenset[int]) -> bool:
    """QuorumMaj.containsQuorum: more than half of the voters."""
    return len(voting.intersection(acks)) * 2 > len(voting)


def bracketed(host: str) -> str:
    """An IPv6 literal in brackets, as ZooKeeper writes hosts in addresses and config text."""
    return f"[{host}]" if ":" in host else host


def config_text(servers: Mapping[int, Any], version: int = 0) -> bytes:
    """The static config as ZooKeeper 3.8 writes it in notifications and NEWLEADER
    (QuorumMaj.toString): ``server.N=host:quorumPort:electionPort:role[;clientHost:clientPort]``
    lines, each ended by a newline, then ``version=<hex>`` (0 while reconfig is off), UTF-8."""
    lines = []
    for sid in sorted(servers):
        s = servers[sid]
        line = f"server.{sid}={bracketed(s.host)}:{s.quorum_port}:{s.election_port}:{s.role}"
        if s.client_port is not None:
            line += f";{bracketed(s.client_host or '0.0.0.0')}:{s.client_port}"
        lines.append(line + "\n")
    return ("".join(lines) + f"version={version:x}").encode()


class CommittedLog:
    """The last COMMIT_LOG_COUNT committed txns as (zxid, payload), in zxid order
    (ZKDatabase.committedLog): what a leader's DIFF is made from."""

    def __init__(self, size: int = COMMIT_LOG_COUNT) -> None:
        self.entries: deque[tuple[int, bytes]] = deque(maxlen=size)

    def add(self, zxid: int, payload: bytes) -> None:
        if not self.entries or zxid > self.entries[-1][0]:
            self.entries.append((zxid, payload))

    def clear(self) -> None:
        self.entries.clear()

    def truncate_after(self, zxid: int) -> None:
        while self.entries and self.entries[-1][0] > zxid:
            self.entries.pop()

    def bounds(self, default: int) -> tuple[int, int]:
        """(minCommittedLog, maxCommittedLog), both `default` when empty."""
        if not self.entries:
            return default, default
        return self.entries[0][0], self.entries[-1][0]
