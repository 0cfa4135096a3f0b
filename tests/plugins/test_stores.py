"""The built-in stores run the Store conformance suite; a broken store fails it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pluggy
import pytest
from rocksdict import Options, Rdict
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from core import hookspecs
from core.interfaces import BackendSpec, Store, StoreError
from core.testing.store_suite import MakeStore, Stores, StoreSuite, StubConfig, txns
from plugins.storage_memory import hooks as memory_hooks
from plugins.storage_rocks import hooks as rocks_hooks
from plugins.storage_rocks.store import BATCH, CHUNK, DONE, LOG
from plugins.storage_sqlite import hooks as sqlite_hooks

pytest_plugins = ["pytester"]


def maker(factory: Callable[[StubConfig], Store], separate_log_dir: bool = False,
          **options: str) -> MakeStore:
    """A make_store for the suite: the backend's factory on a stand-in config, then open();
    with `separate_log_dir`, dataLogDir is `<dataDir>-log` beside dataDir."""
    def make(data_dir: Path) -> Store:
        log_dir = str(log_dir_of(data_dir)) if separate_log_dir else None
        store = factory(StubConfig(data_dir=str(data_dir), data_log_dir=log_dir, options=options))
        store.open()
        return store
    return make


def log_dir_of(data_dir: Path) -> Path:
    """The dataLogDir the separate-log-dir suites use for `data_dir`."""
    return data_dir.parent / (data_dir.name + "-log")


def spec(hooks: object) -> BackendSpec:
    """The one BackendSpec a store plugin's hooks module offers."""
    [backend] = hooks.zk_storage_backends()  # type: ignore[attr-defined]
    return backend


# -- damaging files on disk, as a crash or a bad disk would -----------------------------------


def corrupt_sqlite_log(data_dir: Path, zxid: int | None = None) -> None:
    """Cut the end off the payload of the batch row holding `zxid` (default: the newest)."""
    with closing(sqlite3.connect(data_dir / "sqlite" / "zk.db")) as db:
        key, payload = db.execute(
            "SELECT zxid, payload FROM txnlog WHERE zxid >= ? ORDER BY zxid LIMIT 1"
            if zxid is not None else
            "SELECT zxid, payload FROM txnlog ORDER BY zxid DESC LIMIT 1",
            () if zxid is None else (zxid,)).fetchone()
        db.execute("UPDATE txnlog SET payload = ? WHERE zxid = ?", (payload[:-3], key))
        db.commit()


def corrupt_rocks_log(data_dir: Path, zxid: int | None = None) -> None:
    """Put a torn value (its end cut off) at the log record holding `zxid` (default: the
    newest); a record is a batch, under its last zxid."""
    db = Rdict(str(data_dir / "rocksdb"), Options(raw_mode=True))
    it = db.iter()
    if zxid is None:
        it.seek_for_prev(b"batch0")
    else:
        it.seek(BATCH + zxid.to_bytes(8, "big"))
    key, value = it.key(), it.value()
    del it
    db[key] = value[:-3]
    db.close()


class TestMemoryStore(StoreSuite):
    """The memory store: no restarts, no files."""

    durable = False
    owns_data_dir = False

    @pytest.fixture
    def make_store(self) -> MakeStore:
        return maker(spec(memory_hooks).factory)


class TestSqliteStore(StoreSuite):
    """The sqlite store on its file, dataDir/sqlite/zk.db."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        return maker(spec(sqlite_hooks).factory)

    def corrupt_last_txn(self, data_dir: Path) -> None:
        corrupt_sqlite_log(data_dir)

    def corrupt_newest_snapshot(self, data_dir: Path) -> None:
        with closing(sqlite3.connect(data_dir / "sqlite" / "zk.db")) as db:
            zxid, seq, data = db.execute(
                "SELECT zxid, seq, data FROM snapshot_chunks ORDER BY zxid DESC, seq DESC"
            ).fetchone()
            db.execute("UPDATE snapshot_chunks SET data = ? WHERE zxid = ? AND seq = ?",
                       (bytes([data[0] ^ 1]) + data[1:], zxid, seq))
            db.commit()


class TestSqliteUrlStore(StoreSuite):
    """The sqlite store on a database named by ``sqlite.url``: nothing under dataDir."""

    owns_data_dir = False

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        return maker(spec(sqlite_hooks).factory, **{"sqlite.url": f"sqlite:///{tmp_path}/zk.db"})

    def test_keeps_nothing_under_data_dir(self, store: Store, data_dir: Path) -> None:
        store.append(txns(1))
        assert list(data_dir.iterdir()) == []


class TestRocksStore(StoreSuite):
    """The rocksdb store, dataDir/rocksdb/."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        return maker(spec(rocks_hooks).factory)

    def corrupt_last_txn(self, data_dir: Path) -> None:
        corrupt_rocks_log(data_dir)

    def corrupt_newest_snapshot(self, data_dir: Path) -> None:
        db = Rdict(str(data_dir / "rocksdb"), Options(raw_mode=True))
        it = db.iter()
        it.seek_for_prev(b"snapdone0")
        zxid = it.key()[len(DONE):]
        it.seek_for_prev(CHUNK + zxid + b"\xff" * 4)
        key, value = it.key(), it.value()
        del it
        db[key] = bytes([value[0] ^ 1]) + value[1:]
        db.close()


