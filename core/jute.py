"""Jute, ZooKeeper's record serialization, with codecs generated from declarations.

A record is declared once as an annotated class, with zookeeper.jute's field names and order::

    @record
    class Stat:
        czxid: Long
        ...

Field types: ``Int`` (4 bytes), ``Long`` (8), ``bool`` (1), ``bytes | None`` (buffer: int length
then bytes, -1 = None), ``str | None`` (ustring, UTF-8 the same way), ``list[T] | None`` (vector:
int count then elements, -1 = None) and another record class (its fields inline). Everything is
big-endian. ``@record`` turns the class into a slotted dataclass and attaches ``encode(obj) ->
bytes`` and ``decode(buf, offset) -> (obj, new_offset)``, generated as straight-line Python with one
precompiled ``struct.Struct`` per run of fixed-size fields, so that decoding a request costs about
what hand-written code costs. Malformed input raises ``JuteError``.

A vector field declared ``Annotated[Sequence[T] | None, table]`` with a `VectorTable` is interned
by its bytes: the few distinct ACL lists that every create carries are decoded once, and
encoded from the bytes they came as.

With the C accelerator built (core.native), a record of fixed fields, buffers, ustrings, nested
such records and interned vectors gets a C codec from the same declarations, which hands what
it does not handle alike to the generated Python codec (the record's `py_codec`).
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Self, TypeVar, dataclass_transform

from core import native

Int = Annotated[int, "i"]
Long = Annotated[int, "q"]

INT = struct.Struct(">i")
LONG = struct.Struct(">q")

_FIXED = {"i": 4, "q": 8, "?": 1}

class JuteError(ValueError):
    """Bytes that do not decode as the expected record."""


class VectorTable:
    """Vectors of one record type interned by their bytes, for fields declared
    ``Annotated[Sequence[T] | None, table]``: decoding bytes seen before gives the same tuple
    (no element decoded, no object made), and encoding one of the table's tuples appends the
    bytes it came from. Holds at most `limit` vectors of at most `max_bytes` each (what a client
    sends cannot pin more than that); others decode to tuples of their own. Elements must not
    be changed (nothing in the server changes a record it decoded). The vector found last is
    tried first, by its bytes as a prefix of what follows (a vector's encoding ends where its
    decoding does, so bytes that begin with it hold it): the ACL that every create of a client
    repeats is then neither walked nor looked up."""

    def __init__(self, limit: int = 1024, max_bytes: int = 1024) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.by_bytes: dict[bytes, tuple[Any, ...]] = {}
        self.bytes_of: dict[int, bytes] = {}  # id(tuple) -> its bytes; by_bytes keeps it alive
        self.last: tuple[bytes, tuple[Any, ...]] = (bytes(4), ())  # at first: the empty vector

    def add(self, raw: bytes, value: tuple[Any, ...]) -> tuple[Any, ...]:
        """Intern `value`, decoded from `raw`, if it is small enough and there is room; return it."""
        if len(raw) <= self.max_bytes and len(self.by_bytes) < self.limit:
            self.by_bytes[raw] = value
            self.bytes_of[id(value)] = raw
        return value

    def holds(self, value: object) -> bool:
        """Whether `value` is one of this table's tuples."""
        return id(value) in self.bytes_of


class Record:
    """Base of every jute record; `@record` replaces these methods with generated ones."""

    __slots__ = ()
    _jute_fields: ClassVar[list[tuple[str, Any]]]
    py_codec: ClassVar[PyCodec]
    native_codec: ClassVar[Any]  # core._native.Codec, or None

    def encode(self) -> bytes:
        """This record's jute bytes."""
        raise NotImplementedError

    def encode_into(self, parts: list[bytes]) -> list[bytes]:
        """Append this record's jute bytes to `parts` (and return it)."""
        raise NotImplementedError

    @classmethod
    def decode(cls, buf: bytes | bytearray, off: int = 0) -> tuple[Self, int]:
        """Decode one record at `off`: (record, offset after it). Raises JuteError."""
        raise NotImplementedError


R = TypeVar("R", bound=Record)


