"""The example third-party plugin (examples/zkserver-example-plugin), as a user installs it.

The distribution is pip-installed (editable, no dependencies) into the test environment when
it is not there yet; the servers and the ``zkserver`` tool started here find it through its
entry point like any plugin. The example's own test modules are the ones its documentation
includes: their tests are collected here, so the tutorial's code is tested code.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "zkserver-example-plugin"
DISTRIBUTION = "zkserver-example-plugin"

# What the editable install's .pth adds to sys.path for new processes; this one may have
# started before the install.
if str(EXAMPLE / "src") not in sys.path:
    sys.path.append(str(EXAMPLE / "src"))


def _load(name: str) -> ModuleType:
    """One of the example's own test modules."""
    spec = importlib.util.spec_from_file_location(f"zkserver_example_tests.{name}",
                                                  EXAMPLE / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example_store_tests = _load("test_store")
example_server_tests = _load("test_server")


def _installed_here() -> bool:
    """Whether the example is installed from this checkout."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    return url == EXAMPLE.as_uri()


@pytest.fixture(scope="module")
def example_installed() -> None:
    """``pip install --no-deps -e examples/zkserver-example-plugin``, unless done already."""
    if _installed_here():
        return
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "-e", str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    importlib.invalidate_caches()
    assert _installed_here()


class TestAppendLogStore(example_store_tests.TestAppendLogStore):  # type: ignore[name-defined]
    """The shipped Store conformance suite on the example's store (its own test class)."""


def test_zkserver_plugins_lists_it(example_installed: None) -> None:
    proc = subprocess.run([sys.executable, "-m", "core.cli", "plugins"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    [row] = [line for line in proc.stdout.splitlines() if line.startswith("example ")]
    assert row.split()[1:4] == [DISTRIBUTION, "0.1.0", "zkserver_example.hooks"]
    assert row.endswith("storage appendlog")


def test_server_on_its_store_logs_watch_events(example_installed: None, zkserver_factory,
                                               tmp_path: Path) -> None:
    """The example's own server test: kazoo on storage=appendlog, events in the log file."""
    example_server_tests.test_server_on_appendlog_logs_watch_events(zkserver_factory, tmp_path)


def test_a_bad_event_log_setting_stops_start_up(example_installed: None, zkserver_factory,
                                                tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"zoo.cfg:\d+: example.eventlog: the example plugin "
                                           r"has no such setting"):
        zkserver_factory(config={"example.eventlog": str(tmp_path / "e.jsonl")}, timeout=20)
