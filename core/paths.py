"""Znode paths: validation as ZooKeeper's PathUtils.validatePath, parent and child names.

ZooKeeper checks a path one UTF-16 unit at a time, so a code point at or above U+10000 (a
surrogate pair in Java) is refused like the surrogates themselves. Every refusal is
BADARGUMENTS on the wire.
"""

from __future__ import annotations

import re

from core import native
from core.errors import Code, ZKError

# PathUtils' refused characters, per UTF-16 unit: U+0000-001F, U+007F-009F, U+D800-F8FF,
# U+FFF0-FFFF, plus everything beyond the BMP (a surrogate pair in Java).
_BAD = "\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\U0010ffff"
# "/" alone, or segments of allowed characters, none empty, "." or "..".
_VALID = re.compile(f"/|(?:/(?!\\.\\.?(?:/|$))[^/{_BAD}]+)+")


def py_valid_path(path: str) -> bool:
    """Whether `path` is a valid znode path (in C with the accelerator: `valid_path`)."""
    return _VALID.fullmatch(path) is not None


valid_path = py_valid_path if native.MODULE is None else native.MODULE.valid_path


def validate_path(path: str | None, sequential: bool = False) -> None:
    """Raise ZKError(BADARGUMENTS) unless `path` is a valid znode path: absolute, no trailing
    `/`, no empty, `.` or `..` segment, no refused character. With `sequential` the path is
    checked as it will be once a suffix is appended (PathUtils.validatePath(path, true))."""
    if path is None:
        raise ZKError(Code.BADARGUMENTS)
    if sequential:
        path += "1"
    if not valid_path(path):
        raise ZKError(Code.BADARGUMENTS, path)


def parent_of(path: str) -> str:
    """The parent path: everything before the last `/` ("/a" -> "/", "/a/b" -> "/a",
    "/a/" -> "/a"); the root's parent is the root."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else "/"


def child_name(path: str) -> str:
    """The last segment of `path` ("/a/b" -> "b"; "/" -> "")."""
    return path[path.rfind("/") + 1:]
