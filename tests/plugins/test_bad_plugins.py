"""Bad third-party plugins stop start-up with one line naming the plugin's distribution.

Each test writes a throw-away plugin module and a ``*.dist-info`` directory registering it
under ``zkserver.plugins`` into tmp_path (the pattern of tests/e2e/test_third_party_scheme.py)
and starts ``twistd -n zkserver -c zoo.cfg`` with that directory on PYTHONPATH. Errors found
while the service is built (core.pluginmanager's PluginError) end twistd with status 2 and one
line on stderr; a store that fails to open fails after start-up began, on the storage thread,
and is reported as one critical log line.

The hook API's deprecation path (pluggy's ``warn_on_impl``) is tested here too, in process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pluggy
import pytest

import core
from core import hookspecs
from core.pluginmanager import PluginError, build_plugin_manager, storage_backends

REPO_ROOT = Path(__file__).resolve().parents[2]
DIST = "zk-bad-plugin 0.3"

LOAD_FAILS = '''
raise RuntimeError("cannot find libfoo.so")
'''

WRONG_ARGUMENTS = '''
from core import hookimpl

@hookimpl
def zk_auth_providers(cfg):
    return []
'''

UNKNOWN_HOOK = '''
from core import hookimpl

@hookimpl
def zk_storage_backend():
    return []
'''

CONFIGURE_FAILS = '''
from core import hookimpl

@hookimpl
def zk_configure(config):
    raise ValueError("no licence key")
'''

TAKEN_NAME = '''
from core import BackendSpec, hookimpl

@hookimpl
def zk_storage_backends():
    return [BackendSpec("memory", "another memory store", lambda config: None)]
'''

OPEN_FAILS = '''
from core import BackendSpec, hookimpl


class BrokenStore:
    def open(self):
        raise OSError(5, "Input/output error")

    def close(self):
        pass


@hookimpl
def zk_storage_backends():
    return [BackendSpec("broken", "a store whose disk has gone", lambda config: BrokenStore())]
'''


def install_plugin(where: Path, source: str, name: str = "bad") -> Path:
    """Write module ``zk_bad_plugin`` and a dist-info naming it `name` under `where`."""
    where.mkdir(exist_ok=True)
    (where / "zk_bad_plugin.py").write_text(textwrap.dedent(source))
    info = where / "zk_bad_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zk-bad-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[zkserver.plugins]\n{name} = zk_bad_plugin\n")
    return where


def run_server(tmp_path: Path, source: str, storage: str = "memory") -> subprocess.CompletedProcess[str]:
    """Start our server with the plugin installed; it must stop on its own."""
    path = install_plugin(tmp_path / "site", source)
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"storage={storage}\ndataDir={tmp_path / 'data'}\nclientPort=0\n"
                   "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n")
    return subprocess.run(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
         "-n", "--pidfile=", "zkserver", "-c", str(cfg)],
        cwd=REPO_ROOT, env={**_environ(), "PYTHONPATH": str(path)}, capture_output=True,
        text=True, timeout=30)


def _environ() -> dict[str, str]:
    import os
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line on stderr of a server that refused to start (status 2)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"plugin 'bad' (distribution {DIST})" in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("source, says", [
    (LOAD_FAILS, "failed to load zk_bad_plugin: RuntimeError: cannot find libfoo.so"),
    (WRONG_ARGUMENTS, "Argument(s) {'cfg'} are declared in the hookimpl but can not be found"),
    (UNKNOWN_HOOK, "unknown hook 'zk_storage_backend' (did you mean 'zk_storage_backends'?)"),
    (TAKEN_NAME, "offers the storage backend 'memory', which plugin 'memory' "
                 "(distribution zkserver"),
    (CONFIGURE_FAILS, "ValueError: no licence key ("),
], ids=["raises-at-import", "wrong-argument-names", "unknown-hook", "backend-name-taken",
        "hook-raises"])
def test_start_up_stops_with_one_line(tmp_path: Path, source: str, says: str) -> None:
    line = one_error_line(run_server(tmp_path, source))
    assert says in line


def test_a_store_that_fails_to_open(tmp_path: Path) -> None:
    proc = run_server(tmp_path, OPEN_FAILS, storage="broken")
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout
    # the store is opened before the reactor runs: one line on stderr, status 2
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert (f"plugin 'bad' (distribution {DIST}): storage 'broken' failed to open: "
            "OSError: [Errno 5] Input/output error") in line
    assert "zk_bad_plugin.py:7" in line  # where it raised


def test_an_entry_point_name_taken_by_another_distribution(tmp_path: Path) -> None:
    path = install_plugin(tmp_path / "site", "", name="memory")
    proc = subprocess.run([sys.executable, "-m", "core.cli", "plugins"], cwd=REPO_ROOT,
                          env={**_environ(), "PYTHONPATH": str(path)}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "plugin 'memory': registered by distribution " in proc.stderr
    assert f"distribution {DIST} (zk_bad_plugin)" in proc.stderr
    assert "distribution zkserver " in proc.stderr and "uninstall one" in proc.stderr


def test_the_zkserver_tool_names_the_distribution_too(tmp_path: Path) -> None:
    path = install_plugin(tmp_path / "site", UNKNOWN_HOOK)
    proc = subprocess.run([sys.executable, "-m", "core.cli", "plugins"], cwd=REPO_ROOT,
                          env={**_environ(), "PYTHONPATH": str(path)}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.startswith("zkserver: error: plugin 'bad' (distribution zk-bad-plugin")
    assert proc.stderr.count("\n") == 1


# -- in process: extra plugins, and the deprecation path ----------------------------------------


def test_an_extra_plugin_with_an_unknown_hook_is_refused() -> None:
    class Typo:
        @core.hookimpl
        def zk_server_stoping(self, server: object) -> None:
            pass

    with pytest.raises(PluginError, match=r"plugin 'Typo' \(not installed\): unknown hook "
                                          r"'zk_server_stoping' \(did you mean "
                                          r"'zk_server_stopping'\?\); this server has hook API "
                                          r"version 1"):
        build_plugin_manager([Typo()])


def test_a_failing_factory_is_named() -> None:
    class Offers:
        @core.hookimpl
        def zk_storage_backends(self) -> list[core.BackendSpec]:
            def factory(config: object) -> object:
                raise KeyError("path")
            return [core.BackendSpec("failing", "", factory)]

    backends = storage_backends(build_plugin_manager([Offers()]))
    with pytest.raises(PluginError, match=r"the storage backend 'failing' failed to build: "
                                          r"KeyError: 'path'"):
        backends["failing"].factory(None)


def test_hook_api_version_is_public() -> None:
    assert core.HOOK_API_VERSION == 1
    assert "HOOK_API_VERSION" in core.__all__


class DeprecatedSpecs:
    """A hook on its way out, marked as the hook API's deprecation path says."""

    @hookspecs.hookspec(warn_on_impl=DeprecationWarning(
        "zk_old_hook is deprecated (hook API 1) and goes in hook API 2; use zk_configure"))
    def zk_old_hook(self, config: object) -> None:
        """A retired hook."""


def test_a_deprecated_hook_warns_its_implementers() -> None:
    class Old:
        @core.hookimpl
        def zk_old_hook(self, config: object) -> None:
            pass

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.add_hookspecs(DeprecatedSpecs)
    with pytest.warns(DeprecationWarning, match="zk_old_hook is deprecated"):
        pm.register(Old())
    with warnings.catch_warnings():  # a plugin without the old hook registers silently
        warnings.simplefilter("error")
        pm.register(type("New", (), {})())
