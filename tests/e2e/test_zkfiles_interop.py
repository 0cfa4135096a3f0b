"""The zkfiles store against Debian's Apache ZooKeeper 3.8 on the same data directory.

(a) Apache writes a dataDir (kazoo: data, ephemeral and sequential nodes, ACLs), stops; ours
    (storage=zkfiles) starts on it and shows the same tree, Stats, ACLs and the open session;
(b) ours writes more (and snapshots) and stops; Apache starts on the same dataDir, shows the
    same, logs no error, and its TxnLogToolkit / SnapshotFormatter read every file of ours;
(c) through the `zkserver` tool: Apache's dataDir imported into sqlite, served by ours,
    exported to a new dataDir, served by Apache: the same tree every time.
Every server: a free port on 127.0.0.1, its own dataDir, stopped by PID.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from core import cli
from tests.harness import SLF4J_JAR, ZK_JAR, ApacheZK, OurZK, ZKServer, require_zookeeper

pytestmark = [pytest.mark.needs_zookeeper, pytest.mark.timeout(240)]

SESSION_TIMEOUT = 30.0  # long enough that the session outlives the restarts
SECRET_ACL = make_digest_acl("alice", "secret", all=True)

Tree = dict[str, tuple[bytes, tuple[Any, ...], list[Any]]]


def client(hosts: str, auth: bool = True) -> KazooClient:
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT,
                     auth_data=[("digest", "alice:secret")] if auth else None)
    zk.start(timeout=20)
    return zk


def tree(zk: KazooClient, path: str = "/") -> Tree:
    """Every node but /zookeeper's: data, the whole Stat, the ACL."""
    data, stat = zk.get(path)
    acl, _ = zk.get_acls(path)
    out: Tree = {path: (data, tuple(stat), sorted((a.perms, a.id.scheme, a.id.id) for a in acl))}
    for child in sorted(zk.get_children(path)):
        child_path = f"{path.rstrip('/')}/{child}"
        if child_path != "/zookeeper":
            out.update(tree(zk, child_path))
    return out


def apache(data_dir: Path, **cfg: str) -> ZKServer:
    return ApacheZK(extra_cfg={"dataDir": str(data_dir), **cfg}).start()


def ours(data_dir: Path, **cfg: str) -> ZKServer:
    return OurZK(extra_cfg={"storage": "zkfiles", "dataDir": str(data_dir), **cfg}).start()


def stop(server: Any) -> str:
    """Stop by PID; return the server's log."""
    text = server.log_path.read_text("utf-8", "replace") if server.log_path else ""
    server.stop()
    return text


def java_errors(log: str) -> list[str]:
    """Error lines of a Java log, but the harness's four-letter probes' "Error closing a
    command socket"."""
    return [line for line in log.splitlines()
            if (" ERROR " in line or "Digests are not matching" in line
                or ("Exception" in line and " WARN " in line))
            and "command socket" not in line]


