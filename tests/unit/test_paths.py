"""core.paths: PathUtils.validatePath's table (protocol.md "Paths"), parent and child names."""

from __future__ import annotations

import pytest

from core.errors import Code, ZKError
from core.paths import child_name, parent_of, validate_path

VALID = [
    "/", "/a", "/a/b", "/a/b/c", "/...", "/.a", "/a.", "/a..", "/..a", "/a/.b", "/a b",
    "/zookeeper", "/\u00a0", "/\u00e9t\u00e9", "/\u4e2d\u6587", "/\uf900", "/\uffef", "/\x20",
    "/~!@#$%^&*()_+-=[]{};':\",<>?\\|",
]
INVALID = [
    "", "a", "a/b", "/a/", "//", "/a//b", "/.", "/..", "/a/.", "/a/..", "/./a", "/../a",
    "/a/./b", "/a/../b", "/a\x00", "/\x00", "/\x01", "/a\x1f", "/\x7f", "/\x80", "/\x9f",
    "/\ud800", "/\udfff", "/\ue000", "/\uf8ff", "/\ufff0", "/\ufffd", "/\uffff",
    "/\U00010000", "/\U0001f600", "/\U0010ffff", "/a\tb", "/a\nb",
]


@pytest.mark.parametrize("path", VALID)
def test_valid_paths_pass(path: str) -> None:
    validate_path(path)


@pytest.mark.parametrize("path", INVALID)
def test_invalid_paths_are_badarguments(path: str) -> None:
    with pytest.raises(ZKError) as e:
        validate_path(path)
    assert e.value.code == Code.BADARGUMENTS


def test_none_is_badarguments() -> None:
    with pytest.raises(ZKError) as e:
        validate_path(None)
    assert e.value.code == Code.BADARGUMENTS


def test_sequential_validates_with_a_suffix() -> None:
    validate_path("/a/", sequential=True)  # "/a/1" is fine: the parent-style prefix is allowed
    validate_path("/a/b-", sequential=True)
    with pytest.raises(ZKError):
        validate_path("/a/.", sequential=False)
    validate_path("/a/.", sequential=True)  # "/a/.1"
    with pytest.raises(ZKError):
        validate_path("/a//", sequential=True)


@pytest.mark.parametrize("path,parent", [
    ("/a", "/"), ("/a/b", "/a"), ("/a/b/c", "/a/b"), ("/a/", "/a"), ("/", "/"),
])
def test_parent_of(path: str, parent: str) -> None:
    assert parent_of(path) == parent


@pytest.mark.parametrize("path,name", [("/a", "a"), ("/a/b", "b"), ("/a/", ""), ("/", "")])
def test_child_name(path: str, name: str) -> None:
    assert child_name(path) == name
