"""The core and the built-in plugins type-check (mypy, with the zope plugin for Twisted's
interfaces; settings in pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_core_and_plugins_type_check(tmp_path: Path) -> None:
    try:
        import mypy  # noqa: F401
        import mypy_zope  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and mypy is missing (install the test extra)", pytrace=False)
        pytest.skip("mypy or mypy-zope is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), "core", "plugins"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
