"""The optional C accelerator of the per-request hot path, and the switch to run without it.

`core/_native.c` (built by `pip install` where a C compiler and Python's headers are, which
setup.py marks optional) gives in C: a jute record's codec (core.jute), a txn's log-entry bytes
(core.txn), a znode's digest, Stat bytes and snapshot records, written and read (core.tree,
core.snapshot), the common cases of setData, create and delete and multis of them, prepped
(core.prep) and applied (core.tree), a znode path's validation (core.paths), the plumbing every
request shares (core.connection's frame split, core.server's request intake with its plain
getData and exists, submit, commit and reply completion, core.prep's dispatch, core.tree's
apply, the server's millisecond clock), and the constructors of the slotted dataclasses made
per write (`fast_constructor`). Each C function hands anything it does not handle exactly as
the Python code does (a value out of range, an unusual type, a record out of the common run) to
the Python code it stands in for, so results and errors are the Python code's. `MODULE` is None where it
was not built, or with ZKSERVER_PURE_PYTHON=1 in the environment: then the server runs the
Python code alone, as the tests check.
"""

from __future__ import annotations

import dataclasses
import os
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")


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
    function is, and called through an instance without a bound method made first (a method
    descriptor)."""
    assert MODULE is not None
    return MODULE.instancemethod(f)


def fast_constructor(cls: type[T] | None = None, *, untracked: bool = False) -> Any:
    """Class decorator (`@fast_constructor` or `@fast_constructor(untracked=True)`): with the
    accelerator, `cls(...)` runs a C constructor that fills the new instance's slots from the
    same arguments, for a slotted dataclass whose __init__ only assigns its fields (no
    __post_init__, default factory, init=False or keyword-only field); a call it cannot place
    goes to the class's own __init__, which raises what it raises. Other classes, or no
    accelerator: `cls` unchanged. Returns `cls`.

    `untracked`: the instances it makes are left out of the cyclic garbage collector, whose full
    passes then do not scan them (a tree's znodes: hundreds of thousands). Only for a class
    whose instances can never be part of a reference cycle: what their fields hold never refers
    back to them (bytes, numbers, strings, tuples or sets of such)."""
    if cls is None:
        return lambda c: fast_constructor(c, untracked=untracked)
    fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()  # type: ignore[arg-type]
    if (MODULE is None or not fields or "__slots__" not in vars(cls) or hasattr(cls, "__post_init__")
            or any(not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING for f in fields)):
        return cls
    defaults = tuple(f.default for f in fields if f.default is not dataclasses.MISSING)
    MODULE.install_constructor(cls, tuple(f.name for f in fields), defaults, untracked)
    return cls