def java_tool(main_class: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["java", "-Xmx256m", "-cp", f"{ZK_JAR}:{SLF4J_JAR}", main_class, *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def write_as_java_client(zk: KazooClient) -> None:
    zk.create("/app", b"v1")
    zk.create("/app/eph", b"ephemeral", ephemeral=True)
    zk.create("/app/seq-", b"s", sequence=True)
    zk.create("/app/seq-", b"s", sequence=True)
    zk.create("/secret", b"hidden", acl=[SECRET_ACL])
    zk.set("/app", b"v2")
    zk.delete("/app/seq-0000000002")
    zk.create("/app/child", b"")
    with zk.transaction() as t:
        t.create("/multi", b"m")
        t.set_data("/app", b"v3")


@pytest.fixture(autouse=True)
def _zookeeper() -> None:
    require_zookeeper()


def test_apache_and_ours_on_one_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # (a) Apache writes
    server: ZKServer = apache(data)
    zk = client(server.hosts)
    try:
        write_as_java_client(zk)
        session = zk.client_id[0]
        written = tree(zk)
        assert written["/app/eph"][1][7] == session  # ZnodeStat.ephemeralOwner
    finally:
        java_log = stop(server)
    zk.stop()
    zk.close()
    assert not java_errors(java_log), java_errors(java_log)

    # ours starts on Apache's files: the same tree and the session with its ephemeral
    server = ours(data, snapCount="10")
    try:
        zk = client(server.hosts)
        assert tree(zk) == written
        dump = server.four_letter("dump")
        assert f"0x{session:x}" in dump.lower() and "/app/eph" in dump, dump
        # (b) ours writes more, enough for snapshots of its own
        zk.create("/ours", b"from zkserver")
        for i in range(12):
            zk.create(f"/ours/n{i}", b"%d" % i)
        zk.set("/app", b"v4")
        zk.set_acls("/ours/n0", [SECRET_ACL])
        zk.delete("/ours/n1")
        zk.create("/ours/seq-", b"", sequence=True)
        ours_tree = tree(zk)
        zk.stop()
        zk.close()
    finally:
        our_log = stop(server)
    assert "snapshot 0x" in our_log
    v2 = data / "version-2"
    assert len(list(v2.glob("log.*"))) >= 2 and len(list(v2.glob("snapshot.*"))) >= 2

    # Apache's own tools read every file
    for path in sorted(v2.glob("log.*")):
        run = java_tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", str(path))
        assert run.returncode == 0 and "Exception" not in run.stdout + run.stderr, run
        assert "EOF reached after" in run.stdout, run.stdout[-2000:]
    for path in sorted(v2.glob("snapshot.*")):
        run = java_tool("org.apache.zookeeper.server.SnapshotFormatter", str(path))
        assert run.returncode == 0 and "Exception" not in run.stdout + run.stderr, run
        assert "Last zxid" in run.stdout

    # Apache starts on ours: everything there, no error
    server = apache(data)
    try:
        zk = client(server.hosts)
        assert tree(zk) == ours_tree
        # (c) and back once more: Apache writes, ours reads
        zk.create("/again", b"java")
        zk.delete("/ours/n2")
        again = tree(zk)
        zk.stop()
        zk.close()
    finally:
        java_log = stop(server)
    assert not java_errors(java_log), java_errors(java_log)
    server = ours(data)
    try:
        zk = client(server.hosts)
        assert tree(zk) == again
        zk.stop()
        zk.close()
    finally:
        stop(server)


def test_import_and_export_with_the_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    data = tmp_path / "zk"
    server: ZKServer = apache(data)
    zk = client(server.hosts)
    try:
        write_as_java_client(zk)
        zk.stop()  # the session closes: its ephemeral goes
        zk.close()
        zk = client(server.hosts)
        written = tree(zk)
        zk.stop()
        zk.close()
    finally:
        stop(server)

    sqlite_dir = tmp_path / "sqlite-data"
    sqlite_cfg = tmp_path / "sqlite.cfg"
    sqlite_cfg.write_text(f"dataDir={sqlite_dir}\nclientPort=2191\nstorage=sqlite\n")
    assert cli.main(["import", "--from-zookeeper", str(data), "-c", str(sqlite_cfg)]) == 0
    assert "from zkfiles" in capsys.readouterr().out
    server = OurZK(extra_cfg={"storage": "sqlite", "dataDir": str(sqlite_dir)}).start()
    try:
        zk = client(server.hosts)
        assert tree(zk) == written
        zk.stop()
        zk.close()
    finally:
        stop(server)

    export = tmp_path / "exported"
    assert cli.main(["export", "-c", str(sqlite_cfg), "--to-zookeeper", str(export)]) == 0
    # our server snapshotted its tree when it stopped: the export copies that snapshot (the log
    # plus a final snapshot is test_cli_zookeeper.test_export_always_writes_a_snapshot)
    assert "copied snapshot" in capsys.readouterr().out
    server = apache(export)
    try:
        zk = client(server.hosts)
        assert tree(zk) == written
        zk.stop()
        zk.close()
    finally:
        java_log = stop(server)
    assert not java_errors(java_log), java_errors(java_log)
