"""Ensembles of real member processes on loopback: ours (twistd zkserver) and Java ZooKeeper 3.8.

``ensemble_factory(n=3, java=(), storage="sqlite", tick=300, observers=())`` -> an `Ensemble`
(not started); `java` and `observers` name member sids.
Each member runs on its own 127.0.0.x address with free client/quorum/election ports, its own
dataDir holding myid, and its own log file; every process is stopped by its PID when the test
ends (SIGCONT first if it was paused), and its directory removed unless ZK_KEEP_LOGS is set.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from core.testing.process import stop_process
import pytest

TESTS_DIR = Path(__file__).resolve().parent.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from harness import (  # noqa: E402
    REPO_ROOT, SLF4J_JAR, ZK_JAR, four_letter, free_port, in_ci, require_ours, require_zookeeper,
)

STOP_TIMEOUT = 10.0
MODES = ("leader", "follower", "observer")


class Member:
    """One ensemble member process (ours or Java)."""

    def __init__(self, ensemble: Ensemble, sid: int, host: str, java: bool, observer: bool = False) -> None:
        self.ensemble = ensemble
        self.sid = sid
        self.host = host
        self.java = java
        self.observer = observer
        self.client_port = free_port(host)
        self.quorum_port = free_port(host)
        self.election_port = free_port(host)
        while self.election_port == self.quorum_port:
            self.election_port = free_port(host)
        self.dir = ensemble.root / f"member{sid}"
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(parents=True)
        (self.data_dir / "myid").write_text(str(sid))
        self.log_path = self.dir / "member.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self._log = None

    @property
    def kind(self) -> str:
        return "java" if self.java else "ours"

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def __repr__(self) -> str:
        return f"<member {self.sid} {self.kind} {self.hosts} pid={self.pid}>"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def config(self) -> str:
        e = self.ensemble
        lines = [
            f"tickTime={e.tick}", "initLimit=10", "syncLimit=5",
            # an isolated member retries its election with a backoff that doubles up to this cap
            # (ZooKeeper's default is 60 s): after a heal it rejoins within the cap
            "fastleader.maxNotificationInterval=2000",
            f"dataDir={self.data_dir}", f"clientPort={self.client_port}", f"clientPortAddress={self.host}",
            "admin.enableServer=false", "4lw.commands.whitelist=*", f"storage={e.storage}",
        ]
        if self.observer:
            lines.append("peerType=observer")
        for m in e.members:
            role = ":observer" if m.observer else ""
            lines.append(f"server.{m.sid}={m.host}:{m.quorum_port}:{m.election_port}{role}")
        return "\n".join(lines) + "\n"

    def start(self) -> Member:
        assert not self.alive(), f"{self} is running"
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(self.config())
        self._log = open(self.log_path, "ab")
        if self.java:
            require_zookeeper()
            argv = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    f"-Dzookeeper.log.dir={self.dir}", "-cp", f"{ZK_JAR}:{SLF4J_JAR}",
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)]
            cwd = self.dir
        else:
            require_ours()
            argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                    "-n", "--pidfile=", "zkserver", "-c", str(cfg)]
            cwd = REPO_ROOT
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.paused = False
        return self

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it lingers. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None and self.paused:
            os.kill(proc.pid, signal.SIGCONT)
        stop_process(proc, STOP_TIMEOUT)
        self.paused = False
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """kill -9."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
        self.paused = False
        if self._log is not None:
            self._log.close()
            self._log = None

    def replace(self, java: bool) -> Member:
        """Stop this member (SIGTERM) and start the other kind on the same dataDir, myid and zoo.cfg
        (a rolling replacement step; README "Migrating from Apache ZooKeeper")."""
        self.stop()
        self.java = java
        return self.start()

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def wipe(self) -> None:
        """Remove everything in the data dir but myid (the member must be stopped)."""
        assert not self.alive()
        for p in self.data_dir.iterdir():
            if p.name != "myid":
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    def four_letter(self, word: str, timeout: float = 2.0) -> str:
        return four_letter(self.host, self.client_port, word, timeout)

    def mode(self) -> str | None:
        """leader / follower / observer from `srvr`, or None (not serving, not answering)."""
        try:
            text = self.four_letter("srvr")
        except OSError:
            return None
        found = re.search(r"^Mode: (\w+)", text, re.M)
        return found.group(1) if found else None

    def zxid(self) -> int | None:
        try:
            found = re.search(r"^Zxid: (0x[0-9a-f]+)", self.four_letter("srvr"), re.M)
        except OSError:
            return None
        return int(found.group(1), 16) if found else None

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])


