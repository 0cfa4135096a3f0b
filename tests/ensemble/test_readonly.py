"""readonlymode.enabled: a member that cannot see a quorum serves reads to read-only clients.

As ZooKeeper 3.8 (QuorumPeer starts a ReadOnlyZooKeeperServer after max(2 s, tickTime) of
LOOKING): a client whose ConnectRequest carries readOnly=true gets a session with the
ConnectResponse readOnly byte true, reads, and NOTREADONLY (-119) for writes and sync; a client
that does not allow read-only is disconnected (connection loss); `isro` answers "ro" and srvr's
Mode is "read-only". Without the setting a lone member disconnects every client. Ours reads
the setting from zoo.cfg; Java from the system property -Dreadonlymode.enabled=true.
Read-only sessions of ours are local to the member (never replicated), as ZooKeeper's with
localSessionsEnabled=true; Apache 3.8.0 with global sessions (the default) answers a new
read-only client's ConnectRequest with a bare NOTREADONLY reply header instead (observed).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import SLF4J_JAR, ZK_JAR, require_zookeeper  # noqa: E402
from tests.ensemble.conftest import Member, wait_for  # noqa: E402
from tests.ensemble.proxy import ProxyMesh  # noqa: E402
from wire import ConnectionClosed, WireClient  # noqa: E402

from core.opcodes import OpCode  # noqa: E402
from core.records import CreateRequest, PathRequest, PathWatchRequest  # noqa: E402

pytestmark = pytest.mark.timeout(60)

OPEN_ACL = []


def enable_read_only(member: Member) -> None:
    current = member.config  # (bound: the proxy mesh's server lines if it made them)
    member.config = lambda: current() + "readonlymode.enabled=true\n"  # type: ignore[method-assign]


def observe(member: Member) -> dict[str, object]:
    """What a lone member does with read-only and read-write clients, at the wire level."""
    from core.records import ACL, Id
    out: dict[str, object] = {}
    out["isro"] = member.four_letter("isro").strip()
    with WireClient(member.host, member.client_port) as w:
        w.connect(read_only=True)
        out["ro_session"] = w.session_id != 0
        out["ro_byte"] = w.read_only
        r = w.call(OpCode.getData, PathWatchRequest("/", False))
        out["read"] = r.err
        r = w.call(OpCode.create, CreateRequest("/x", b"", [ACL(31, Id("world", "anyone"))], 0))
        out["write"] = r.err
        r = w.call(OpCode.sync, PathRequest("/"))
        out["sync"] = r.err
    with WireClient(member.host, member.client_port) as w:
        try:
            w.connect(read_only=False)
            out["rw_client"] = "session"
        except (ConnectionClosed, OSError):
            out["rw_client"] = "closed"
    return out


EXPECTED = {"isro": "ro", "ro_session": True, "ro_byte": True, "read": 0, "write": -119, "sync": -119,
            "rw_client": "closed"}


def start_java(member: Member) -> subprocess.Popen[bytes]:
    require_zookeeper()
    cfg = member.dir / "zoo.cfg"
    cfg.write_text(member.config())
    log = open(member.log_path, "ab")
    argv = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Dreadonlymode.enabled=true",
            f"-Dzookeeper.log.dir={member.dir}", "-cp", f"{ZK_JAR}:{SLF4J_JAR}",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)]
    return subprocess.Popen(argv, cwd=member.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.mark.parametrize("kind", ["ours", pytest.param("java", marks=pytest.mark.needs_zookeeper)])
def test_lone_member_serves_read_only_clients(ensemble_factory, kind: str) -> None:
    """One member of three started alone, with read-only mode on: the same answers from ours
    and from Apache ZooKeeper 3.8."""
    e = ensemble_factory(3, storage="memory")
    m = e[1]
    proc = None
    try:
        if kind == "java":
            # 3.8.0 with global sessions (localSessionsEnabled=false, ours) answers a new
            # read-only client's ConnectRequest with a bare NOTREADONLY reply header (observed):
            # its read-only mode works with local sessions, which is what ours gives here
            original = type(m).config
            m.config = lambda: original(m) + "localSessionsEnabled=true\n"  # type: ignore[method-assign]
            proc = start_java(m)
        else:
            enable_read_only(m)
            m.start()
        wait_for(lambda: m.four_letter("isro").strip() == "ro", timeout=30, what="read-only mode")
        got = observe(m)
        assert got == EXPECTED, got
        assert "Mode: read-only" in m.four_letter("srvr")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)


def test_read_only_member_rejoins_and_one_without_the_setting_refuses(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="memory")
    mesh = ProxyMesh(e).start()
    ro = None
    try:
        enable_read_only(e[1])
        e.start()
        zk = KazooClient(hosts=e.hosts, timeout=4.0)
        zk.start(timeout=15)
        zk.create("/ro", b"before")
        zk.stop()
        zk.close()
        mesh.isolate(1)
        mesh.isolate(2)  # now nobody has a quorum
        wait_for(lambda: e[1].four_letter("isro").strip() == "ro", timeout=20, what="member 1 read-only")
        assert e[2].four_letter("isro").strip() == "rw" and e[2].mode() is None
        ro = KazooClient(hosts=e[1].hosts, timeout=4.0, read_only=True)
        ro.start(timeout=10)
        assert ro.client_state == KeeperState.CONNECTED_RO
        assert ro.get("/ro")[0] == b"before"
        with pytest.raises(NotReadOnlyCallError):
            ro.set("/ro", b"no")
        # a member without readonlymode.enabled: connection loss, even for a read-only client
        other = KazooClient(hosts=e[2].hosts, timeout=4.0, read_only=True)
        with pytest.raises(KazooTimeoutError):
            other.start(timeout=3)
        other.stop()
        other.close()
        mesh.heal_all()
        e.wait_serving(timeout=30)
        assert e[1].four_letter("isro").strip() == "rw"
        # the read-only session's client finds the read-write member again and writes
        wait_for(lambda: ro.client_state == KeeperState.CONNECTED, timeout=20, what="read-write reconnect")
        ro.set("/ro", b"after")
        assert ro.get("/ro")[0] == b"after"
    finally:
        if ro is not None:
            ro.stop()
            ro.close()
        mesh.stop()
    time.sleep(0)
