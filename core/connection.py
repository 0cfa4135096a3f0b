"""One client connection: framing, the handshake, and replies in the session's request order.

Every packet is a 4-byte big-endian length then that many bytes, bounded by jute.maxbuffer
(a bad length closes the connection; the session lives on). The first packet is a
ConnectRequest, or a four-letter word spelled by its length bytes. After the handshake each
request gets a slot in `pending`; a slot is written when it is complete and every slot before
it has been written. A read queued behind a write runs only when it reaches the head, so it
sees the session's earlier writes and the watch events they raised go out before its reply.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from core import native
from core.errors import ZKError
from core.interfaces import PeerInfo, Request, WatchEvent
from core.jute import JuteError
from core.ops.stats import ConnectionStats
from core.records import ConnectRequest, ConnectResponse, Id

if TYPE_CHECKING:
    from core.server import ZKServer

log = Logger()

_LEN = struct.Struct(">i")
_HDR = struct.Struct(">ii")
_REPLY = struct.Struct(">iiqi")  # frame length, xid, zxid, err
_EVENT = struct.Struct(">iiqiiii")  # length, xid -1, zxid, err 0, type, state, path length
_DECODE_ERRORS = (JuteError, struct.error, UnicodeError, ValueError)
_ZERO_PASSWD = bytes(16)

def no_delay(transport: Any) -> None:
    """Send small packets at once (TCP_NODELAY), as ZooKeeper does on client and quorum
    sockets: replies, PROPOSAL/COMMIT and ACKs must not wait for Nagle's algorithm."""
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        setter(True)


def write_now(transport: Any, frames: list[bytes]) -> None:
    """Write a batch of frames: straight to the socket when the transport holds nothing
    unsent (what does not fit goes through the transport), else through the transport. Spares
    a reply the reactor turn and the two epoll_ctl calls of Twisted's buffered write."""
    data = b"".join(frames)
    sock = getattr(transport, "socket", None)
    if sock is not None and transport.connected and not transport.disconnecting and \
            not getattr(transport, "_tempDataLen", 1) and transport.offset == len(transport.dataBuffer):
        try:
            sent = sock.send(data)
        except OSError:  # would block, or the connection broke: the transport finds out
            sent = 0
        data = data[sent:]
    if data:
        transport.write(data)


def py_split_frames(buf: bytes, limit: int) -> tuple[list[bytes], int, int | None]:
    """The whole frames at the start of `buf`, where the first incomplete one starts, and the
    length outside 0..limit that stopped the split (else None). `split_frames` is this, or the
    accelerator's equivalent."""
    frames: list[bytes] = []
    off, end = 0, len(buf)
    while end - off >= 4:
        n = _LEN.unpack_from(buf, off)[0]
        if n < 0 or n > limit:
            return frames, off, n
        start = off + 4
        if end - start < n:
            break
        off = start + n
        frames.append(buf[start:off])
    return frames, off, None


split_frames: Callable[[bytes, int], tuple[list[bytes], int, int | None]] = (
    py_split_frames if native.MODULE is None else native.MODULE.split_frames)


@native.fast_constructor
@dataclass(slots=True)
class OwedWrite(Request):
    """A client's write: the Request the consensus orders, and the reply its connection owes
    for it, in request order (`reply`: its bytes once the txn commits). The server finds it
    by (session id, cxid) when the txn commits."""

    conn: ServerConnection
    t: float  # when the request arrived (reactor seconds), for latency
    reply: bytes | None = None


# A read queued behind a write, run when it reaches the head: (arrival time, the function that
# makes its reply frame, its arguments). A plain tuple: no object or closure per queued read.
QueuedRead = tuple[float, Callable[..., bytes], tuple[Any, ...]]


