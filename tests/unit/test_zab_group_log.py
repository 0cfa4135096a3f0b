"""The ZAB plugin's group commit (GroupLog): a reactor turn's txns go to the store in one
append on the storage thread; a lone txn is appended on the reactor when the thread is idle,
after the packets queued this turn have been sent."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from twisted.internet.task import Clock

from core.storage_thread import StorageThread
from plugins.consensus_zab.common import GroupLog
from plugins.storage_memory.store import MemoryStore
from tests.inprocess import HeldStorage

pytestmark = pytest.mark.timeout(30)


class RecordingStorage(StorageThread):
    """Runs every store call inline (a Clock has no threads) and records which way it was asked."""

    def __init__(self, events: list[str]) -> None:
        super().__init__(Clock(), threaded=False)
        self.events = events

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.events.append(f"thread {len(args[0])}")
        return super().run(fn, *args)

    def run_small(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.events.append(f"reactor {len(args[0])}")
        return super().run_small(fn, *args)


def _group_log() -> tuple[GroupLog, Clock, MemoryStore, list[str]]:
    events: list[str] = []
    clock = Clock()
    store = MemoryStore()
    store.open()
    log = GroupLog(clock, RecordingStorage(events), store, lambda f: events.append("failed"),
                   lambda: events.append("flush"))
    return log, clock, store, events


def test_a_lone_txn_is_appended_on_the_reactor_after_the_queued_packets_leave() -> None:
    log, clock, store, events = _group_log()
    durable: list[int] = []
    log.append(1, b"one", durable.append)
    assert events == [] and durable == []  # the rest of the turn is gathered first
    clock.advance(0)
    assert events == ["flush", "reactor 1"]
    assert durable == [1] and store.last_zxid() == 1


def test_a_turn_of_txns_goes_to_the_storage_thread_in_one_append() -> None:
    log, clock, store, events = _group_log()
    durable: list[int] = []
    for zxid in (1, 2, 3):
        log.append(zxid, b"txn", durable.append)
    clock.advance(0)
    assert events == ["thread 3"]  # no flush: the turn's packets leave at its end, as ever
    assert durable == [1, 2, 3] and store.last_zxid() == 3


def test_with_a_storage_thread_the_next_batch_is_handed_over_before_the_last_ones_callbacks_run() -> None:
    events: list[str] = []
    clock = Clock()
    store = MemoryStore()
    store.open()
    storage = HeldStorage(lambda args: events.append(f"thread {[z for z, _ in args[0]]}"))
    log = GroupLog(clock, storage, store, lambda f: events.append("failed"), lambda: events.append("flush"))

    def durable(zxid: int) -> None:
        events.append(f"durable {zxid}")

    for zxid in (1, 2):
        log.append(zxid, b"txn", durable)
    clock.advance(0)
    log.append(3, b"txn", durable)  # while 1 and 2 are being written
    clock.advance(0)
    assert events == ["thread [1, 2]"]
    storage.release()
    assert events == ["thread [1, 2]", "thread [3]", "durable 1", "durable 2"]
    storage.release()
    assert events[-1] == "durable 3" and store.last_zxid() == 3
    log.append(4, b"txn", durable)  # idle again: a lone txn as before
    clock.advance(0)
    assert events[-2:] == ["flush", "thread [4]"]
