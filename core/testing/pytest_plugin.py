"""zkserver's pytest plugin: real zkserver processes as fixtures, for applications and plugins.

Installed with zkserver (entry point ``zkserver`` in the ``pytest11`` group), so any test run in
an environment that has zkserver gets two fixtures, and nothing else (no hooks, no autouse
fixtures, no options):

``zkserver``
    A server for one test, started on a free port of 127.0.0.1 with the ``memory`` store and
    stopped after it. Its ``hosts`` is the connection string for a client::

        from kazoo.client import KazooClient

        def test_lock(zkserver):
            client = KazooClient(hosts=zkserver.hosts)
            client.start()
            ...

``zkserver_factory``
    ``zkserver_factory(storage="memory", config=None, env=None)`` starts a server with that
    store and the extra zoo.cfg keys in `config` (``{"example.eventLog": "/tmp/e.jsonl"}``);
    every server it started is stopped after the test, by its PID.

Each server is ``twistd -n zkserver -c zoo.cfg`` run by the interpreter running the tests, in a
fresh directory that holds its zoo.cfg, its dataDir (``data/``) and its output
(``server.log``, shown when it fails to start). It is ready once it answers ``ruok``; start-up
is bounded by `START_TIMEOUT` seconds. The fixtures never bind ZooKeeper's well-known ports.

The conformance suites for plugin authors are beside this module: ``core.testing.store_suite``
(``StoreSuite``) and ``core.testing.auth_suite`` (``AuthProviderSuite``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from core.testing.net import four_letter_word, free_port
from core.testing.process import stop_process

pytest.register_assert_rewrite("core.testing.store_suite", "core.testing.auth_suite")

#: Seconds a server may take to answer ``ruok`` after it is started.
START_TIMEOUT = 30.0
#: Seconds a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Ports never used for a test server (ZooKeeper's client, AdminServer and metrics defaults).

_TWISTD = "from twisted.scripts.twistd import run; run()"


class ZKServerProcess:
    """One zkserver process in its own directory: ``start()``, ``stop()``, ``hosts``.

    :param workdir: an empty directory for the zoo.cfg, the dataDir and the log.
    :param storage: the store, by backend name (``memory``, ``sqlite``, a plugin's).
    :param config: extra zoo.cfg keys; they win over the defaults written here.
    :param env: variables added to the server's environment (e.g. ``PYTHONPATH``).
    :param host: the loopback address to serve on.
    """

    def __init__(self, workdir: Path, storage: str = "memory",
                 config: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.workdir = Path(workdir)
        self.storage = storage
        self.extra_config = dict(config or {})
        self.env = dict(env or {})
        self.host = host
        self.port = 0
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "zoo.cfg"
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        """The connection string for a client: ``"127.0.0.1:<port>"``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def four_letter_word(self, word: str) -> str:
        """The server's answer to a four-letter word."""
        return four_letter_word(self.host, self.port, word)

    def log_text(self) -> str:
        """What the server printed so far."""
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def zoo_cfg(self) -> dict[str, str]:
        """The zoo.cfg keys the server is started with."""
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPortAddress": self.host,
            "clientPort": str(self.port),
            "storage": self.storage,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
        }
        cfg.update(self.extra_config)
        return cfg

    def start(self, timeout: float = START_TIMEOUT) -> ZKServerProcess:
        """Write the zoo.cfg, start the server, wait until it answers ``ruok``.

        :raises RuntimeError: the server exited or did not answer in time; the message holds
            the end of its output.
        """
        if self.proc is not None:
            raise RuntimeError(f"{self!r} is already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.zoo_cfg().items()))
        argv = [sys.executable, "-c", _TWISTD, "-n", "--pidfile=", "zkserver",
                "-c", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=self.workdir, env=self._environment(),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _environment(self) -> dict[str, str]:
        """The tests' environment, with the directory holding ``core`` first on PYTHONPATH
        (so that a checkout on sys.path works like an installed zkserver) and `env` added."""
        import core  # here, not at import: collecting tests should not import the server
        root = str(Path(core.__file__).resolve().parent.parent)
        env = {**os.environ, **self.env}
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([*paths, root] if root not in paths else paths)
        return env

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"zkserver exited with status {self.proc.returncode} while "
                                   f"starting ({self.config_path}):\n{self._tail()}")
            try:
                if self.four_letter_word("ruok"):
                    return
            except OSError as e:  # not listening yet
                last = repr(e)
            time.sleep(0.05)
        raise RuntimeError(f"zkserver did not answer on {self.hosts} within {timeout}s "
                           f"(last: {last}):\n{self._tail()}")

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers. Idempotent."""
        proc, self.proc = self.proc, None
        stop_process(proc, STOP_TIMEOUT)

    def __enter__(self) -> ZKServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ZKServerProcess storage={self.storage} {self.hosts} pid={self.pid}>"


class ZKServerFactory:
    """What the ``zkserver_factory`` fixture gives: call it to start a server."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self.servers: list[ZKServerProcess] = []

    def __call__(self, storage: str = "memory", config: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None,
                 timeout: float = START_TIMEOUT) -> ZKServerProcess:
        """Start a server with `storage` and the extra zoo.cfg keys `config`; return it running.

        :param env: variables added to the server's environment.
        :param timeout: seconds the server may take to answer ``ruok``.
        """
        server = ZKServerProcess(self._tmp_path_factory.mktemp("zkserver"), storage, config, env)
        self.servers.append(server)
        return server.start(timeout)

    def stop_all(self) -> None:
        """Stop every server this factory started."""
        for server in self.servers:
            server.stop()


@pytest.fixture
def zkserver_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZKServerFactory]:
    """Start zkserver processes: ``zkserver_factory(storage="memory", config={...})``; each is
    stopped after the test."""
    factory = ZKServerFactory(tmp_path_factory)
    yield factory
    factory.stop_all()


@pytest.fixture
def zkserver(zkserver_factory: ZKServerFactory) -> ZKServerProcess:
    """A running zkserver (memory store) for this test; ``zkserver.hosts`` is its address."""
    return zkserver_factory()