# -- beyond the suite -------------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """The Twisted log events emitted during the test."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.mark.parametrize("corrupt, factory", [
    (corrupt_sqlite_log, spec(sqlite_hooks).factory),
    (corrupt_rocks_log, spec(rocks_hooks).factory),
], ids=["sqlite", "rocksdb"])
def test_read_from_stops_at_a_corrupt_record_mid_log(
        corrupt: Callable[[Path, int], None], factory: Callable[[StubConfig], Store],
        tmp_path: Path, logged: list[LogEvent]) -> None:
    make = maker(factory)
    store = make(tmp_path)
    for batch in (txns(1, 2), txns(3), txns(4, 5)):
        store.append(batch)
    store.close()
    corrupt(tmp_path, 3)
    store = make(tmp_path)
    try:
        assert list(store.read_from(0)) == txns(1, 2)
        assert list(store.read_from(3)) == txns(4, 5)
    finally:
        store.close()
    [line] = [formatEvent(e) for e in logged]
    assert "corrupt log record" in line and "0x3" in line


@pytest.mark.parametrize("corrupt, factory", [
    (corrupt_sqlite_log, spec(sqlite_hooks).factory),
    (corrupt_rocks_log, spec(rocks_hooks).factory),
], ids=["sqlite", "rocksdb"])
def test_open_drops_a_torn_tail_with_one_log_line(
        corrupt: Callable[[Path], None], factory: Callable[[StubConfig], Store],
        tmp_path: Path, logged: list[LogEvent]) -> None:
    make = maker(factory)
    store = make(tmp_path)
    store.append(txns(1, 2))
    store.append(txns(3))
    store.close()
    corrupt(tmp_path)
    store = make(tmp_path)
    store.close()
    [line] = [formatEvent(e) for e in logged]
    assert "dropped 1 corrupt" in line and "0x3" in line


@pytest.mark.parametrize("first, second", [
    (sqlite_hooks, rocks_hooks), (rocks_hooks, sqlite_hooks)], ids=["sqlite", "rocksdb"])
