"""Periodic snapshots and purging of old ones (SyncRequestProcessor + DatadirCleanupManager).

A snapshot is taken after a randomised number of logged txns between snapCount/2 and
snapCount, as ZooKeeper does so that members of an ensemble do not all snapshot at once.

Where the server runs off a real reactor (its store calls on the storage thread) and the
platform can fork, a forked child serializes the tree as it was at the fork (copy-on-write)
and writes it to a pipe that a thread reads: the reactor spends no CPU on it, and a big tree
costs the writes nothing (serializing 300,000 znodes is about 0.8 s of CPU). Otherwise the
tree is serialized in slices on the reactor while writes go on (a fuzzy snapshot: its zxid is
the last applied txn when it began, and replaying the log after that zxid makes it whole).
Either way the store then saves it: on the storage thread, or beside it when the store says
its saves may overlap the log's appends (`Store.snapshots_aside`), so that a big snapshot does
not hold the writes back.
"""

from __future__ import annotations

import gc
import os
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.task import Cooperator, LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from core.snapshot import serialize
from core.tree import DataTree

if TYPE_CHECKING:
    from core.server import ZKServer

log = Logger()

HOUR = 3600.0
_READ = 1 << 20


def serialize_in_child(tree: DataTree, sessions: Mapping[int, int], zxid: int) -> tuple[int, int]:
    """Fork a child that writes `serialize(tree, sessions, zxid)` to a pipe and exits; return
    (its pid, the pipe's read end). The child touches nothing but the tree and the pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no reactor, no threads, no locks of the parent's
        status = 1
        try:
            gc.disable()
            os.close(read_end)
            with open(write_end, "wb") as out:
                for chunk in serialize(tree, sessions, zxid):
                    out.write(chunk)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def read_child(pid: int, read_end: int) -> list[bytes]:
    """Blocking: what the child of `serialize_in_child` wrote, once it exited with status 0
    (else OSError)."""
    chunks = []
    with open(read_end, "rb") as pipe:
        while chunk := pipe.read(_READ):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError(f"the snapshot child {pid} failed (wait status {status})")
    return chunks


class Snapshotter:
    """Counts logged txns and snapshots the server's tree when the threshold is passed."""

    # the attributes the C accelerator reads by their slots (core/_native.c); the rest in __dict__
    __slots__ = ("logged", "threshold", "__dict__", "__weakref__")

    def __init__(self, server: ZKServer, rng: random.Random | None = None) -> None:
        self.server = server
        self.snap_count = server.config.snap_count
        self.rng = rng or random.Random()
        self.logged = 0
        self.threshold = self._next_threshold()
        self.running = False
        self._on_done: list[Deferred[Any]] = []  # final()'s waits for the snapshot being taken
        self.cooperator = Cooperator(scheduler=lambda work: server.reactor.callLater(0, work))
        self.purger = LoopingCall(self.purge)
        self.purger.clock = server.reactor

    def _next_threshold(self) -> int:
        half = max(self.snap_count // 2, 1)
        return half + self.rng.randrange(half)

    def start(self) -> None:
        """Start the autopurge timer when autopurge.purgeInterval (hours) is set."""
        interval = self.server.config.autopurge_purge_interval
        if interval > 0:
            self.purger.start(interval * HOUR, now=False)

    def stop(self) -> None:
        if self.purger.running:
            self.purger.stop()
        self.cooperator.stop()

    def txn_logged(self) -> None:
        """Called once per committed txn. When the threshold is passed: a snapshot, or, while
        the last one is still being taken, none (ZooKeeper's SyncRequestProcessor: "Too busy to
        snap, skipping"); the count starts afresh either way, so a tree that takes longer to
        snapshot than its writes take to pass the threshold is not snapshotted back to back."""
        self.logged += 1
        if self.logged < self.threshold:
            return
        if self.running:
            log.warn("Too busy to snap, skipping")
            self.logged = 0
            self.threshold = self._next_threshold()
            return
        self.take()

    def take(self) -> Deferred[Any]:
        """Serialize the tree in slices, then save it; fires when the snapshot is durable."""
        server = self.server
        self.running = True
        self.logged = 0
        self.threshold = self._next_threshold()
        zxid = server.tree.last_zxid
        sessions = {sid: s.timeout for sid, s in server.sessions.sessions.items()}
        chunks: list[bytes] = []
        d: Deferred[Any]
        in_child = hasattr(os, "fork") and server.storage.threaded and IReactorThreads.providedBy(server.reactor)
        if in_child:
            reactor = server.reactor
            server.heap.settle(reactor.seconds())  # the collector's passes then leave the child's pages alone
            pid, read_end = serialize_in_child(server.tree, sessions, zxid)
            d = deferToThreadPool(reactor, reactor.getThreadPool(), read_child, pid, read_end)
            d.addCallback(chunks.extend)
        else:
            def slices() -> Any:
                for chunk in serialize(server.tree, sessions, zxid):
                    chunks.append(chunk)
                    yield None

            d = self.cooperator.cooperate(slices()).whenDone()
        storage = server.storage
        save = storage.run_aside if getattr(server.store, "snapshots_aside", False) else storage.run
        d.addCallback(lambda _: save(server.store.save_snapshot, zxid, chunks))
        d.addCallback(lambda _: log.info("snapshot 0x{zxid:x} saved ({size} bytes)", zxid=zxid,
                                         size=sum(len(c) for c in chunks)))
        d.addErrback(lambda f: log.error("snapshot 0x{zxid:x} failed: {err}", zxid=zxid, err=f.getErrorMessage()))
        d.addBoth(self._done)
        return d

    def final(self) -> Deferred[Any] | None:
        """When the server stops: let a snapshot being taken finish, then snapshot the tree if
        txns were logged since, so that the next start loads it instead of replaying the log.
        The Deferred (None when there is nothing to do) fires once it is saved."""
        if self.running:
            finished: Deferred[Any] = Deferred()
            self._on_done.append(finished)
            finished.addCallback(lambda _: self.final())
            return finished
        if not self.logged:
            return None
        return self.take()

    def _done(self, result: Any) -> Any:
        self.running = False
        waiting, self._on_done = self._on_done, []
        for d in waiting:
            d.callback(None)
        return result

    def purge(self) -> Deferred[None]:
        """Keep autopurge.snapRetainCount snapshots and the log they need."""
        retain = self.server.config.autopurge_snap_retain_count
        return self.server.storage.run(self.server.store.purge, retain)