def reply_frame(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    """A whole reply packet: length, ReplyHeader, body."""
    return _REPLY.pack(16 + len(body), xid, zxid, err) + body


class ServerConnection(Protocol):
    """A client's TCP connection. Holds the session binding and the connection's auth ids."""

    # the attributes the C accelerator reads by their slots (core/_native.c); the rest in __dict__
    __slots__ = ("server", "pending", "out", "replied_now", "replied_later", "read_only", "session_id", "auth_ids",
                 "received_at")

    server: ZKServer
    transport: Any  # an ITCPTransport; zope interfaces are opaque to type checkers

    def __init__(self, server: ZKServer) -> None:
        self.server = server
        self.session_id = 0
        self.auth_ids: tuple[Id, ...] = ()  # replaced, never changed: requests share it
        self._auth_keys: set[tuple[str | None, str | None]] = set()
        self.peer = PeerInfo("", 0)
        self.pending: deque[OwedWrite | QueuedRead] = deque()
        self.out: list[bytes] = []
        self.buf = bytearray()  # the start of a packet that straddles reads
        self.handshaken = False
        self.closing = False
        self.wants_read_only_byte = False
        self.client_read_only = False  # the client allows a read-only server
        self.read_only = False  # a session of this server in read-only mode
        self.timeout = 0
        self.sasl: Any = None
        self.packets_received = 0
        self.packets_sent = 0
        self.received_at = 0.0  # reactor time of the batch being read (core.ops.stats)
        self.replied_now = 0  # immediate replies not yet written (core.ops.stats)
        self.replied_later: list[float] = []  # arrival times of waited replies not yet written
        self.cstats = ConnectionStats(server.now_ms())

    # -- Twisted --------------------------------------------------------------------------

    def connectionMade(self) -> None:
        no_delay(self.transport)
        peer = self.transport.getPeer()
        host = getattr(peer, "host", "")
        self.peer = PeerInfo(host, getattr(peer, "port", 0))
        self.add_auth_ids([Id("ip", host)])
        if not self.server.connection_opened(self):
            self.closing = True
            self.transport.loseConnection()  # refused: closed at once, as ZooKeeper closes it

    def connectionLost(self, reason: Any = None) -> None:
        self.closing = True
        self.server.connection_closed(self)

    def dataReceived(self, data: bytes) -> None:
        limit = self.server.config.jute_maxbuffer
        server = self.server
        partial = self.buf
        if partial:
            partial += data
            n = _LEN.unpack_from(partial, 0)[0] if len(partial) >= 4 else -1
            if len(partial) < 4 or 0 <= n <= limit and len(partial) - 4 < n:
                server.stats.received(self, 0, len(data), b"")
                return  # the packet is still incomplete: copied once it is whole
            buf = bytes(partial)
            partial.clear()
        else:
            buf = data  # the common case: frames are sliced straight from what was read
        end = len(buf)
        self.received_at = server.reactor.seconds()
        if not self.handshaken and not self.packets_received and end >= 4:
            answer = server.four_letter(buf[:12], self)
            if answer is not None:
                self.transport.write(answer.encode())
                self.closing = True
                self.transport.loseConnection()
                return
        frames, off, bad = split_frames(buf, limit)
        count = 0
        why = ""  # a protocol error that closes the connection
        request = server.request
        for frame in frames:
            if self.closing:
                break
            count += 1
            try:
                if self.handshaken:
                    request(self, frame)
                else:
                    self.handshake(frame)
            except _DECODE_ERRORS as e:
                why = f"malformed packet: {e}"
                break
        else:
            if bad is not None and not self.closing:
                why = f"packet length {bad} outside 0..{limit}"
        self.packets_received += count
        if why:
            self.drop(why)
            return
        if off < end and not self.closing:
            partial += buf[off:]
        if self.handshaken:  # one touch for the whole batch: it all arrived now
            server.sessions.touch(self.session_id, int(self.received_at * 1000))
        server.stats.received(self, count, len(data), frames[count - 1] if count else b"")
        self.flush()

    def add_auth_ids(self, ids: list[Id]) -> None:
        """Add authenticated ids, each once, in the order granted (whoAmI shows them)."""
        for i in ids:
            key = (i.scheme, i.id)
            if key not in self._auth_keys:
                self._auth_keys.add(key)
                self.auth_ids = (*self.auth_ids, i)

    # -- output ---------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue a whole frame; written at the end of this batch of work."""
        self.out.append(frame)
        self.server.dirty.add(self)

    def flush(self) -> None:
        if self.out:
            if not self.closing or self.transport is not None:
                self.packets_sent += len(self.out)
                write_now(self.transport, self.out)
                self.server.stats.sent(self, self.out)
            self.out = []

    def drop(self, why: str) -> None:
        """Close this connection for a protocol error; one log line, the session lives on."""
        log.info("closing connection from {host}:{port} session 0x{sid:x}: {why}",
                 host=self.peer.host, port=self.peer.port, sid=self.session_id & (2**64 - 1), why=why)
        self.close()

    def close(self) -> None:
        """Write what is queued, then close."""
        self.flush()
        self.closing = True
        if self.transport is not None:
            self.transport.loseConnection()

    # -- the handshake --------------------------------------------------------------------

    def handshake(self, frame: bytes) -> None:
        req, off = ConnectRequest.decode(frame, 0)
        self.wants_read_only_byte = len(frame) > off
        self.client_read_only = self.wants_read_only_byte and frame[off] != 0  # ConnectRequest.readOnly
        self.server.connect(self, req)

    def connect_response(self, timeout: int, session_id: int, passwd: bytes, read_only: bool = False) -> None:
        """Answer the handshake (protocolVersion 0), with the readOnly byte if the client sent one
        (true from a read-only server)."""
        body = ConnectResponse.encode(ConnectResponse(0, timeout, session_id, passwd))
        if self.wants_read_only_byte:
            body += b"\x01" if read_only else b"\x00"
        self.send(_LEN.pack(len(body)) + body)

    def refuse_session(self) -> None:
        """The expired/unknown-session answer: zeros and 16 zero bytes of password, then close."""
        self.connect_response(0, 0, _ZERO_PASSWD)
        self.close()

    def bind(self, session_id: int, timeout: int) -> None:
        self.session_id = session_id
        self.timeout = timeout
        self.handshaken = True

    # -- replies in order -----------------------------------------------------------------

    def reply_now_or_queue(self, read: Callable[..., bytes], *args: Any) -> None:
        """A read: its reply frame `read(*args)` now if nothing is owed before it, else queued."""
        if self.pending:
            self.pending.append((self.received_at, read, args))
        else:
            self.send(read(*args))
            self.replied_now += 1

    def complete(self, write: OwedWrite, reply: bytes) -> None:
        """Fill a write's reply; if it is the oldest owed, send it and every complete reply
        behind it, running the reads queued behind it, up to the next write still waiting."""
        write.reply = reply
        pending = self.pending
        if not pending or pending[0] is not write:
            return  # replies owed before it go first
        out = self.out
        later = self.replied_later
        while pending:
            head = pending[0]
            if isinstance(head, OwedWrite):
                if head.reply is None:
                    break
                t, ready = head.t, head.reply
            else:
                t, read, args = head
                ready = read(*args)
            pending.popleft()
            out.append(ready)
            if t:
                later.append(t)
        self.server.dirty.add(self)

    def send_event(self, event: WatchEvent) -> None:
        """A watch notification (xid -1; the txn's zxid, -1 for setWatches events)."""
        path = event.path.encode("utf-8", "surrogatepass")
        self.send(_EVENT.pack(28 + len(path), -1, event.zxid, 0, event.type, event.state, len(path)) + path)

    def error_reply(self, xid: int, e: ZKError) -> bytes:
        return reply_frame(xid, self.server.tree.last_zxid, e.code)


class ClientFactory(Factory):
    """Builds a ServerConnection per accepted client; holds the server."""

    def __init__(self, server: ZKServer) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> ServerConnection:
        return ServerConnection(self.server)


