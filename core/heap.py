"""Keeping CPython's cyclic garbage collector off what lives long.

The collector's full passes scan every tracked object. A server's heap is mostly the tree and
what start-up built, which live on; rescanning them again and again while requests churn cost
about 5 µs a write under load (measured with gc.disable beside the default).
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """One full collection of everything, then every object alive moves to the permanent
    generation, out of the collector's passes until the next call (which takes them back, so
    that garbage cycles among them are still found)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
