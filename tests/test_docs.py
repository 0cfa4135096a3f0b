"""The documentation builds without a warning, and documents every hook, interface, zoo.cfg key
and four-letter word (after datasette's test_plugin_hooks_are_documented).

The build needs Sphinx (the ``docs`` extra): without it that test skips, except under CI=true
where it fails.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import core
from core import config, hookspecs, interfaces
from core.ops import fourletter

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if name.startswith("zk_") and inspect.isfunction(value))


def read(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


def test_sphinx_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    try:
        import sphinx  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and Sphinx is missing (install the docs extra)", pytrace=False)
        pytest.skip("Sphinx is not installed (the docs extra)")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           "html", str(DOCS), str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "html" / "plugins" / "tutorial.html").exists()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    """A docstring with a ``:param:`` per argument, and an autofunction on a family page."""
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function) or ""
    assert doc, f"{hook} has no docstring"
    for argument in inspect.signature(function).parameters:
        assert f":param {argument}:" in doc, f"{hook}: no :param {argument}:"
    pages = [p.name for p in (DOCS / "plugins").glob("hooks-*.rst")
             if f".. autofunction:: core.hookspecs.{hook}\n" in p.read_text()]
    assert pages, f"{hook} is on no docs/plugins/hooks-*.rst page"


def test_hook_families_have_a_page_each() -> None:
    """Every ``# -- <family> ---`` heading of core/hookspecs.py has its page."""
    source = Path(hookspecs.__file__).read_text()
    families = re.findall(r"^# -- ([a-z ]+?) -+$", source, re.MULTILINE)
    assert families
    for family in families:
        assert (DOCS / "plugins" / f"hooks-{family.replace(' ', '-')}.rst").exists(), family


def test_interfaces_are_documented() -> None:
    protocols = sorted(name for name, value in vars(interfaces).items()
                       if inspect.isclass(value) and value.__module__ == interfaces.__name__
                       and typing.Protocol in value.__mro__[1:] and value is not typing.Protocol)
    assert {"Store", "Consensus", "AuthProvider", "SaslAuthProvider", "WatchDelivery"} \
        <= set(protocols)
    page = read("plugins/interfaces.rst")
    for name in protocols:
        assert f".. autoclass:: core.interfaces.{name}\n" in page, name


def test_every_zoo_cfg_key_read_is_in_the_table() -> None:
    page = read("user/configuration.rst")
    rows = set(re.findall(r"^   \* - ``([^`]+)``$", page, re.MULTILINE))
    missing = sorted(config._READ_KEYS - rows)
    assert not missing, f"zoo.cfg keys missing from docs/user/configuration.rst: {missing}"


def test_every_four_letter_word_is_named() -> None:
    page = read("user/operations.rst")
    missing = sorted(word for word in fourletter.COMMANDS if f"``{word}``" not in page)
    assert not missing, missing


def test_the_hook_api_version_is_the_documented_one() -> None:
    assert f"``core.HOOK_API_VERSION`` is {core.HOOK_API_VERSION}." in read("plugins/stability.rst")