def _jute_kind(hint: Any) -> tuple[str, Any]:
    """Classify one annotation: ('fixed', code) / ('buffer',) / ('ustring',) / ('vector', elem) /
    ('interned', (elem, table)) / ('record', cls)."""
    if typing.get_origin(hint) is Annotated:
        meta = hint.__metadata__[0]
        if isinstance(meta, VectorTable):
            kind, elem = _jute_kind(hint.__origin__)
            if kind != "vector" or _jute_kind(elem)[0] != "record":
                raise TypeError(f"a VectorTable annotates a vector of records, not {hint!r}")
            return ("interned", (elem, meta))
        return ("fixed", meta)
    if hint is bool:
        return ("fixed", "?")
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if hint is bytes:
        return ("buffer", None)
    if hint is str:
        return ("ustring", None)
    if typing.get_origin(hint) in (list, Sequence):
        return ("vector", args[0])
    if isinstance(hint, type) and issubclass(hint, Record):
        return ("record", hint)
    raise TypeError(f"not a jute type: {hint!r}")


class _Gen:
    """Emits the source of one record's encode and decode functions."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {"INT": INT, "JuteError": JuteError, "struct": struct}
        self.counter = 0

    def name(self, obj: Any, prefix: str) -> str:
        self.counter += 1
        key = f"{prefix}{self.counter}"
        self.env[key] = obj
        return key

    def decode_lines(self, fields: list[tuple[str, Any]], var: str, indent: str) -> list[str]:
        """Lines that decode `fields` into locals named `<var>_<field>`."""
        lines: list[str] = []
        run: list[tuple[str, str]] = []

        def flush() -> None:
            if not run:
                return
            st = struct.Struct(">" + "".join(code for _, code in run))
            s = self.name(st, "S")
            names = ", ".join(f"{var}_{n}" for n, _ in run)
            lines.append(f"{indent}{names}, = {s}.unpack_from(buf, off); off += {st.size}")
            run.clear()

        for fname, hint in fields:
            kind, arg = _jute_kind(hint)
            local = f"{var}_{fname}"
            if kind == "fixed":
                run.append((fname, arg))
                continue
            if kind == "record" and all(_jute_kind(h)[0] == "fixed" for _, h in arg._jute_fields):
                run.extend((f"{fname}_{n}", _jute_kind(h)[1]) for n, h in arg._jute_fields)
                flush()
                c = self.name(arg, "C")
                inner = ", ".join(f"{local}_{n}" for n, _ in arg._jute_fields)
                lines.append(f"{indent}{local} = {c}({inner})")
                continue
            flush()
            lines.extend(self.decode_one(kind, arg, local, indent))
        flush()
        return lines

    def decode_one(self, kind: str, arg: Any, local: str, indent: str) -> list[str]:
        if kind == "interned":
            return self.decode_interned(arg[0], arg[1], local, indent)
        if kind in ("buffer", "ustring"):
            if kind == "buffer":
                conv = [f"{indent}    {local} = bytes(buf[off:end])"]
            else:  # invalid UTF-8 decodes with replacement characters, as Java's String does
                conv = [f"{indent}    try: {local} = buf[off:end].decode()",
                        f"{indent}    except UnicodeDecodeError: {local} = buf[off:end].decode('utf-8', 'replace')"]
            return [
                f"{indent}n, = INT.unpack_from(buf, off); off += 4",
                f"{indent}if n < 0: {local} = None",
                f"{indent}else:",
                f"{indent}    end = off + n",
                f"{indent}    if end > size: raise JuteError('field runs past the end')",
                *conv,
                f"{indent}    off = end",
            ]
        if kind == "record":  # inlined: no call per nested record (an ACL's Id, a vector's elements)
            c = self.name(arg, "C")
            inner = ", ".join(f"{local}_{n}" for n, _ in arg._jute_fields)
            return [*self.decode_lines(arg._jute_fields, local, indent), f"{indent}{local} = {c}({inner})"]
        # vector
        ekind, earg = _jute_kind(arg)
        el = local + "_e"
        if ekind == "fixed":
            body = [f"{indent}        {el}, = struct.unpack_from('>{earg}', buf, off); off += {_FIXED[earg]}"]
        else:
            body = self.decode_one(ekind, earg, el, indent + "        ")
        return [
            f"{indent}n, = INT.unpack_from(buf, off); off += 4",
            f"{indent}if n < 0: {local} = None",
            f"{indent}else:",
            f"{indent}    if n > size - off: raise JuteError('vector longer than the packet')",
            f"{indent}    {local} = []",
            f"{indent}    for _ in range(n):",
            *body,
            f"{indent}        {local}.append({el})",
        ]

    def decode_interned(self, elem: Any, table: VectorTable, local: str, indent: str) -> list[str]:
        """An interned vector: the table's last vector when the bytes begin with its own;
        else skip over the elements to find the vector's bytes, look them up, and decode the
        elements only for bytes not seen before."""
        t = self.name(table, "T")
        count, start, raw, elems, el = (f"{local}_{x}" for x in ("count", "start", "raw", "elems", "e"))
        return [
            f"{indent}{raw}, {local} = {t}.last",
            f"{indent}if buf.startswith({raw}, off): off += len({raw})",
            f"{indent}else:",
            f"{indent}  {start} = off",
            f"{indent}  {count}, = INT.unpack_from(buf, off); off += 4",
            f"{indent}  if {count} < 0: {local} = None",
            f"{indent}  else:",
            f"{indent}    if {count} > size - off: raise JuteError('vector longer than the packet')",
            f"{indent}    for _ in range({count}):",
            *self.skip_lines(elem._jute_fields, indent + "        "),
            f"{indent}    if off > size: raise JuteError('field runs past the end')",
            f"{indent}    {raw} = bytes(buf[{start}:off])",
            f"{indent}    {local} = {t}.by_bytes.get({raw})",
            f"{indent}    if {local} is None:",
            f"{indent}        off = {start} + 4",
            f"{indent}        {elems} = []",
            f"{indent}        for _ in range({count}):",
            *self.decode_one("record", elem, el, indent + "            "),
            f"{indent}            {elems}.append({el})",
            f"{indent}        {local} = {t}.add({raw}, tuple({elems}))",
            f"{indent}    if {t}.holds({local}): {t}.last = ({raw}, {local})",
        ]

    def skip_lines(self, fields: list[tuple[str, Any]], indent: str) -> list[str]:
        """Lines that move `off` past one record of `fields` without decoding it."""
        lines: list[str] = []
        fixed = 0
        for _, hint in fields:
            kind, arg = _jute_kind(hint)
            if kind == "fixed":
                fixed += _FIXED[arg]
                continue
            if fixed:
                lines.append(f"{indent}off += {fixed}")
                fixed = 0
            if kind in ("buffer", "ustring"):
                lines.append(f"{indent}m, = INT.unpack_from(buf, off); off += 4 + (m if m > 0 else 0)")
            elif kind == "record":
                lines.extend(self.skip_lines(arg._jute_fields, indent))
            else:
                raise TypeError(f"an interned vector's records cannot hold {kind} fields")
        if fixed:
            lines.append(f"{indent}off += {fixed}")
        return lines

    def encode_lines(self, fields: list[tuple[str, Any]], expr: str, indent: str) -> list[str]:
        """Lines that append the encoding of `expr`'s fields to the list `p`."""
        lines: list[str] = []
        run: list[tuple[str, str]] = []

        def flush() -> None:
            if not run:
                return
            s = self.name(struct.Struct(">" + "".join(code for _, code in run)), "S")
            lines.append(f"{indent}p.append({s}.pack({', '.join(e for e, _ in run)}))")
            run.clear()

        for fname, hint in fields:
            kind, arg = _jute_kind(hint)
            value = f"{expr}.{fname}"
            if kind == "fixed":
                run.append((value, arg))
            elif kind == "record" and all(_jute_kind(h)[0] == "fixed" for _, h in arg._jute_fields):
                run.extend((f"{value}.{n}", _jute_kind(h)[1]) for n, h in arg._jute_fields)
            else:
                flush()
                lines.extend(self.encode_one(kind, arg, value, indent))
        flush()
        return lines

    def encode_one(self, kind: str, arg: Any, value: str, indent: str) -> list[str]:
        if kind == "interned":  # one of the table's tuples: the bytes it was decoded from
            t = self.name(arg[1], "T")
            return [
                f"{indent}raw = {t}.bytes_of.get(id({value}))",
                f"{indent}if raw is not None: p.append(raw)",
                f"{indent}else:",
                *self.encode_one("vector", arg[0], value, indent + "    "),
            ]
        if kind in ("buffer", "ustring"):
            encode = "" if kind == "buffer" else "v = v.encode('utf-8', 'surrogatepass'); "
            return [
                f"{indent}v = {value}",
                f"{indent}if v is None: p.append(b'\\xff\\xff\\xff\\xff')",
                f"{indent}else: {encode}p += (INT.pack(len(v)), v)",
            ]
        if kind == "record":
            return self.encode_lines(arg._jute_fields, value, indent)
        ekind, earg = _jute_kind(arg)
        if ekind == "fixed":
            body = [f"{indent}        p.append(struct.pack('>{earg}', e))"]
        elif ekind == "record":
            body = self.encode_lines(earg._jute_fields, "e", indent + "        ")
        else:
            body = self.encode_one(ekind, earg, "e", indent + "        ")
        return [
            f"{indent}vec = {value}",
            f"{indent}if vec is None: p.append(b'\\xff\\xff\\xff\\xff')",
            f"{indent}else:",
            f"{indent}    p.append(INT.pack(len(vec)))",
            f"{indent}    for e in vec:",
            *body,
        ]


