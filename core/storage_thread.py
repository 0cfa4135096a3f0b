"""The one thread that talks to the store: blocking calls off the reactor, results as Deferreds.

Store calls never overlap (the Store contract): they run one at a time, in order, on a
dedicated thread, or, for `run_small`, on the reactor itself when the thread is idle, which
spares a small call two thread hand-offs (the whole latency of a lone write on an idle server).
The one exception, `run_aside`, is a second thread for a store's snapshot saves when the store
says they may overlap its other calls (`Store.snapshots_aside`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

# How long a thread waiting for the GIL lets the running one go on before asking it to let go
# (CPython's default: 5 ms). The storage thread needs the GIL a few times per batch, briefly
# (around the store's call, which releases it while writing and syncing); at 5 ms it waited for
# the reactor to finish its whole turn each time, and the reactor then sat idle waiting for the
# batch: ~15% of its time under pipelined writes. At 0.2 ms the append overlaps the reactor's work.
SWITCH_INTERVAL = 0.0002


class StorageThread:
    """Runs store calls one at a time, in order, off the reactor."""

    def __init__(self, reactor: Any, threaded: bool = True) -> None:
        """`threaded=False` runs every call inline: for a reactor that is a test's Clock, or a
        benchmark of the reactor's own work."""
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="zkserver-storage") if threaded else None
        self._aside = ThreadPool(minthreads=1, maxthreads=1, name="zkserver-snapshots") if threaded else None
        self._in_flight = 0

    @property
    def threaded(self) -> bool:
        """Whether calls run off the reactor (False: inline, for a test's Clock)."""
        return self._pool is not None

    def start(self) -> None:
        """Start the threads, and shorten the GIL's switch interval (`SWITCH_INTERVAL`, for
        the whole process) so that they get it promptly."""
        if self._pool is not None:
            sys.setswitchinterval(SWITCH_INTERVAL)
        for pool in (self._pool, self._aside):
            if pool is not None:
                pool.start()

    def stop(self) -> None:
        for pool in (self._pool, self._aside):
            if pool is not None:
                pool.stop()

    def run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """Call fn(*args) on the storage thread; the Deferred fires on the reactor."""
        if self._pool is None:
            return maybeDeferred(fn, *args)
        self._in_flight += 1
        d: Deferred[T] = deferToThreadPool(self._reactor, self._pool, fn, *args)
        d.addBoth(self._done)
        return d

    def run_aside(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """Call fn(*args) on a second thread, beside the storage thread's calls: only for what
        a store declares safe to run so (`Store.snapshots_aside`)."""
        if self._aside is None:
            return maybeDeferred(fn, *args)
        return deferToThreadPool(self._reactor, self._aside, fn, *args)

    def run_small(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """Like `run`, but a call made while the thread is idle runs right here on the reactor
        (for calls that take a fraction of a millisecond, such as appending one txn)."""
        if self._in_flight:
            return self.run(fn, *args)
        return maybeDeferred(fn, *args)

    def _done(self, result: Any) -> Any:
        self._in_flight -= 1
        return result
