"""Start-up on a data directory the store cannot use: one line, a non-zero status, nothing
touched (ours only; `twistd -n zkserver` as a child process).

A store that cannot open stops start-up before the reactor runs: its one line on stderr and
status 2 (as a bad zoo.cfg). What only recovery finds (a damaged page deep in the SQLite file,
a corrupt log record with good txns after it) stops start-up once the reactor runs: one
critical log line and status 1. Either way the line names the file or directory, there is no
traceback, and every file in dataDir keeps its bytes (RocksDB's own info LOG aside).

The unreadable-dataDir case (chmod 000) means nothing to root, who reads it anyway; it is
skipped when the tests run as root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import pytest
from kazoo.client import KazooClient

from core.testing.store_suite import StubConfig
from harness import REPO_ROOT, OurZK, require_ours
from plugins.storage_rocks.store import create_store as create_rocks_store
from plugins.storage_sqlite.store import create_store as create_sqlite_store

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile="]
RUN_TIMEOUT = 60
NODES = 120  # znodes written by the server that makes the populated dataDir


def start(tmp_path: Path, data_dir: Path, storage: str) -> subprocess.CompletedProcess[str]:
    """Run `twistd -n zkserver` on `data_dir` until it exits (it must: start-up fails)."""
    require_ours()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={data_dir}\nclientPortAddress=127.0.0.1\n"
                   f"clientPort=0\nadmin.enableServer=false\nstorage={storage}\n")
    return subprocess.run([*TWISTD, "zkserver", "-c", str(cfg)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)


def the_line(result: subprocess.CompletedProcess[str], status: int, *names: str) -> str:
    """Check a failed start-up: `status`, no traceback, and one line saying why, naming each
    of `names`: the stderr line (status 2) or the one critical log line (status 1)."""
    output = result.stdout + result.stderr
    assert result.returncode == status, output
    assert "Traceback" not in output
    if status == 2:
        lines = result.stderr.strip().splitlines()
    else:
        lines = [line for line in result.stdout.splitlines() if "#critical]" in line]
    assert len(lines) == 1, output
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def contents(root: Path) -> dict[str, str]:
    """Every file under `root` (RocksDB's info logs aside) -> the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("LOG")}


# -- another store's files, or ZooKeeper's --------------------------------------------------


def make_sqlite(data_dir: Path) -> None:
    """dataDir with the sqlite store's files."""
    store = create_sqlite_store(cast(Any, StubConfig(data_dir=str(data_dir))))
    store.open()
    store.append([(1, b"one")])
    store.close()


def make_rocks(data_dir: Path) -> None:
    """dataDir with the rocksdb store's files."""
    store = create_rocks_store(cast(Any, StubConfig(data_dir=str(data_dir))))
    store.open()
    store.append([(1, b"one")])
    store.close()


def make_zookeeper(data_dir: Path) -> None:
    """dataDir with Apache ZooKeeper's version-2/."""
    (data_dir / "version-2").mkdir(parents=True)
    (data_dir / "version-2" / "log.100000001").write_bytes(b"ZKLG" + bytes(60))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("make, owner_dir, storage", [
    (make_rocks, "rocksdb", "sqlite"),
    (make_sqlite, "sqlite", "rocksdb"),
    (make_zookeeper, "version-2", "sqlite"),
    (make_zookeeper, "version-2", "rocksdb"),
], ids=["rocksdb-files-sqlite-store", "sqlite-files-rocksdb-store", "zookeeper-files-sqlite",
        "zookeeper-files-rocksdb"])
def test_another_stores_data_dir(tmp_path: Path, make: Callable[[Path], None], owner_dir: str,
                                 storage: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make(data_dir)
    before = contents(data_dir)
    line = the_line(start(tmp_path, data_dir, storage), 2, str(data_dir / owner_dir))
    assert f"the {storage} store will not open there" in line
    assert contents(data_dir) == before
    assert not (data_dir / storage).exists()


# -- a dataDir that cannot be made or read ---------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("storage", ["sqlite", "rocksdb"])
def test_data_dir_under_a_file(tmp_path: Path, storage: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a directory")
    data_dir = blocker / "data"
    the_line(start(tmp_path, data_dir, storage), 2, str(data_dir), "Not a directory")
    assert blocker.read_bytes() == b"not a directory"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("storage", ["sqlite", "rocksdb"])
def test_unreadable_data_dir(tmp_path: Path, storage: str) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop root from reading dataDir")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0)
    try:
        the_line(start(tmp_path, data_dir, storage), 2, str(data_dir), "Permission denied")
    finally:
        data_dir.chmod(0o755)
    assert list(data_dir.iterdir()) == []


# -- damaged store files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A dataDir written by our server with storage=sqlite: NODES creates, one batch row each,
    after snapshot.0 only."""
    data_dir = tmp_path_factory.mktemp("populated") / "data"
    server = OurZK(extra_cfg={"storage": "sqlite", "dataDir": str(data_dir)})
    server.start()
    try:
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=15)
        try:
            zk.create("/p")
            for i in range(NODES):
                zk.create(f"/p/n{i:04d}", b"z" * 300)
        finally:
            zk.stop()
            zk.close()
    finally:
        server.stop()
    # without the snapshot taken at the stop, so that start-up replays every txn from the log,
    # compacted, so that the middle of the file is the log's b-tree
    with closing(sqlite3.connect(data_dir / "sqlite" / "zk.db")) as db:
        db.execute("DELETE FROM snapshot_chunks WHERE zxid > 0")
        db.execute("DELETE FROM snapshots WHERE zxid > 0")
        db.commit()
        db.execute("VACUUM")
    yield data_dir


def copy_of(populated: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the populated dataDir; its SQLite file."""
    data_dir = tmp_path / "data"
    shutil.copytree(populated, data_dir)
    return data_dir, data_dir / "sqlite" / "zk.db"


@pytest.mark.timeout(90)
def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "sqlite").mkdir(parents=True)
    (data_dir / "sqlite" / "STORE").write_text("sqlite\n")
    db = data_dir / "sqlite" / "zk.db"
    db.write_bytes(os.urandom(1 << 14))
    before = contents(data_dir)
    the_line(start(tmp_path, data_dir, "sqlite"), 2, str(db), "not a database")
    assert contents(data_dir) == before


@pytest.mark.timeout(90)
def test_sqlite_file_with_damaged_pages(populated: Path, tmp_path: Path) -> None:
    data_dir, db = copy_of(populated, tmp_path)
    with open(db, "r+b") as f:  # pages in the middle of the txnlog table's b-tree
        f.seek(db.stat().st_size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 3 * 4096)
    before = contents(data_dir)
    the_line(start(tmp_path, data_dir, "sqlite"), 1, str(db), "malformed")
    assert contents(data_dir) == before


@pytest.mark.timeout(90)
def test_corrupt_log_record_with_good_txns_after_it(populated: Path, tmp_path: Path) -> None:
    """A record that fails its checksum, not at the log's tail: acknowledged txns follow it, so
    the server must not start with the log cut short there (it would also hand out zxids the
    log already holds)."""
    data_dir, db = copy_of(populated, tmp_path)
    with closing(sqlite3.connect(db)) as conn:
        zxids = [z for (z,) in conn.execute("SELECT zxid FROM txnlog ORDER BY zxid")]
        middle = zxids[len(zxids) // 2]
        (payload,) = conn.execute("SELECT payload FROM txnlog WHERE zxid = ?", (middle,)).fetchone()
        conn.execute("UPDATE txnlog SET payload = ? WHERE zxid = ?", (payload[:-3], middle))
        conn.commit()
    before = contents(data_dir)
    line = the_line(start(tmp_path, data_dir, "sqlite"), 1, str(db), "corrupt record")
    assert f"0x{zxids[-1]:x}" in line and f"0x{middle - 1:x}" in line
    assert contents(data_dir) == before


@pytest.mark.timeout(90)
def test_rocksdb_with_a_corrupt_manifest(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    make_rocks(data_dir)
    [manifest] = (data_dir / "rocksdb").glob("MANIFEST-*")
    manifest.write_bytes(os.urandom(300))
    before = contents(data_dir)
    the_line(start(tmp_path, data_dir, "rocksdb"), 2, str(data_dir / "rocksdb"), "Corruption")
    assert contents(data_dir) == before
