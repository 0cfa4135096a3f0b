"""Standalone consensus: this member alone makes txns, logs them with group commit, applies them.

Writes arriving while the store is busy wait and go together in the next append (one sync for
the batch); a lone write (one txn, and no other request since the last write) is appended on
the reactor when the storage thread is idle. A
reply is sent only after its txn is durable. The tick expires sessions; the
container check deletes empty containers and expired TTL nodes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from core import containers
from core.config import Config
from core.interfaces import Request, Store
from core.opcodes import OpCode
from core.prep import Prep
from core.records import PathRequest
from core.txn import Txn, encode_txn

log = Logger()

DEFAULT_CONTAINER_CHECK_MS = 60000
_SYNC = OpCode.sync  # compared with per request, bound once (see core.opcodes)


class StandaloneConsensus:
    """The Consensus of a single member (ZooKeeper's standalone mode)."""

    role = "standalone"

    def __init__(self, config: Config, store: Store, server: Any) -> None:
        self.config = config
        self.store = store
        self.server = server
        self.prep: Prep | None = None
        self.zxid = 0
        self.queue: list[Txn | Request] = []
        self.writing = False
        self.received_at_last_write = 0
        self.broken = False
        self.ticker = LoopingCall(self.tick)
        self.ticker.clock = server.reactor
        self.container_check = LoopingCall(self.check_containers)
        self.container_check.clock = server.reactor

    def start(self) -> None:
        s = self.server
        self.prep = Prep(s.tree, s.access, s.sessions, self.config.extended_types_enabled, s.now_ms)
        self.zxid = s.tree.last_zxid
        self.ticker.start(self.config.tick_time / 1000.0, now=False)
        interval = int(self.config.raw.get("znode.container.checkIntervalMs", DEFAULT_CONTAINER_CHECK_MS))
        self.container_check.start(interval / 1000.0, now=False)

    def stop(self) -> None:
        for loop in (self.ticker, self.container_check):
            if loop.running:
                loop.stop()

    def is_serving(self) -> bool:
        return not self.broken

    def submit(self, request: Request) -> None:
        assert self.prep is not None
        if self.broken:  # the log cannot be written: answered with an error, never queued
            self.server.stop_serving()
            return
        if request.type == _SYNC:
            self.queue.append(request)
        else:
            self.zxid += 1
            self.queue.append(self.prep.prep(request, self.zxid))
        if not self.writing:
            self.writing = True
            self.server.reactor.callLater(0, self.write)

    def write(self, inline: bool = True) -> None:
        """Append everything queued in one batch; commit it when durable. `inline=False`: never
        on the reactor itself (the caller is applying the batch before this one)."""
        batch, self.queue = self.queue, []
        payloads = [(t.zxid, encode_txn(t)) for t in batch if type(t) is Txn]
        storage = self.server.storage
        received = self.server.stats.packets_received
        # nothing but this write arrived since the last one: the server has nothing else to do
        # while it syncs, so spare the lone write the thread hand-offs
        alone = len(payloads) == 1 and 0 <= received - self.received_at_last_write <= 1
        self.received_at_last_write = received
        if not payloads:
            d: Deferred[None] = succeed(None)
        elif alone and inline:
            d = storage.run_small(self.store.append, payloads)
        else:
            d = storage.run(self.store.append, payloads)
        d.addCallbacks(lambda _: self.committed(batch), self.failed)

    def committed(self, batch: list[Txn | Request]) -> None:
        """Apply a durable batch and answer it. With a storage thread, the batch queued behind
        it goes to the log first, so that its append overlaps this batch's apply. Otherwise (no
        storage thread: a store call completes at once; or a batch of syncs alone, which
        completes at once) the next batch is written after this one is applied."""
        assert self.prep is not None
        overlap = self.server.storage.threaded and any(type(item) is Txn for item in self.queue)
        if overlap:
            self.write(inline=False)
        server = self.server
        last = 0
        for item in batch:
            if type(item) is Txn:
                server.commit(item)
                last = item.zxid
            else:
                server.synced(item)
        if last:
            self.prep.applied(last)  # nothing is prepped while the batch is applied
        server.flush()
        if not overlap:
            if self.queue:
                self.write()
            else:
                self.writing = False

    def failed(self, failure: Failure) -> None:
        """The store could not make a batch durable (its append raised): stop serving clients,
        as ZooKeeper stops when its log cannot be written, with one log line.

        None of the batch is applied or acknowledged: every write of it, and every one queued
        behind it, is answered with SYSTEMERROR (``ZKServer.stop_serving``), then every client
        connection is closed and new ones are refused (clients move to another member, or see
        a connection loss). The process stays up for the operator: four-letter words, the
        AdminServer and metrics still answer (``srvr``: "not currently serving"). The tree
        holds only durable txns, so a restart on a healthy store loses nothing acknowledged.
        """
        log.critical("cannot make txns 0x{first:x}-0x{last:x} durable, no longer serving "
                     "clients (writes answered SYSTEMERROR): {err}",
                     first=self.server.tree.last_zxid + 1, last=self.zxid,
                     err=failure.getErrorMessage())
        self.broken = True
        self.queue = []
        self.stop()
        self.server.stop_serving()

    def tick(self) -> None:
        """Expire the sessions whose tick bucket has passed."""
        for session in self.server.sessions.expired(self.server.now_ms()):
            log.info("expiring session 0x{sid:x}, timeout {t} ms", sid=session.session_id & (2**64 - 1), t=session.timeout)
            self.submit(Request(session.session_id, 0, OpCode.closeSession, None, b"", []))

    def check_containers(self) -> None:
        for path in containers.candidates(self.server.tree, self.server.now_ms()):
            self.submit(Request(0, 0, OpCode.deleteContainer, PathRequest(path), b"", []))
