"""Server launchers for end-to-end and differential tests: Apache ZooKeeper 3.8 and ours.

Both speak the same client protocol on a free port of a loopback address; a test receives one
as a `ZKServer` (see the ``server`` fixture in tests/conftest.py) and never cares which it got
except where protocol.md's "3.8 vs 3.9 differences" say the answers differ (``server.kind``).

Rules kept here, so that no test has to remember them:
- every server binds a free port on 127.0.0.x (never 2181/8080/7000), in its own temp dataDir;
- starting is bounded in time (port open, then ``ruok`` -> ``imok``);
- a server is stopped by its PID: terminate, wait, then kill.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.testing.net import four_letter_word as four_letter, free_port
from core.testing.process import stop_process
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

ZK_JAR = Path("/usr/share/java/zookeeper.jar")
SLF4J_JAR = Path("/usr/share/java/slf4j-simple.jar")
ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")
OUR_DROPIN = REPO_ROOT / "twisted" / "plugins" / "zkserver_plugin.py"

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _missing(reason: str) -> None:
    """Skip the test, or fail it under CI=true where every dependency must be present."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_zookeeper(cli: bool = False) -> None:
    """Debian's `zookeeper` (+ `zookeeper-bin` for the C client when `cli`) must be installed."""
    need = [ZK_JAR, SLF4J_JAR]
    if cli:
        need += [ZKCLI, CLI_MT]
    missing = [str(p) for p in need if not p.exists()]
    if shutil.which("java") is None:
        missing.append("java")
    if missing:
        _missing("Debian's ZooKeeper packages are missing: " + ", ".join(missing))


def require_ours() -> None:
    """Our server's twistd dropin must exist (it is being written; skip until then, fail in CI)."""
    if not OUR_DROPIN.exists():
        _missing(f"our server is not there yet ({OUR_DROPIN.relative_to(REPO_ROOT)} is missing)")


class ZKServer:
    """One server process: start(), stop(), host, port, four_letter(word), alive()."""

    kind = "?"

    def __init__(self, host: str = "127.0.0.1", *, extended_types: bool = False,
                 extra_cfg: dict[str, str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = 0
        self.extended_types = extended_types
        self.extra_cfg = dict(extra_cfg or {})
        self.env = dict(env or {})  # added to the child's environment (e.g. PYTHONPATH)
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self._log = None

    # -- what a test uses --------------------------------------------------------------------

    @property
    def hosts(self) -> str:
        """The connection string for kazoo / zkCli / cli_mt."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def four_letter(self, word: str, timeout: float = 5.0) -> str:
        return four_letter(self.host, self.port, word, timeout)

    def log_tail(self, n: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-n:])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.hosts} pid={self.pid}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def config(self, data_dir: Path) -> dict[str, str]:
        raise NotImplementedError

    def command(self, cfg_path: Path) -> tuple[list[str], Path | None]:
        raise NotImplementedError

    def start(self, timeout: float = START_TIMEOUT) -> "ZKServer":
        assert self.proc is None, "already started"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"zk-{self.kind}-"))
        data_dir = self.workdir / "data"
        data_dir.mkdir()
        self.port = free_port(self.host)
        cfg = self.config(data_dir)
        cfg.update(self.extra_cfg)
        cfg_path = self.workdir / "zoo.cfg"
        cfg_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        argv, cwd = self.command(cfg_path)
        self.log_path = self.workdir / "server.log"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.proc.returncode} while "
                                   f"starting:\n{self.log_tail()}")
            try:
                last = self.four_letter("ruok", timeout=2.0)
                # Apache answers imok while still loading; srvr says when it serves requests.
                if last == "imok":
                    last = self.four_letter("srvr", timeout=2.0)
                    if last and "not currently serving" not in last:
                        return
            except OSError as e:  # port not open yet
                last = repr(e)
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} server not ready after {timeout}s on {self.hosts} "
                           f"(last: {last!r}):\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop by PID: SIGTERM, wait, SIGKILL if it lingers. Idempotent."""
        proc, self.proc = self.proc, None
        stop_process(proc, STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.workdir is not None and os.environ.get("ZK_KEEP_LOGS") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> "ZKServer":
        """A fresh server (new dataDir, new port) after this one died."""
        self.stop()
        return self.start()

    def __enter__(self) -> "ZKServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _base_config(data_dir: Path, host: str, port: int, extended_types: bool) -> dict[str, str]:
    cfg = {
        "tickTime": "2000",
        "dataDir": str(data_dir),
        "clientPortAddress": host,
        "clientPort": str(port),
        "admin.enableServer": "false",
        "4lw.commands.whitelist": "*",
    }
    if extended_types:
        cfg["extendedTypesEnabled"] = "true"
    return cfg


class ApacheZK(ZKServer):
    """Debian's Apache ZooKeeper 3.8.0, standalone, as a JVM child process."""

    kind = "apache"

    def config(self, data_dir: Path) -> dict[str, str]:
        return _base_config(data_dir, self.host, self.port, self.extended_types)

    def command(self, cfg_path: Path) -> tuple[list[str], Path | None]:
        require_zookeeper()
        argv = [
            "java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.admin.enableServer=false",
            f"-Dzookeeper.log.dir={self.workdir}",
            # znode.* settings are JVM properties to Java (zoo.cfg keys to ours)
            *(f"-D{k}={v}" for k, v in self.extra_cfg.items() if k.startswith("znode.")),
            # the super digest is the JVM property zookeeper.DigestAuthenticationProvider
            # .superDigest to Java; ours reads the zoo.cfg key DigestAuthenticationProvider.superDigest
            *(f"-Dzookeeper.{k}={v}" for k, v in self.extra_cfg.items()
              if k == "DigestAuthenticationProvider.superDigest"),
            "-cp", f"{ZK_JAR}:{SLF4J_JAR}",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg_path),
        ]
        return argv, self.workdir


class OurZK(ZKServer):
    """zkserver, run from the checkout as `twistd -n --pidfile= zkserver -c zoo.cfg`."""

    kind = "ours"

    def config(self, data_dir: Path) -> dict[str, str]:
        cfg = {"storage": "memory"}
        cfg.update(_base_config(data_dir, self.host, self.port, self.extended_types))
        return cfg

    def command(self, cfg_path: Path) -> tuple[list[str], Path | None]:
        require_ours()
        # `python -m twisted` is Twisted's `twist` runner, which knows neither -n nor --pidfile;
        # this is `twistd -n --pidfile= zkserver -c zoo.cfg` with the interpreter running the
        # tests (a venv's in CI), the checkout first on sys.path ('' = cwd = the repo root).
        argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "zkserver", "-c", str(cfg_path)]
        return argv, REPO_ROOT


SERVER_KINDS = {"apache": ApacheZK, "ours": OurZK}


class Events:
    """A kazoo watch function that queues its events."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def __call__(self, event) -> None:
        self.q.put(event)

    def next(self, timeout: float = 10.0):
        return self.q.get(timeout=timeout)

    def none(self, timeout: float = 0.3) -> bool:
        """True if no event comes within `timeout` s (how long a negative check waits)."""
        try:
            ev = self.q.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected event {ev}")
