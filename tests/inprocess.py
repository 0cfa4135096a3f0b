"""A whole server in-process on a twisted Clock, and clients on StringTransports: no sleeping,
no sockets. The store, consensus, sessions, watches and connections are the real ones; only
the storage thread runs its calls inline (a Clock cannot drive threads)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from core.config import parse
from core.connection import ServerConnection
from core.pluginmanager import build_plugin_manager
from core.records import ConnectRequest, ConnectResponse, ReplyHeader, RequestHeader
from core.server import ZKServer
from core.storage_thread import StorageThread

_LEN = struct.Struct(">i")


def start_server(data_dir: Path, tick_ms: int, plugins: Iterable[Any] = (),
                 extra_config: str = "") -> tuple[ZKServer, Clock]:
    """A started standalone server (memory store) on a Clock, with `plugins` registered and
    `extra_config` (zoo.cfg lines) added to its configuration."""
    clock = Clock()
    clock.advance(1_000_000)  # a clock far from 0, like a real one
    cfg = parse(f"tickTime={tick_ms}\ndataDir={data_dir}\nclientPort=2999\nstorage=memory\n{extra_config}")
    server = ZKServer(cfg, reactor=clock, plugin_manager=build_plugin_manager(plugins))
    server.storage = StorageThread(clock, threaded=False)
    started(server, clock)
    return server, clock


def started(server: ZKServer, clock: Clock) -> None:
    """Start `server` on `clock` and turn the clock until start-up is done (the start-up
    snapshot is serialized in slices, one per reactor turn)."""
    d = server.start()
    for _ in range(100):
        if d.called:
            break
        clock.advance(0)
    assert d.called, "start-up waits for something a Clock cannot drive"


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




class HeldStorage(StorageThread):
    """A storage thread, as far as its callers can tell, whose calls complete only when the
    test releases them, in order; `on_call(args)` sees each call's arguments as it is made."""

    def __init__(self, on_call: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__(Clock(), threaded=False)
        self.on_call = on_call
        self.held: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    @property
    def threaded(self) -> bool:
        return True

    def run(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        self.on_call(args)
        d: Deferred[Any] = Deferred()
        self.held.append((fn, args, d))
        return d

    run_small = run

    def release(self) -> tuple[Any, ...]:
        """Complete the oldest held call; its arguments."""
        fn, args, d = self.held.pop(0)
        d.callback(fn(*args))
        return args