class Ensemble:
    """N members with their server lists; nothing runs until `start`."""

    def __init__(self, n: int = 3, java: Sequence[int] = (), storage: str = "sqlite", tick: int = 300,
                 observers: Sequence[int] = ()) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zk-ensemble-"))
        self.tick = tick
        self.storage = storage
        base = random.randrange(20, 200)
        self.members: list[Member] = []
        for sid in range(1, n + 1):
            self.members.append(Member(self, sid, f"127.0.0.{base + sid}", sid in java, sid in observers))

    def __getitem__(self, sid: int) -> Member:
        return self.members[sid - 1]

    @property
    def hosts(self) -> str:
        """A connection string naming every member."""
        return ",".join(m.hosts for m in self.members)

    def start(self, timeout: float = 40.0) -> Ensemble:
        for m in self.members:
            m.start()
        self.wait_serving(timeout=timeout)
        return self

    def running(self) -> list[Member]:
        return [m for m in self.members if m.alive() and not m.paused]

    def wait_serving(self, members: Sequence[Member] | None = None, timeout: float = 40.0) -> Member:
        """Until every given (default: running) member serves and exactly one leads; the leader."""
        deadline = time.monotonic() + timeout
        modes: dict[int, str | None] = {}
        while time.monotonic() < deadline:
            group = list(members) if members is not None else self.running()
            for m in group:
                if not m.alive():
                    raise RuntimeError(f"{m} exited:\n{m.log_tail()}")
            modes = {m.sid: m.mode() for m in group}
            leaders = [sid for sid, mode in modes.items() if mode == "leader"]
            if all(mode in MODES for mode in modes.values()) and len(leaders) == 1:
                return self[leaders[0]]
            time.sleep(0.1)
        tails = "\n".join(f"--- {m} ---\n{m.log_tail()}" for m in self.members)
        raise TimeoutError(f"ensemble not serving after {timeout}s: {modes}\n{tails}")

    def leader(self) -> Member:
        return self.wait_serving()

    def followers(self) -> list[Member]:
        return [m for m in self.running() if m.mode() == "follower"]

    def by_mode(self, mode: str) -> list[Member]:
        return [m for m in self.running() if m.mode() == mode]

    def stop(self) -> None:
        for m in self.members:
            try:
                m.stop()
            except Exception:  # noqa: BLE001 - stop every member whatever happens
                m.kill()
        if os.environ.get("ZK_KEEP_LOGS") is None:
            shutil.rmtree(self.root, ignore_errors=True)


def java_available() -> bool:
    return ZK_JAR.exists() and SLF4J_JAR.exists() and shutil.which("java") is not None


@pytest.fixture
def ensemble_factory() -> Iterator[Callable[..., Ensemble]]:
    made: list[Ensemble] = []

    def make(n: int = 3, java: Sequence[int] = (), storage: str = "sqlite", tick: int = 300,
             observers: Sequence[int] = ()) -> Ensemble:
        if java and not java_available():
            if in_ci():
                pytest.fail("CI=true and Debian's zookeeper package (Java ZooKeeper 3.8) is missing", pytrace=False)
            pytest.skip("Debian's zookeeper package (Java ZooKeeper 3.8) is missing")
        e = Ensemble(n, java, storage, tick, observers)
        made.append(e)
        return e

    try:
        yield make
    finally:
        for e in made:
            e.stop()


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    """Poll `predicate` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached in {timeout}s (last: {last!r})")


__all__ = ["Ensemble", "Member", "wait_for", "socket"]


def close(*clients: Any) -> None:
    """Stop and close kazoo clients, ignoring the ones that are None or already broken."""
    for zk in clients:
        if zk is None:
            continue
        try:
            zk.stop()
            zk.close()
        except Exception:  # noqa: BLE001 - cleanup
            pass
