"""Our Fast Leader Election in one ensemble with two Apache ZooKeeper 3.8 members.

Sids 1 and 2 are Debian's ZooKeeper (JVM child processes, each on its own 127.0.0.x with free
ports); sid 3 is our `FastLeaderElection` on the test's reactor (pytest-twisted). Three phases:

1. all fresh (zxid 0, epoch 0): sid 3 has the best vote, so the Java members vote for it and our
   look() decides LEADING in round 1 (its quorum can only hold Java LOOKING votes for sid 3);
2. our member stops (we run no leader, so the Java followers give up after initLimit); the Java
   members elect sid 2 between themselves, and ``srvr`` says which one leads;
3. our member restarts and looks again: it learns the leader from the Java members'
   FOLLOWING/LEADING answers (outofelection) and decides the leader ``srvr`` reports.

Skipped without Debian's zookeeper package, failed instead under CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, task

from core.testing.process import stop_process
from core.config import parse
from plugins.consensus_zab.election import FastLeaderElection, Vote
from plugins.consensus_zab.packets import Notification, ServerState
from tests.harness import SLF4J_JAR, ZK_JAR, four_letter, free_port, require_zookeeper

HOSTS = {1: "127.0.0.41", 2: "127.0.0.42", 3: "127.0.0.43"}
TICK_MS = 500
INIT_LIMIT = 10
SYNC_LIMIT = 5

pytestmark = pytest.mark.needs_zookeeper


class JavaMember:
    """One Apache ZooKeeper 3.8 quorum member, started with its zoo.cfg and stopped by PID."""

    def __init__(self, sid: int, workdir: Path, server_lines: dict[int, str]) -> None:
        self.sid = sid
        self.host = HOSTS[sid]
        self.client_port = free_port(self.host)
        self.dir = workdir / f"zk{sid}"
        data = self.dir / "data"
        data.mkdir(parents=True)
        (data / "myid").write_text(f"{sid}\n")
        cfg = [f"tickTime={TICK_MS}", f"initLimit={INIT_LIMIT}", f"syncLimit={SYNC_LIMIT}",
               f"dataDir={data}", f"clientPort={self.client_port}", f"clientPortAddress={self.host}",
               "admin.enableServer=false", "4lw.commands.whitelist=*"]
        cfg += [f"server.{n}={line}" for n, line in sorted(server_lines.items())]
        self.cfg = self.dir / "zoo.cfg"
        self.cfg.write_text("\n".join(cfg) + "\n")
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dzookeeper.log.dir={self.dir}", "-cp", f"{ZK_JAR}:{SLF4J_JAR}",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.cfg)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, 10)

    def mode(self) -> str | None:
        """``srvr``'s Mode (leader/follower), None while not serving or unreachable."""
        try:
            text = four_letter(self.host, self.client_port, "srvr", timeout=1.0)
        except OSError:
            return None
        m = re.search(r"^Mode: (\w+)", text, re.M)
        return m.group(1) if m else None

    def went_following(self) -> bool:
        """The member's log says it entered FOLLOWING (QuorumPeer logs the state at INFO)."""
        text = self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""
        return re.search(r"QuorumPeer - FOLLOWING$", text, re.M) is not None

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-n:])


def _sleep(seconds: float) -> defer.Deferred:
    from twisted.internet import reactor
    return task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="zk-election-java-"))
    yield path
    if not os.environ.get("ZK_KEEP_LOGS"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(150)
@pytest_twisted.inlineCallbacks
def test_java_members_vote_for_us_then_we_follow_theirs(workdir: Path):
    require_zookeeper()
    from twisted.internet import reactor

    lines = {sid: f"{HOSTS[sid]}:{free_port(HOSTS[sid])}:{free_port(HOSTS[sid])}" for sid in HOSTS}
    data = workdir / "ours"
    data.mkdir()
    (data / "myid").write_text("3\n")
    ours_cfg = parse("".join(f"{k}\n" for k in [
        f"tickTime={TICK_MS}", f"initLimit={INIT_LIMIT}", f"syncLimit={SYNC_LIMIT}", f"dataDir={data}",
        f"clientPort={free_port(HOSTS[3])}", *(f"server.{sid}={line}" for sid, line in lines.items())]))
    java = {sid: JavaMember(sid, workdir, lines) for sid in (1, 2)}
    heard: list[tuple[int, Notification]] = []
    fle = FastLeaderElection(ours_cfg, reactor, 3)
    fle.on_notification = lambda sid, n: heard.append((sid, n))
    fle2: FastLeaderElection | None = None
    try:
        # phase 1: everyone fresh; ours is listening and looking before the JVMs are up
        fle.start()
        d = fle.look(0, 0)
        for m in java.values():
            m.start()
        d.addTimeout(60, reactor)
        vote = yield d
        assert vote == Vote(3, 0, 1, 0), vote
        assert fle.state == ServerState.LEADING
        java_votes_for_us = {sid for sid, n in heard
                             if n.state == ServerState.LOOKING and n.leader == 3 and n.election_epoch == 1}
        assert java_votes_for_us, f"no Java member voted for sid 3: {heard}"
        # both Java members decide FOLLOWING sid 3 (one may learn it from the other's answer)
        deadline = time.monotonic() + 20
        while not all(m.went_following() for m in java.values()):
            assert time.monotonic() < deadline, "a Java member did not follow sid 3:\n" + "\n".join(
                m.log_tail() for m in java.values())
            yield _sleep(0.1)

        # phase 2: we go away without leading; the Java members give up on us and elect sid 2
        fle.stop()
        deadline = time.monotonic() + 90
        modes: dict[int, str | None] = {}
        while time.monotonic() < deadline:
            modes = {sid: m.mode() for sid, m in java.items()}
            if sorted(filter(None, modes.values())) == ["follower", "leader"]:
                break
            for sid, m in java.items():
                assert m.proc is not None and m.proc.poll() is None, f"Java {sid} exited:\n{m.log_tail()}"
            yield _sleep(0.5)
        else:
            pytest.fail(f"Java members did not elect a leader (modes {modes}):\n{java[1].log_tail()}")
        java_leader = next(sid for sid, mode in modes.items() if mode == "leader")
        assert java_leader == 2  # the higher sid of the two, same (zero) zxid and epoch

        # phase 3: we come back (round 1 again) and follow the leader the Java members report
        heard.clear()
        fle2 = FastLeaderElection(ours_cfg, reactor, 3)
        fle2.on_notification = lambda sid, n: heard.append((sid, n))
        fle2.start()
        d2 = fle2.look(0, 0)
        d2.addTimeout(30, reactor)
        vote2 = yield d2
        assert vote2.leader == java_leader
        assert fle2.state == ServerState.FOLLOWING
        assert fle2.logical_clock == vote2.election_epoch >= 2
        states = {(sid, ServerState(n.state)) for sid, n in heard}
        assert (java_leader, ServerState.LEADING) in states
    finally:
        fle.stop()
        if fle2 is not None:
            fle2.stop()
        for m in java.values():
            m.stop()
        yield _sleep(0.05)
