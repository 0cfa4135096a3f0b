"""The optional C accelerator of the per-request hot path, and the switch to run without it.

`core/_native.c` (built by `pip install` where a C compiler and Python's headers are, which
setup.py marks optional) gives a jute record's codec and a znode's digest and Stat bytes in C.
Each C function hands anything it does not handle exactly as the Python code does (a value out
of range, an unusual type) to the Python function it replaces, so results and errors are the
Python code's. `MODULE` is None where it was not built, or with ZKSERVER_PURE_PYTHON=1 in the
environment: then the server runs the Python code alone, as the tests check.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any


def load() -> ModuleType | None:
    """The built accelerator, or None (not built, or ZKSERVER_PURE_PYTHON set non-empty)."""
    if os.environ.get("ZKSERVER_PURE_PYTHON"):
        return None
    try:
        from core import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _native


MODULE = load()


def method(f: Any) -> Any:
    """`f` (a C function) as a method: bound to an instance when looked up on one, as a Python
    function is."""
    assert MODULE is not None
    return MODULE.instancemethod(f)
