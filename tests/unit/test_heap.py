"""core.heap.HeapSettler: when a pass takes the frozen objects back (full), and what it finds."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from core.heap import YOUNG_THRESHOLD, HeapSettler


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # leave the test process's collector as it was
    gc.set_threshold(*threshold)


def test_settle_raises_the_young_threshold_only() -> None:
    gc.set_threshold(700, 9, 8)
    HeapSettler().settle(0.0)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 9, 8)


def test_first_pass_is_full_then_only_young_objects_until_the_interval() -> None:
    heap = HeapSettler(full_every=600.0)
    heap.settle(1000.0)
    assert heap.full_passes == 1 and gc.get_freeze_count() > 0
    heap.settle(1001.0)
    assert heap.full_passes == 1
    heap.settle(1599.0)
    assert heap.full_passes == 1
    heap.settle(1600.0)
    assert heap.full_passes == 2


def test_a_pass_is_full_once_the_frozen_objects_have_doubled() -> None:
    heap = HeapSettler(full_every=600.0)
    heap.settle(0.0)
    keep = [_Cycle() for _ in range(gc.get_freeze_count() + 1)]  # more than doubles them
    heap.settle(1.0)
    assert heap.full_passes == 1  # decided before this pass froze them
    heap.settle(2.0)
    assert heap.full_passes == 2
    del keep


def test_a_young_pass_leaves_frozen_cycles_and_a_full_pass_finds_them() -> None:
    heap = HeapSettler(full_every=600.0)
    cycle = _Cycle()
    ref = weakref.ref(cycle)
    heap.settle(0.0)  # full: `cycle` is alive and frozen
    del cycle
    heap.settle(1.0)
    assert ref() is not None  # frozen garbage stays until the next full pass
    heap.settle(601.0)
    assert ref() is None


def test_start_freezes_without_collecting_and_counts_as_a_full_pass() -> None:
    gc.set_threshold(700, 9, 8)
    gc.disable()  # no automatic pass may find the garbage before the checks
    try:
        garbage = _Cycle()
        ref = weakref.ref(garbage)
        del garbage  # unreachable, but only a collection would find it
        heap = HeapSettler(full_every=600.0)
        heap.start(0.0)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 9, 8)
        assert ref() is not None and gc.get_freeze_count() > 0
        heap.settle(1.0)
        assert heap.full_passes == 1 and ref() is not None  # young: the start counted as full
        heap.settle(600.0)
        assert heap.full_passes == 2 and ref() is None
    finally:
        gc.enable()


def test_a_pass_does_not_walk_the_frozen_objects_to_count_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """gc.get_freeze_count() walks every frozen object (~8 ms for a server's heap, before each
    snapshot's fork): a pass counts what it freezes instead."""
    heap = HeapSettler(full_every=600.0)
    heap.start(0.0)

    def walk() -> int:
        raise AssertionError("gc.get_freeze_count() walks every frozen object")

    monkeypatch.setattr(gc, "get_freeze_count", walk)
    keep = [_Cycle() for _ in range(heap.frozen + 1)]
    heap.settle(1.0)  # young, counts `keep` as frozen
    heap.settle(2.0)  # full: as many frozen since the last full pass as it left
    assert heap.full_passes == 2
    del keep