def test_a_store_refuses_another_stores_data_dir(first: object, second: object,
                                                 tmp_path: Path) -> None:
    owner, intruder = spec(first), spec(second)
    maker(owner.factory)(tmp_path).close()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(StoreError) as raised:
        maker(intruder.factory)(tmp_path)
    assert str(tmp_path / owner.name) in str(raised.value)
    assert f"the {owner.name} store" in str(raised.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_hooks_offer_the_three_stores() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for hooks in (memory_hooks, sqlite_hooks, rocks_hooks):
        pm.register(hooks)
    pm.check_pending()
    offered = [b for answer in pm.hook.zk_storage_backends() for b in answer]
    assert sorted(b.name for b in offered) == ["memory", "rocksdb", "sqlite"]


@pytest.mark.parametrize("hooks", [memory_hooks, sqlite_hooks, rocks_hooks],
                         ids=["memory", "sqlite", "rocksdb"])
def test_unknown_option_is_refused(hooks: object, tmp_path: Path) -> None:
    backend = spec(hooks)
    with pytest.raises(StoreError, match=f"{backend.name}.colour"):
        backend.factory(StubConfig(data_dir=str(tmp_path), options={
            f"{backend.name}.colour": "blue"}))


@pytest.mark.parametrize("force_sync, synchronous", [(True, 2), (False, 1)])
def test_sqlite_pragmas(force_sync: bool, synchronous: int, tmp_path: Path) -> None:
    store = spec(sqlite_hooks).factory(StubConfig(data_dir=str(tmp_path), force_sync=force_sync))
    store.open()
    try:
        with store._transaction() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == synchronous
    finally:
        store.close()


def test_sqlite_failed_append_raises_and_stores_nothing(tmp_path: Path) -> None:
    store = maker(spec(sqlite_hooks).factory)(tmp_path)
    store.append(txns(1))
    with closing(sqlite3.connect(tmp_path / "sqlite" / "zk.db")) as db:
        db.execute("CREATE TRIGGER full_disk BEFORE INSERT ON txnlog "
                   "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        db.commit()
        with pytest.raises(StoreError, match="disk is full"):
            store.append(txns(2, 3))
        assert store.last_zxid() == 1
        assert list(store.read_from(0)) == txns(1)
        db.execute("DROP TRIGGER full_disk")
        db.commit()
    store.append(txns(2, 3))
    assert list(store.read_from(0)) == txns(1, 2, 3)
    store.close()


def test_rocks_failed_write_raises(tmp_path: Path) -> None:
    store = maker(spec(rocks_hooks).factory)(tmp_path)
    store._db.close()  # the database goes away beneath the store
    with pytest.raises(StoreError, match="write failed"):
        store.append(txns(1))
    assert store.last_zxid() == 0


# -- the suite catches broken stores ----------------------------------------------------------

BROKEN_STORES = textwrap.dedent('''
    import pytest
    from core.testing.store_suite import StoreSuite
    from plugins.storage_sqlite.store import SqliteStore

    class ForgetfulStore(SqliteStore):
        """Loses the newest txn on every restart."""
        def open(self):
            super().open()
            if self.last_zxid():
                self.truncate_after(self.last_zxid() - 1)

    class GreedyStore(SqliteStore):
        """read_from(zxid) returns the txn at zxid too."""
        def read_from(self, zxid):
            return super().read_from(zxid - 1)

    def make_store_of(cls):
        @pytest.fixture
        def make_store(self):
            def make(data_dir):
                store = cls(str(data_dir))
                store.open()
                return store
            return make
        return make_store

    class TestForgetful(StoreSuite):
        make_store = make_store_of(ForgetfulStore)

    class TestGreedy(StoreSuite):
        make_store = make_store_of(GreedyStore)

    class TestHonest(StoreSuite):
        make_store = make_store_of(SqliteStore)
''')


def test_the_suite_fails_broken_stores(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken=BROKEN_STORES)
    # pytest-twisted, when installed, cannot run inside a run it already drives
    recorder = pytester.inline_run("-p", "no:cacheprovider", "-p", "no:twisted")
    passed, _, failed = recorder.listoutcomes()
    failed_tests = {report.nodeid.split("::", 1)[1] for report in failed}
    passed_tests = {report.nodeid.split("::", 1)[1] for report in passed}
    assert not {t for t in failed_tests if t.startswith("TestHonest::")}
    assert {"TestForgetful::test_log_survives_reopen",
            "TestForgetful::test_truncate_survives_reopen",
            "TestGreedy::test_read_from_bounds",
            "TestGreedy::test_truncate_removes_the_snapshots_above"} <= failed_tests
    assert {"TestForgetful::test_append_then_read_in_order",
            "TestGreedy::test_meta_survives_reopen"} <= passed_tests


class TestSqliteStoreWithDataLogDir(StoreSuite):
    """The sqlite store with dataLogDir apart: the txnlog in dataLogDir/sqlite/log.db."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        return maker(spec(sqlite_hooks).factory, separate_log_dir=True)

    def test_the_log_is_in_data_log_dir(self, stores: Stores, data_dir: Path) -> None:
        store = stores.open(data_dir)
        store.append(txns(1, 2, 3))
        store.save_snapshot(2, [b"state"])
        stores.close(store)
        with sqlite3.connect(log_dir_of(data_dir) / "sqlite" / "log.db") as db:
            assert db.execute("SELECT count(*) FROM txnlog").fetchone()[0] == 1  # one batch row
        with sqlite3.connect(data_dir / "sqlite" / "zk.db") as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            assert "txnlog" not in tables and "snapshots" in tables


class TestRocksStoreWithDataLogDir(StoreSuite):
    """The rocksdb store with dataLogDir apart: its WAL in dataLogDir/rocksdb/wal/."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        return maker(spec(rocks_hooks).factory, separate_log_dir=True)

    def test_the_wal_is_in_data_log_dir(self, stores: Stores, data_dir: Path) -> None:
        store = stores.open(data_dir)
        store.append(txns(1, 2, 3))
        wal = log_dir_of(data_dir) / "rocksdb" / "wal"
        assert [p for p in wal.iterdir() if p.suffix == ".log" and p.stat().st_size > 0]
        assert not list((data_dir / "rocksdb").glob("*.log"))
        stores.close(store)


@pytest.mark.parametrize("hooks", [sqlite_hooks, rocks_hooks], ids=["sqlite", "rocksdb"])
def test_appends_go_on_while_a_snapshot_is_saved_aside(hooks: object, tmp_path: Path) -> None:
    """`snapshots_aside`: save_snapshot on another thread holds no lock an append needs."""
    store = maker(spec(hooks).factory)(tmp_path)
    assert store.snapshots_aside
    halfway, resume = threading.Event(), threading.Event()

    def chunks() -> Iterator[bytes]:
        yield b"a" * (1 << 20)  # one transaction's worth: committed before the pause
        halfway.set()
        assert resume.wait(10)
        yield b"b" * 1000

    saver = threading.Thread(target=store.save_snapshot, args=(7, chunks()))
    saver.start()
    try:
        assert halfway.wait(10)
        store.append(txns(1, 2))  # the save is mid-way: the log is not held back
        assert store.last_zxid() == 2
        assert store.load_snapshot() is None  # not whole yet
    finally:
        resume.set()
        saver.join(10)
    assert store.load_snapshot() == (7, b"a" * (1 << 20) + b"b" * 1000)
    store.close()


@pytest.mark.parametrize("hooks", [sqlite_hooks, rocks_hooks], ids=["sqlite", "rocksdb"])
def test_purge_waits_for_a_snapshot_being_saved_aside(hooks: object, tmp_path: Path) -> None:
    """A purge meanwhile would take the unfinished snapshot's chunks for an abandoned save's."""
    store = maker(spec(hooks).factory)(tmp_path)
    store.append(txns(1, 2))
    halfway, resume = threading.Event(), threading.Event()

    def chunks() -> Iterator[bytes]:
        yield b"a" * (1 << 20)
        halfway.set()
        assert resume.wait(10)
        yield b"b" * 1000

    saver = threading.Thread(target=store.save_snapshot, args=(2, chunks()))
    saver.start()
    purger = threading.Thread(target=store.purge, args=(1,))
    try:
        assert halfway.wait(10)
        purger.start()
        purger.join(0.2)  # bounded: it must still be waiting
        assert purger.is_alive()
    finally:
        resume.set()
        saver.join(10)
        purger.join(10)
    assert store.load_snapshot() == (2, b"a" * (1 << 20) + b"b" * 1000)
    store.close()


@pytest.mark.parametrize("separate", [False, True])
def test_sqlite_checkpoints_on_its_own_thread_not_in_the_appends(tmp_path: Path, separate: bool) -> None:
    """The appends' connection never checkpoints the WAL; the store's thread does (PASSIVE), once
    the appends wrote about checkpoint_bytes to the WAL, and the log reads back whole."""
    store = maker(spec(sqlite_hooks).factory, separate_log_dir=separate)(tmp_path)
    store.checkpoint_bytes = 10_000  # the first append's page and payload stay below it
    appends = store._conn.connection.dbapi_connection  # type: ignore[attr-defined]
    assert appends.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    log_file = (log_dir_of(tmp_path) / "sqlite" / "log.db") if separate else tmp_path / "sqlite" / "zk.db"
    store.append(txns(*range(1, 6)))  # a few hundred bytes: no checkpoint asked for yet
    before = log_file.stat().st_size
    store.append(txns(*range(6, 100)))
    deadline = time.monotonic() + 10
    while store.checkpoints < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # a real thread; bounded wait
    assert store.checkpoints == 1
    assert log_file.stat().st_size > before  # the log's pages reached the database file
    assert [z for z, _ in store.read_from(0)] == list(range(1, 100))
    store.close()
    assert store.checkpoints == 1  # close stopped the thread


def test_sqlite_checkpoints_count_pages_and_the_wal_is_then_written_over(tmp_path: Path) -> None:
    """A lone write's few bytes still write a whole page to the WAL: appends of a few bytes ask
    for a checkpoint once their pages add up; after it, the WAL is written over from its start
    instead of growing (a growing file's sync costs more)."""
    store = maker(spec(sqlite_hooks).factory)(tmp_path)
    store.checkpoint_bytes = 3 * store._page_bytes  # type: ignore[attr-defined]
    wal = tmp_path / "sqlite" / "zk.db-wal"
    for z in (1, 2, 3):
        store.append(txns(z))  # a few bytes each
    deadline = time.monotonic() + 10
    while store.checkpoints < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # a real thread; bounded wait
    assert store.checkpoints == 1
    size = wal.stat().st_size
    store.append(txns(4))
    store.append(txns(5))  # below the next checkpoint: no other thread touches the WAL
    assert wal.stat().st_size == size
    assert [z for z, _ in store.read_from(0)] == [1, 2, 3, 4, 5]
    store.close()


def test_sqlite_open_deletes_the_chunks_of_a_save_cut_short(tmp_path: Path) -> None:
    store = maker(spec(sqlite_hooks).factory)(tmp_path)
    store.save_snapshot(3, [b"whole"])
    store.close()
    with closing(sqlite3.connect(tmp_path / "sqlite" / "zk.db")) as db:
        db.execute("INSERT INTO snapshot_chunks (zxid, seq, data) VALUES (9, 0, x'00')")  # no head row
        db.commit()
    store = maker(spec(sqlite_hooks).factory)(tmp_path)
    assert store.load_snapshot() == (3, b"whole")
    with closing(sqlite3.connect(tmp_path / "sqlite" / "zk.db")) as db:
        assert db.execute("SELECT DISTINCT zxid FROM snapshot_chunks").fetchall() == [(3,)]
    store.close()


def test_rocks_reads_on_from_the_log_kept_one_key_per_txn(tmp_path: Path) -> None:
    """A database whose log is one key per txn (as the store kept it before batches): read, then
    appended to in batches, read on across both, truncated and purged across both."""
    make = maker(spec(rocks_hooks).factory)
    make(tmp_path).close()
    db = Rdict(str(tmp_path / "rocksdb"), Options(raw_mode=True))
    for zxid, data in txns(1, 2, 3):
        key = LOG + zxid.to_bytes(8, "big")
        db[key] = zlib.crc32(data, zlib.crc32(key)).to_bytes(4, "big") + data
    db.close()
    store = make(tmp_path)
    try:
        assert store.last_zxid() == 3
        assert list(store.read_from(0)) == txns(1, 2, 3)
        store.append(txns(4, 5, 6))
        store.append(txns(7))
        assert list(store.read_from(2)) == txns(3, 4, 5, 6, 7)
        assert list(store.read_from(5)) == txns(6, 7)
        info = store.describe()
        assert (info.first_zxid, info.last_zxid) == (1, 7)
        store.truncate_after(5)  # through a batch
        assert list(store.read_from(0)) == txns(1, 2, 3, 4, 5) and store.last_zxid() == 5
        store.truncate_after(2)  # through the old log, every batch gone
        assert list(store.read_from(0)) == txns(1, 2) and store.last_zxid() == 2
        store.append(txns(3, 4, 5))
        store.save_snapshot(4, [b"snapshot"])
        store.purge(1)  # the old log, and the batch's txns up to 4
        assert list(store.read_from(0)) == txns(5) and store.last_zxid() == 5
    finally:
        store.close()
    store = make(tmp_path)
    try:
        assert list(store.read_from(0)) == txns(5) and store.last_zxid() == 5
    finally:
        store.close()


def test_rocks_keeps_one_record_per_appended_batch(tmp_path: Path) -> None:
    store = maker(spec(rocks_hooks).factory)(tmp_path)
    store.append(txns(1, 2, 3))
    store.append(txns(4))
    store.close()
    db = Rdict(str(tmp_path / "rocksdb"), Options(raw_mode=True))
    keys = [k for k in db.keys() if k.startswith((LOG, BATCH))]
    db.close()
    assert keys == [BATCH + (3).to_bytes(8, "big"), BATCH + (4).to_bytes(8, "big")]


_SAVE_AND_DIE = """
import os, sys
from core.testing.store_suite import StubConfig, txns
from plugins.storage_rocks.store import create_store
store = create_store(StubConfig(data_dir=sys.argv[1], data_log_dir=None, options={}))
store.open()
store.append(txns(1, 2))
store.save_snapshot(2, [bytes([i]) * (100_000 + i) for i in range(3)] + [b"tail"])
store.append(txns(3))
os._exit(0)  # as kill -9: nothing closed or flushed
"""


@pytest.mark.timeout(60)
def test_rocks_snapshot_written_past_the_wal_survives_a_crash(tmp_path: Path) -> None:
    """The chunks skip the WAL; the flush before snapdone/ makes them durable all the same."""
    subprocess.run([sys.executable, "-c", _SAVE_AND_DIE, str(tmp_path)], check=True, timeout=50,
                   cwd=Path(__file__).resolve().parents[2])
    store = maker(spec(rocks_hooks).factory)(tmp_path)
    try:
        assert store.load_snapshot() == (2, b"".join(bytes([i]) * (100_000 + i) for i in range(3)) + b"tail")
        assert [z for z, _ in store.read_from(0)] == [1, 2, 3]
    finally:
        store.close()