def fixed_struct(cls: type[Record]) -> struct.Struct:
    """The one Struct that packs and unpacks a record whose fields are all fixed-size, in
    field order (for code that keeps such a record's fields elsewhere, as `core.txn.Txn` does
    TxnHeader's). Raises TypeError for a record with any other field."""
    codes = []
    for _, hint in cls._jute_fields:
        kind, code = _jute_kind(hint)
        if kind != "fixed":
            raise TypeError(f"{cls.__name__} has a {kind} field")
        codes.append(code)
    return struct.Struct(">" + "".join(codes))


@dataclass_transform()
def record(cls: type[R]) -> type[R]:
    """Make `cls` (a Record subclass) a slotted dataclass with a generated jute codec (see the
    module docstring)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [(n, hints[n]) for n in cls.__annotations__]
    dc: Any = dataclasses.dataclass(slots=True)(cls)
    dc._jute_fields = fields
    gen = _Gen()
    me = gen.name(dc, "C")
    dec = gen.decode_lines(fields, "f", "        ")
    args = ", ".join(f"f_{n}" for n, _ in fields)
    enc = gen.encode_lines(fields, "o", "    ")
    src = "\n".join([
        "def decode(buf, off=0):",
        "    size = len(buf)",
        "    try:",
        *dec,
        "    except (struct.error, IndexError) as e:",
        f"        raise JuteError('truncated {dc.__name__}') from e",
        f"    return {me}({args}), off",
        "def encode_into(o, p):",
        *enc,
        "    return p",
        "def encode(o):",
        "    p = []",
        *enc,
        "    return b''.join(p)",
    ])
    ns: dict[str, Any] = {}
    exec(compile(src, f"<jute {dc.__name__}>", "exec"), gen.env, ns)
    dc.py_codec = PyCodec(ns["decode"], ns["encode"], ns["encode_into"])
    c = dc.native_codec = _native_codec(dc, fields, dc.py_codec)
    methods = dc.py_codec if c is None else PyCodec(c.decode, native.method(c.encode), native.method(c.encode_into))
    dc.decode = staticmethod(methods.decode)
    dc.encode = methods.encode
    dc.encode_into = methods.encode_into
    return typing.cast(type[R], native.fast_constructor(dc))


class PyCodec(typing.NamedTuple):
    """A record's codec functions. Its `py_codec`, the generated Python ones: what the record's
    methods are without the C accelerator, and what the accelerator hands what it leaves to
    Python."""

    decode: Any
    encode: Any
    encode_into: Any


_NATIVE_KINDS = {"buffer": "b", "ustring": "s"}


def _native_codec(cls: Any, fields: list[tuple[str, Any]], py: PyCodec) -> Any:
    """The C codec of a record (core.native), or None: without the accelerator, or for a
    record with a plain vector, or one whose construction does more than assign its fields."""
    if native.MODULE is None or hasattr(cls, "__post_init__"):
        return None
    spec = []
    for fname, hint in fields:
        kind, arg = _jute_kind(hint)
        if kind == "fixed":
            spec.append((arg, fname, None))
        elif kind == "record":
            if arg.native_codec is None:
                return None
            spec.append(("r", fname, arg.native_codec))
        elif kind == "interned":
            spec.append(("I", fname, arg[1]))
        elif kind in _NATIVE_KINDS:
            spec.append((_NATIVE_KINDS[kind], fname, None))
        else:
            return None
    return native.MODULE.Codec(cls, JuteError, tuple(spec), py.decode, py.encode, py.encode_into)
