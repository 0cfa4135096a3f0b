"""The sqlite store's SQLAlchemy-URL path on PostgreSQL: the whole Store suite, and a server.

A session fixture runs a throw-away PostgreSQL cluster from Debian's ``postgresql`` package:
``initdb`` into a temp dir owned by the ``postgres`` user (initdb refuses root, so as root every
PostgreSQL command runs through ``runuser -u postgres``), then ``pg_ctl start`` on 127.0.0.1 and
a free port, its Unix socket in the temp dir too. Each test gets a database of its own, dropped
afterwards. The cluster is stopped with ``pg_ctl stop -m fast``, and killed by the postmaster's
PID if that does not work. Without PostgreSQL or psycopg the tests skip (under CI=true they fail).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from core.interfaces import Store
from core.testing.store_suite import MakeStore, StoreSuite, StubConfig, txns
from harness import OurZK, _missing

PG_START_TIMEOUT = 60
PG_STOP_TIMEOUT = 30
DRIVER = "postgresql+psycopg"


@dataclass
class Cluster:
    """A running PostgreSQL cluster on 127.0.0.1:`port`, trusting local connections."""

    port: int
    workdir: Path

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` on this cluster, user postgres."""
        return f"{DRIVER}://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE) on `postgres`."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)


def _pg_bin() -> Path:
    """The newest Debian PostgreSQL bin directory holding initdb and pg_ctl (else skip)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (pip install 'psycopg[binary]')")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        _missing("Debian's postgresql package is missing (/usr/lib/postgresql/*/bin/initdb)")
    return Path(found[-1]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    """`argv` run as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        _missing("running as root, and runuser (util-linux) is missing")
    return ["runuser", "-u", "postgres", "--", *argv]


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the session, on a free loopback port, stopped at the end."""
    from harness import free_port

    bindir = _pg_bin()
    workdir = Path(tempfile.mkdtemp(prefix="zk-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                     "-A", "trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=PG_START_TIMEOUT)
        options = f"-k {workdir} -p {port} -c listen_addresses=127.0.0.1"
        started = True
        result = subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "pg.log"),
                          "-w", "-t", str(PG_START_TIMEOUT), "-o", options, "start"]),
            capture_output=True, text=True, timeout=PG_START_TIMEOUT + 10)
        if result.returncode != 0:
            log = (workdir / "pg.log").read_text(errors="replace") if (workdir / "pg.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{log}")
        yield Cluster(port, workdir)
    finally:
        if started:
            pid = _postmaster_pid(data)
            try:
                subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                             "-w", "-t", str(PG_STOP_TIMEOUT), "stop"]),
                               capture_output=True, timeout=PG_STOP_TIMEOUT + 10)
            except subprocess.TimeoutExpired:
                pass
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid)
        shutil.rmtree(workdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


_numbers = itertools.count()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    name = f"zk_{os.getpid()}_{next(_numbers)}"
    pg_cluster.admin(f"CREATE DATABASE {name}")
    yield pg_cluster.url(name)
    pg_cluster.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _execute(url: str, sql: str) -> None:
    """Run `sql` on the database at `url`, committed (damage done behind the store's back)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


class TestSqliteStoreOnPostgres(StoreSuite):
    """The sqlite store with ``sqlite.url`` naming a PostgreSQL database: nothing under dataDir."""

    owns_data_dir = False

    @pytest.fixture
    def make_store(self, pg_url: str) -> MakeStore:
        from plugins.storage_sqlite.store import create_store

        self.url = pg_url

        def make(data_dir: Path) -> Store:
            store = create_store(cast(Any, StubConfig(data_dir=str(data_dir),
                                                     options={"sqlite.url": pg_url})))
            store.open()
            return store
        return make

    def corrupt_last_txn(self, data_dir: Path) -> None:
        _execute(self.url, "UPDATE txnlog SET payload = substring(payload from 1 for "
                           "length(payload) - 3) WHERE zxid = (SELECT max(zxid) FROM txnlog)")

    def corrupt_newest_snapshot(self, data_dir: Path) -> None:
        _execute(self.url, "UPDATE snapshot_chunks SET data = set_byte(data, 0, get_byte(data, 0) # 1) "
                           "WHERE (zxid, seq) = (SELECT zxid, seq FROM snapshot_chunks "
                           "ORDER BY zxid DESC, seq DESC LIMIT 1)")

    def test_keeps_nothing_under_data_dir(self, store: Store, data_dir: Path) -> None:
        store.append(txns(1))
        assert list(data_dir.iterdir()) == []

    def test_location_hides_nothing_it_should_not(self, store: Store) -> None:
        assert store.describe().location.startswith(f"{DRIVER}://postgres@127.0.0.1:")


# -- our server on PostgreSQL -----------------------------------------------------------------


@pytest.mark.timeout(120)
def test_server_on_postgres_keeps_data_across_restart(pg_url: str) -> None:
    """storage=sqlite with sqlite.url=<PostgreSQL>: kazoo writes, a restart (a new, empty
    dataDir even), and everything is there."""
    from kazoo.client import KazooClient

    server = OurZK(extra_cfg={"storage": "sqlite", "sqlite.url": pg_url})
    server.start()
    try:
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=15)
        try:
            zk.create("/pg", b"root")
            for i in range(50):
                zk.create(f"/pg/n{i:03d}", b"x" * i)
            zk.set("/pg", b"changed")
            zk.delete("/pg/n007")
            expected_stat = zk.get("/pg")[1]
        finally:
            zk.stop()
            zk.close()
        server.restart()  # a new dataDir and port: the data lives in PostgreSQL
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=15)
        try:
            data, stat = zk.get("/pg")
            assert data == b"changed" and stat.mzxid == expected_stat.mzxid
            children = sorted(zk.get_children("/pg"))
            assert children == sorted(f"n{i:03d}" for i in range(50) if i != 7)
            assert zk.get("/pg/n042")[0] == b"x" * 42
            zk.create("/pg/after", b"a")  # the log goes on
        finally:
            zk.stop()
            zk.close()
        assert "Traceback" not in server.log_tail(400)
    finally:
        server.stop()
