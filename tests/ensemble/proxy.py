"""A small fault-injecting TCP relay for ensemble tests, and a mesh of them between members.

`Proxy(listen_host, target)` relays every accepted connection to `target` (an asyncio loop in a
daemon thread; `start()`/`stop()`). Its mode is set from the test thread, at any moment:

- ``"pass"``: relay both ways;
- ``"drop"``: close every relayed connection now (both sides see EOF) and close new ones as soon
  as they are accepted (a refused link);
- ``"blackhole"``: stop reading both sides of every connection, and of new ones (which never
  reach the target until the mode changes): nothing goes through, nobody sees an EOF; the
  kernel buffers fill as TCP's would behind a partition. Back to ``"pass"``, the held bytes flow
  on, in order (TCP retransmission after the partition heals) unless `heal(reset=True)`.

`strip_initial_message=True` (election ports) rewrites the caller's election InitialMessage
(quorum.md 1.1) into the old bare-sid form: the accepting member then calls back the address in
its own config (this mesh's proxy) rather than the caller's real address carried in the message,
so a cut link stays cut in both directions.

`ProxyMesh(ensemble)` puts a quorum-port and an election-port proxy on every ordered pair of
members (i -> j) and rewrites each member's server lines so that member i reaches member j
only through them (its own line stays its real address). `cut(a, b)` / `heal(a, b)` act on
both directions between two members; `isolate(m)` cuts m from everyone.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable, Iterable
from typing import Any

MODES = ("pass", "drop", "blackhole")
_LONG = struct.Struct(">q")
_INITIAL_HEAD = struct.Struct(">qqi")


class _InitialMessageStripper:
    """Turns the first InitialMessage of a stream into a bare sid; passes the rest."""

    def __init__(self) -> None:
        self.buf = b""
        self.done = False

    def __call__(self, data: bytes) -> bytes:
        if self.done:
            return data
        self.buf += data
        if len(self.buf) < 8:
            return b""
        (version,) = _LONG.unpack_from(self.buf, 0)
        if version >= 0:  # already a bare sid
            self.done = True
            return self.buf
        if len(self.buf) < _INITIAL_HEAD.size:
            return b""
        _, sid, n = _INITIAL_HEAD.unpack_from(self.buf, 0)
        if n < 0 or n > 4096:  # not an InitialMessage we know: pass it untouched
            self.done = True
            return self.buf
        if len(self.buf) < _INITIAL_HEAD.size + n:
            return b""
        rest = self.buf[_INITIAL_HEAD.size + n:]
        self.done = True
        self.buf = b""
        return _LONG.pack(sid) + rest


class _Side(asyncio.Protocol):
    """One socket of a relayed pair."""

    def __init__(self, link: _Link, downstream: bool) -> None:
        self.link = link
        self.downstream = downstream
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.downstream:
            self.link.accepted(self)
        else:
            self.link.upstream_made(self)

    def data_received(self, data: bytes) -> None:
        self.link.data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.lost(self)


class _Link:
    """An accepted connection and its relay to the target."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.down: _Side | None = None
        self.up: _Side | None = None
        self.pending = b""  # downstream bytes before the upstream connected
        self.closed = False
        self.filter: Callable[[bytes], bytes] | None = (
            _InitialMessageStripper() if proxy.strip_initial_message else None)

    def accepted(self, side: _Side) -> None:
        self.down = side
        p = self.proxy
        if p.mode == "drop":
            self.close()
            return
        p.links.add(self)
        if p.mode == "blackhole":
            self.pause()
        else:
            self.connect_upstream()

    def connect_upstream(self) -> None:
        if self.up is not None or self.closed:
            return
        p = self.proxy
        self.up = _Side(self, False)  # placeholder until connected
        host, port = p.target

        async def go() -> None:
            try:
                await p.loop.create_connection(lambda: self.up, host, port)  # type: ignore[arg-type,return-value]
            except OSError:
                self.close()
        p.loop.create_task(go())

    def upstream_made(self, side: _Side) -> None:
        if self.closed:
            assert side.transport is not None
            side.transport.close()
            return
        if self.pending and side.transport is not None:
            side.transport.write(self.pending)
            self.pending = b""
        if self.proxy.mode == "blackhole":
            self.pause()

    def data(self, side: _Side, data: bytes) -> None:
        if self.closed:
            return
        if side is self.down:
            if self.filter is not None:
                data = self.filter(data)
                if not data:
                    return
            up = self.up
            if up is None or up.transport is None:
                self.pending += data
            else:
                up.transport.write(data)
        else:
            down = self.down
            if down is not None and down.transport is not None:
                down.transport.write(data)

    def pause(self) -> None:
        for side in (self.down, self.up):
            if side is not None and side.transport is not None:
                try:
                    side.transport.pause_reading()
                except (RuntimeError, AttributeError):
                    pass

    def resume(self) -> None:
        self.connect_upstream()
        for side in (self.down, self.up):
            if side is not None and side.transport is not None:
                try:
                    side.transport.resume_reading()
                except (RuntimeError, AttributeError):
                    pass

    def lost(self, side: _Side) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.links.discard(self)
        for side in (self.down, self.up):
            if side is not None and side.transport is not None:
                side.transport.close()


