"""The one thread that talks to the store: blocking calls off the reactor, results as Deferreds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class StorageThread:
    """Runs store calls one at a time, in order, on a dedicated thread."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="zkserver-storage")

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()

    def run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """Call fn(*args) on the storage thread; the Deferred fires on the reactor."""
        return deferToThreadPool(self._reactor, self._pool, fn, *args)
