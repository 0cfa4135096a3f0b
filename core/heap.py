"""Keeping CPython's cyclic garbage collector off what lives long.

The collector's full passes scan every tracked object. A server's heap is mostly the tree and
what start-up built, which live on; rescanning them again and again while requests churn cost
about 5 µs a write under load (measured with gc.disable beside the default). So what is alive
at start-up and before each snapshot fork is frozen (moved out of the collector's passes).

Taking the frozen objects back for a full pass finds the garbage cycles among them (a closed
connection frozen while it was open), but scans the whole heap: about 60 ms for 300,000 znodes,
on the reactor (with the C accelerator, znodes are not tracked at all: core.tree.Node). It is
done when as many objects have been frozen since the last full pass as it left alive (so its
cost per object stays constant as the tree grows; the count is kept as passes freeze them,
since gc.get_freeze_count() walks them all) or when `full_every` seconds have passed (so what
dies among them is found within that time); otherwise only the young objects are collected and
frozen, which costs next to nothing.

The young generation is collected every YOUNG_THRESHOLD allocations instead of CPython's 700:
with hundreds of requests in flight, each young collection rescanned their live objects (a
request, its txn, its change record, its reply slot): about 4% of the server's CPU under write
load (perf), under 0.1% at 50,000, where most of what a collection finds has died before it.
"""

from __future__ import annotations

import gc

FULL_EVERY = 600.0
YOUNG_THRESHOLD = 50_000


class HeapSettler:
    """Collects and freezes the heap; see the module doc for when a pass is full."""

    def __init__(self, full_every: float = FULL_EVERY) -> None:
        self.full_every = full_every
        self.last_full: float | None = None
        # objects frozen since the last full pass, dead or alive, counted as each pass freezes
        # them: gc.get_freeze_count() walks every frozen object (~8 ms for a server's heap)
        self.frozen = 0
        self.frozen_after_full = 0
        self.full_passes = 0

    def start(self, now: float) -> None:
        """At start-up: freeze everything alive without a collection, counted as a full pass.
        A pass over a recovered tree would hold the first clients back (~0.1 s per 200,000
        znodes); recovery makes no garbage cycles, and the few that start-up's imports leave
        wait for the next full pass. Sets the young threshold as `settle` does."""
        _raise_young_threshold()
        gc.freeze()
        self.frozen = gc.get_freeze_count()
        self._full_pass_done(now)

    def settle(self, now: float) -> None:
        """Collect, then freeze everything alive; `now` is the reactor's time in seconds. Also
        sets the young generation's threshold (YOUNG_THRESHOLD), keeping the older ones'."""
        _raise_young_threshold()
        full = (self.last_full is None or now - self.last_full >= self.full_every
                or self.frozen >= 2 * self.frozen_after_full)
        if full:
            gc.unfreeze()
            self.frozen = 0
        gc.collect()
        self.frozen += len(gc.get_objects(2))  # the pass's survivors: all in the oldest generation
        gc.freeze()
        if full:
            self._full_pass_done(now)

    def _full_pass_done(self, now: float) -> None:
        self.last_full = now
        self.frozen_after_full = self.frozen
        self.full_passes += 1


def _raise_young_threshold() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