class Proxy:
    """A relay from (listen_host, port) to `target`; see the module doc."""

    def __init__(self, listen_host: str, target: tuple[str, int], strip_initial_message: bool = False,
                 name: str = "") -> None:
        self.listen_host = listen_host
        self.port = 0
        self.target = target
        self.strip_initial_message = strip_initial_message
        self.name = name
        self.mode = "pass"
        self.links: set[_Link] = set()
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.server: asyncio.AbstractServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_host, self.port

    def __repr__(self) -> str:
        return f"<proxy {self.name} {self.listen_host}:{self.port} -> {self.target[0]}:{self.target[1]} {self.mode}>"

    def start(self) -> Proxy:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def serve() -> None:
                self.server = await self.loop.create_server(
                    lambda: _Side(_Link(self), True), self.listen_host, 0)
                self.port = self.server.sockets[0].getsockname()[1]
                ready.set()
            self.loop.run_until_complete(serve())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name=f"proxy-{self.name}", daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self} did not start")
        return self

    def _call(self, fn: Callable[[], None], timeout: float = 5.0) -> None:
        done = threading.Event()

        def wrapped() -> None:
            try:
                fn()
            finally:
                done.set()
        self.loop.call_soon_threadsafe(wrapped)
        if not done.wait(timeout):
            raise RuntimeError(f"{self} is not answering")

    def set_mode(self, mode: str, reset: bool = False) -> None:
        """Switch the mode (see the module doc); `reset` closes every current connection too."""
        assert mode in MODES, mode

        def apply() -> None:
            self.mode = mode
            links = list(self.links)
            if mode == "drop" or reset:
                for link in links:
                    link.close()
            elif mode == "blackhole":
                for link in links:
                    link.pause()
            else:
                for link in links:
                    link.resume()
        self._call(apply)

    def stop(self) -> None:
        if self.thread is None:
            return

        def shut() -> None:
            for link in list(self.links):
                link.close()
            if self.server is not None:
                self.server.close()
            self.loop.stop()
        try:
            self.loop.call_soon_threadsafe(shut)
        except RuntimeError:
            pass
        self.thread.join(5)
        self.thread = None


class ProxyMesh:
    """Quorum and election proxies on every ordered pair of members; see the module doc."""

    def __init__(self, ensemble: Any) -> None:
        self.ensemble = ensemble
        self.quorum: dict[tuple[int, int], Proxy] = {}
        self.election: dict[tuple[int, int], Proxy] = {}

    def start(self) -> ProxyMesh:
        e = self.ensemble
        for a in e.members:
            for b in e.members:
                if a is b:
                    continue
                # listen on the caller's own address: each member's links are its own proxies
                self.quorum[a.sid, b.sid] = Proxy(a.host, (b.host, b.quorum_port), name=f"q{a.sid}->{b.sid}").start()
                self.election[a.sid, b.sid] = Proxy(a.host, (b.host, b.election_port), True,
                                                    name=f"e{a.sid}->{b.sid}").start()
        for m in e.members:
            m.config = self._config_for(m)  # shadows Member.config for this member
        return self

    def _config_for(self, member: Any) -> Callable[[], str]:
        original = member.config  # bound: whatever made it so far

        def config() -> str:
            lines = []
            for line in original().splitlines():
                if line.startswith("server."):
                    sid = int(line.split("=")[0].split(".")[1])
                    if sid != member.sid:
                        q = self.quorum[member.sid, sid]
                        el = self.election[member.sid, sid]
                        role = line.split("=", 1)[1].split(":")[3:]
                        line = f"server.{sid}={member.host}:{q.port}:{el.port}" + "".join(f":{r}" for r in role)
                lines.append(line)
            return "\n".join(lines) + "\n"
        return config

    def proxies(self, a: int, b: int) -> list[Proxy]:
        """Both directions, both ports, between members a and b."""
        return [d[k] for d in (self.quorum, self.election) for k in ((a, b), (b, a))]

    def set_link(self, a: int, b: int, mode: str) -> None:
        for p in self.proxies(a, b):
            p.set_mode(mode)

    def cut(self, a: int, b: int, mode: str = "drop") -> None:
        self.set_link(a, b, mode)

    def heal(self, a: int, b: int) -> None:
        self.set_link(a, b, "pass")

    def isolate(self, sid: int, mode: str = "drop") -> None:
        for m in self.ensemble.members:
            if m.sid != sid:
                self.cut(sid, m.sid, mode)

    def heal_all(self) -> None:
        for p in self.all():
            p.set_mode("pass")

    def all(self) -> Iterable[Proxy]:
        return [*self.quorum.values(), *self.election.values()]

    def stop(self) -> None:
        for p in self.all():
            p.stop()
