"""The ``sqlite`` store: the log, snapshots and metadata in one database, through SQLAlchemy Core.

Where: by default the SQLite file ``dataDir/sqlite/zk.db`` in WAL mode with
``synchronous=FULL`` (``NORMAL`` when forceSync=no: a commit then survives a crash of the
process but not of the machine). When dataLogDir is another directory, the ``txnlog`` table
(the one synced on every write) is in its own file ``dataLogDir/sqlite/log.db``, attached to
the same connection, as ZooKeeper keeps its transaction log in dataLogDir; ``truncate_after``
then removes snapshots before txns, so a crash between the two leaves no snapshot above the
log. ``sqlite.url=<SQLAlchemy URL>`` in zoo.cfg names another
database instead, and nothing is kept under dataDir. The schema uses portable types only.
``append``, the statement of every write, is compiled once by SQLAlchemy for the database's
dialect and run on the driver's connection.

On-disk format and the rules this module keeps:

``txnlog(zxid BIGINT PK, first_zxid BIGINT, crc BIGINT, payload BLOB)``
    One row per appended batch, written by one INSERT in one transaction (one sync per group
    commit). ``zxid`` is the batch's last zxid, ``first_zxid`` its first; ``payload`` holds the
    batch's txns, each as zxid (8 bytes, big-endian) + length (4 bytes, big-endian) + bytes
    (plugins.txn_batches, the rocksdb store's record too). ``crc`` is the CRC32 of first_zxid
    and zxid (8 bytes each, big-endian) followed by payload.
    Rows never overlap, so the rows holding the txns above z are those with ``zxid > z``.
    A row whose crc does not match ends ``read_from`` (logged, never returned); such rows at the
    log's tail are deleted by ``open`` (logged), so ``last_zxid`` and the next append continue
    from the last good txn. ``truncate_after`` and ``purge`` rewrite the row they cut through.
``snapshots(zxid BIGINT PK, size BIGINT, crc BIGINT)``
    One row per complete snapshot: size and CRC32 of the whole serialization, inserted in the
    last transaction of `save_snapshot`, after every chunk is durable, so a snapshot is whole or
    absent; chunks without it (a crash mid-save) are deleted by ``open``. A size or crc
    mismatch on load (corruption) falls back to the previous one (logged).
    ``save_snapshot`` runs aside (``snapshots_aside``): on its own connection, concurrently
    with the log's appends, committing about a MiB of chunks at a time so that an append never
    waits long for the write lock (the store's own, which every write transaction takes, so
    that none meets SQLite's busy handler and its sleeps); truncate_after, purge and close
    wait for it.
``snapshot_chunks(zxid BIGINT, seq INTEGER, data BLOB)``, primary key (zxid, seq)
    The snapshot's chunks as the caller gave them, in order (empty ones skipped).
``meta(key VARCHAR(255) PK, value BLOB)``
    Small named values.

Checkpoints (SQLite): the appends' connection never checkpoints the WAL (its
``wal_autocheckpoint`` is 0), so a write never waits while SQLite copies the WAL into the
database file and syncs it. A thread of the store checkpoints on the snapshot connection
instead, once the appends since the last one have grown the WAL by about
CHECKPOINT_BYTES: a PASSIVE pass beside the appends, which go on writing the WAL meanwhile,
then a RESTART for the few frames appended during it, after which the next append writes the
WAL from its start. Each append counts its payload plus one page (a commit writes whole pages:
a lone write's 150 bytes are a 4 KiB WAL frame). The WAL so stays near SQLite's default size
and is written over instead of growing: a sync of a file that grows also syncs its new size,
which made a lone write's append half again as slow.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger, Column, Integer, LargeBinary, MetaData, Row, String, Table, column, create_engine,
    delete, event, func, insert, select, table, update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from twisted.logger import Logger

from core.interfaces import StoreError, StoreInfo
from plugins import claim_store_dir, separate_log_dir
from plugins.txn_batches import decode_batch, encode_batch

if TYPE_CHECKING:
    from core.config import Config

log = Logger()

NAME = "sqlite"
_KEYS = struct.Struct(">qq")  # first_zxid, zxid: checksummed with the payload
_PAGE = 256  # batch rows fetched per query by read_from
_SNAPSHOT_COMMIT = 1 << 20  # snapshot bytes per transaction of save_snapshot
CHECKPOINT_BYTES = 4 << 20  # WAL growth between two checkpoints (SQLite's default WAL size)
RESTART_WAIT_MS = 100  # how long a checkpoint's RESTART waits for the appends in flight

# SQLite's rowid is its INTEGER PRIMARY KEY: 64 bits, and no separate index.
_ZXID = BigInteger().with_variant(Integer, "sqlite")

schema = MetaData()
# the txnlog table's schema, translated at execution: the database attached under this name
# when dataLogDir is another directory (an SQLite file there), else the main one
LOG_SCHEMA = "zklog"

txnlog = Table(
    "txnlog", schema,
    Column("zxid", _ZXID, primary_key=True, autoincrement=False),
    Column("first_zxid", BigInteger, nullable=False),
    Column("crc", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    schema=LOG_SCHEMA
)
snapshots = Table(
    "snapshots", schema,
    Column("zxid", _ZXID, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("crc", BigInteger, nullable=False),
)
snapshot_chunks = Table(
    "snapshot_chunks", schema,
    Column("zxid", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)
meta = Table(
    "meta", schema,
    Column("key", String(255), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

_INSERT_BATCH = insert(txnlog)


def _batch_row(txns: Sequence[tuple[int, bytes]]) -> dict[str, Any]:
    """The txnlog row holding `txns` (in zxid order, at least one)."""
    first, last = txns[0][0], txns[-1][0]
    payload = encode_batch(txns)
    return {"zxid": last, "first_zxid": first, "crc": _crc(first, last, payload),
            "payload": payload}


def _crc(first: int, last: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(_KEYS.pack(first, last)))


def _txns(row: Row[Any]) -> list[tuple[int, bytes]] | None:
    """The txns of a txnlog row, or None when its checksum does not match."""
    payload = row.payload
    if _crc(row.first_zxid, row.zxid, payload) != row.crc:
        return None
    try:
        return decode_batch(payload)
    except struct.error:
        return None


class SqliteStore:
    """The Store protocol over SQLAlchemy Core: an SQLite file, or the database at `url`."""

    snapshots_aside = True  # save_snapshot may run beside the other calls (see the module doc)

    def __init__(self, data_dir: str | os.PathLike[str] | None, force_sync: bool = True,
                 url: str | None = None, log_dir: str | os.PathLike[str] | None = None) -> None:
        self._data_dir = data_dir
        self._log_dir = log_dir
        self._log_file: str | None = None  # the attached log database, when dataLogDir is apart
        self._force_sync = force_sync
        self._url = url
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._location = ""
        self._last = 0
        self._append_sql = ""  # the batch INSERT, compiled once for the database's driver
        self._append_keys: tuple[str, ...] | None = None  # its positional parameter order
        self._driver_error: type[Exception] = Exception
        self._cursor: Any = None  # the driver's cursor `append` reuses
        self._snap_conn: Connection | None = None  # save_snapshot's own connection
        self._snapshot_lock = threading.Lock()  # held by save_snapshot and the checkpoints
        # held by each write transaction of the appends and of save_snapshot, and by a
        # checkpoint's RESTART: each waits for the other here, woken at once, and never in
        # SQLite's busy handler, which sleeps 1, 2, 5, 10 ... 100 ms between tries (an append
        # behind a snapshot's commit waited up to 160 ms)
        self._write_lock = threading.Lock()
        self.checkpoint_bytes = CHECKPOINT_BYTES
        self.checkpoints = 0  # done by the checkpoint thread (SQLite only)
        self._unchecked = 0  # WAL bytes written since the last checkpoint was asked for
        self._page_bytes = 0  # the SQLite database's page size (0 elsewhere)
        self._checkpoint_wanted = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._closing = False

    # -- opening and closing ------------------------------------------------------------------

    def open(self) -> None:
        """Claim dataDir/sqlite/ (unless a url is configured), create the tables if missing, and
        drop corrupt batch rows at the log's tail."""
        if self._url is None:
            path = os.path.join(claim_store_dir(self._data_dir, NAME), "zk.db")
            url = URL.create("sqlite", database=path)
            if separate_log_dir(self._data_dir, self._log_dir):
                self._log_file = os.path.join(claim_store_dir(self._log_dir, NAME), "log.db")
        else:
            try:
                url = make_url(self._url)
            except ArgumentError as e:
                raise StoreError(f"sqlite.url={self._url} is not an SQLAlchemy URL") from e
        self._location = url.render_as_string(hide_password=True)
        try:
            if url.get_backend_name() == "sqlite":
                self._engine = create_engine(url, connect_args={"check_same_thread": False})
                event.listen(self._engine, "connect", self._sqlite_pragmas)
            else:
                self._engine = create_engine(url)
            translate = {LOG_SCHEMA: LOG_SCHEMA if self._log_file else None}
            self._conn = self._engine.connect().execution_options(schema_translate_map=translate)
            schema.create_all(self._conn)
            self._conn.commit()
            self._snap_conn = self._engine.connect().execution_options(schema_translate_map=translate)
        except SQLAlchemyError as e:
            raise StoreError(f"cannot open {self._location}: {_one_line(e)}") from e
        self._compile_append(translate[LOG_SCHEMA])
        if url.get_backend_name() == "sqlite":
            self._start_checkpoints()
        self._last = self._drop_corrupt_tail()
        with self._transaction() as conn:  # a save cut short by a crash
            conn.execute(delete(snapshot_chunks).where(
                snapshot_chunks.c.zxid.not_in(select(snapshots.c.zxid))))

    def _compile_append(self, log_schema: str | None) -> None:
        """Compile the batch INSERT once: `append`, the one statement of every write, runs it
        on the driver's connection (SQLAlchemy's per-statement work doubled a lone write's
        cost)."""
        assert self._conn is not None
        target = table(txnlog.name, *(column(c.name) for c in txnlog.columns), schema=log_schema)
        compiled = insert(target).compile(dialect=self._conn.dialect)
        self._append_sql = str(compiled)
        self._append_keys = tuple(compiled.positiontup or ()) if compiled.positional else None
        self._driver_error = self._conn.dialect.loaded_dbapi.Error

    def _start_checkpoints(self) -> None:
        """The appends' connection stops checkpointing; the checkpoint thread starts."""
        assert self._conn is not None
        driver = self._conn.connection.dbapi_connection
        assert driver is not None
        driver.execute("PRAGMA wal_autocheckpoint=0")
        self._page_bytes = driver.execute("PRAGMA page_size").fetchone()[0]
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """The checkpoint thread: a checkpoint of each database file (`_checkpoint`) when asked."""
        schemas = ["main"] + ([LOG_SCHEMA] if self._log_file else [])
        while True:
            self._checkpoint_wanted.wait()
            self._checkpoint_wanted.clear()
            with self._snapshot_lock:
                if self._closing or self._snap_conn is None:
                    return
                driver = self._snap_conn.connection.dbapi_connection
                assert driver is not None
                try:
                    for schema in schemas:
                        self._checkpoint(driver, schema)
                except self._driver_error as e:  # the next append's sync reports a sick disk
                    log.warn("{location}: checkpoint failed: {err}", location=self._location, err=_one_line(e))
                    continue
                self.checkpoints += 1

    def _checkpoint(self, driver: Any, schema: str) -> None:
        """Checkpoint one database file: a PASSIVE pass copies the bulk of the WAL beside the
        appends, then a RESTART copies the few frames appended meanwhile (an append arriving
        then waits for it, a millisecond or two) and has the next append write the WAL from its
        start again, instead of growing it. The RESTART waits at most RESTART_WAIT_MS for the
        appends in flight; under a load that never leaves it room, the WAL grows until later."""
        driver.execute(f"PRAGMA {schema}.wal_checkpoint(PASSIVE)").fetchall()
        (wait_ms,) = driver.execute("PRAGMA busy_timeout").fetchone()
        driver.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
        try:
            with self._write_lock:
                driver.execute(f"PRAGMA {schema}.wal_checkpoint(RESTART)").fetchall()
        finally:
            driver.execute(f"PRAGMA busy_timeout={wait_ms}")

    def _sqlite_pragmas(self, dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        sync = "FULL" if self._force_sync else "NORMAL"
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sync}")
        if self._log_file is not None:
            cursor.execute(f"ATTACH DATABASE ? AS {LOG_SCHEMA}", (self._log_file,))
            cursor.execute(f"PRAGMA {LOG_SCHEMA}.journal_mode=WAL")
            cursor.execute(f"PRAGMA {LOG_SCHEMA}.synchronous={sync}")
        cursor.close()

    def _drop_corrupt_tail(self) -> int:
        """Delete corrupt batch rows at the log's end; return the last good zxid (0 if none)."""
        dropped = []
        with self._transaction() as conn:
            while True:
                row = conn.execute(
                    select(txnlog).order_by(txnlog.c.zxid.desc()).limit(1)).first()
                if row is None or _txns(row) is not None:
                    break
                conn.execute(delete(txnlog).where(txnlog.c.zxid == row.zxid))
                dropped.append(row)
        if dropped:
            log.warn("{location}: dropped {count} corrupt batch(es) at the log's tail, "
                     "zxids {first:#x}-{last:#x}", location=self._location, count=len(dropped),
                     first=dropped[-1].first_zxid, last=dropped[0].zxid)
        return row.zxid if row is not None else 0

    def close(self) -> None:
        """Stop the checkpoint thread, then close the connections (after a snapshot being
        saved) and the engine's pool."""
        self._closing = True
        if self._checkpointer is not None:
            self._checkpoint_wanted.set()
            self._checkpointer.join()
            self._checkpointer = None
        with self._snapshot_lock:
            if self._cursor is not None:
                self._cursor.close()
                self._cursor = None
            for conn in (self._snap_conn, self._conn):
                if conn is not None:
                    conn.close()
            if self._engine is not None:
                self._engine.dispose()
            self._conn = self._snap_conn = self._engine = None

    @contextmanager
    def _transaction(self, connection: Connection | None = None) -> Iterator[Connection]:
        """One transaction on the store's connection (or `connection`); any database error
        becomes StoreError."""
        conn = connection or self._conn
        if conn is None:
            raise StoreError(f"the {NAME} store is not open")
        try:
            with conn.begin():
                yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"{self._location}: {_one_line(e)}") from e

    @contextmanager
    def _snapshot_transaction(self) -> Iterator[Connection]:
        """One write transaction of save_snapshot, on its connection, under the write lock."""
        with self._write_lock, self._transaction(self._snap_conn) as conn:
            yield conn

    # -- the log ------------------------------------------------------------------------------

    def append(self, txns: Sequence[tuple[int, bytes]]) -> None:
        """Store the batch as one row, in one transaction (one sync), through the driver."""
        if not txns:
            return
        if txns[0][0] <= self._last:
            raise ValueError(f"zxid {txns[0][0]:#x} is not above the last, {self._last:#x}")
        if self._conn is None:
            raise StoreError(f"the {NAME} store is not open")
        row = _batch_row(txns)
        keys = self._append_keys
        params: Any = tuple(row[k] for k in keys) if keys is not None else row
        driver = self._conn.connection.dbapi_connection
        assert driver is not None
        try:
            with self._write_lock:
                if self._cursor is None:
                    self._cursor = driver.cursor()
                self._cursor.execute(self._append_sql, params)
                driver.commit()
        except self._driver_error as e:
            driver.rollback()
            raise StoreError(f"{self._location}: {_one_line(e)}") from e
        self._last = txns[-1][0]
        if self._checkpointer is not None:
            self._unchecked += len(row["payload"]) + self._page_bytes
            if self._unchecked >= self.checkpoint_bytes:
                self._unchecked = 0
                self._checkpoint_wanted.set()

    def read_from(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Every txn above `zxid` in zxid order, read a page of batch rows at a time (no
        transaction stays open between the txns yielded). Stops at a corrupt row, logged."""
        after = zxid
        while True:
            with self._transaction() as conn:
                rows = conn.execute(select(txnlog).where(txnlog.c.zxid > after)
                                    .order_by(txnlog.c.zxid).limit(_PAGE)).all()
            for row in rows:
                txns = _txns(row)
                if txns is None:
                    log.warn("{location}: corrupt log record, zxids {first:#x}-{last:#x}; "
                             "reading stops before it", location=self._location,
                             first=row.first_zxid, last=row.zxid)
                    return
                for txn in txns:
                    if txn[0] > zxid:
                        yield txn
            if len(rows) < _PAGE:
                return
            after = rows[-1].zxid

    def last_zxid(self) -> int:
        """The highest zxid logged, 0 when the log is empty."""
        return self._last

    def truncate_after(self, zxid: int) -> None:
        """Delete every snapshot above `zxid`, then every txn above it: a crash in between
        leaves txns above zxid (truncated again) but never a snapshot above the log."""
        with self._snapshot_lock, self._transaction() as conn:
            conn.execute(delete(snapshot_chunks).where(snapshot_chunks.c.zxid > zxid))
            conn.execute(delete(snapshots).where(snapshots.c.zxid > zxid))
        with self._transaction() as conn:
            row = conn.execute(select(txnlog).where(txnlog.c.zxid > zxid)
                               .order_by(txnlog.c.zxid).limit(1)).first()
            conn.execute(delete(txnlog).where(txnlog.c.zxid > zxid))
            if row is not None and row.first_zxid <= zxid:
                kept = [txn for txn in _txns(row) or () if txn[0] <= zxid]
                if kept:
                    conn.execute(_INSERT_BATCH, _batch_row(kept))
            last = conn.execute(select(func.max(txnlog.c.zxid))).scalar()
        self._last = last or 0

    # -- snapshots ----------------------------------------------------------------------------

    def save_snapshot(self, zxid: int, chunks: Iterable[bytes]) -> None:
        """Store the chunks one row each, about a MiB per transaction, then the snapshot's row
        (the module doc: it may run beside the log's appends)."""
        with self._snapshot_lock:
            with self._snapshot_transaction() as conn:
                conn.execute(delete(snapshots).where(snapshots.c.zxid == zxid))
                conn.execute(delete(snapshot_chunks).where(snapshot_chunks.c.zxid == zxid))
            crc = size = seq = 0
            rows: list[dict[str, Any]] = []
            pending = 0
            for chunk in chunks:
                if not chunk:
                    continue
                rows.append({"zxid": zxid, "seq": seq, "data": chunk})
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                pending += len(chunk)
                seq += 1
                if pending >= _SNAPSHOT_COMMIT:
                    with self._snapshot_transaction() as conn:
                        conn.execute(insert(snapshot_chunks), rows)
                    rows, pending = [], 0
            with self._snapshot_transaction() as conn:
                if rows:
                    conn.execute(insert(snapshot_chunks), rows)
                conn.execute(insert(snapshots), {"zxid": zxid, "size": size, "crc": crc})

    def load_snapshot(self) -> tuple[int, bytes] | None:
        """The newest snapshot whose size and checksum match, or None; skipped ones are logged."""
        with self._transaction() as conn:
            heads = conn.execute(select(snapshots).order_by(snapshots.c.zxid.desc())).all()
        for head in heads:
            with self._transaction() as conn:
                chunks = conn.execute(select(snapshot_chunks.c.data)
                                      .where(snapshot_chunks.c.zxid == head.zxid)
                                      .order_by(snapshot_chunks.c.seq)).scalars().all()
            crc = 0
            for chunk in chunks:
                crc = zlib.crc32(chunk, crc)
            if crc == head.crc and sum(map(len, chunks)) == head.size:
                return head.zxid, b"".join(chunks)
            log.warn("{location}: snapshot {zxid:#x} is corrupt; trying the one before it",
                     location=self._location, zxid=head.zxid)
        return None

    def purge(self, retain_count: int) -> None:
        """Keep the newest `retain_count` snapshots and the txns above the oldest of them."""
        if retain_count < 1:
            raise ValueError("retain_count must be at least 1")
        with self._snapshot_lock, self._transaction() as conn:
            kept = conn.execute(select(snapshots.c.zxid).order_by(snapshots.c.zxid.desc())
                                .limit(retain_count)).scalars().all()
            if not kept:
                return
            oldest = kept[-1]
            conn.execute(delete(snapshot_chunks).where(snapshot_chunks.c.zxid < oldest))
            conn.execute(delete(snapshots).where(snapshots.c.zxid < oldest))
            conn.execute(delete(txnlog).where(txnlog.c.zxid <= oldest))
            row = conn.execute(select(txnlog).order_by(txnlog.c.zxid).limit(1)).first()
            if row is not None and row.first_zxid <= oldest:
                tail = [txn for txn in _txns(row) or () if txn[0] > oldest]
                if tail:
                    conn.execute(update(txnlog).where(txnlog.c.zxid == row.zxid)
                                 .values(_batch_row(tail)))
                else:
                    conn.execute(delete(txnlog).where(txnlog.c.zxid == row.zxid))
            last = conn.execute(select(func.max(txnlog.c.zxid))).scalar()
        self._last = last or 0

    # -- metadata and description -------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        """The value stored under `key`, or None."""
        with self._transaction() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def put_meta(self, key: str, value: bytes) -> None:
        """Set `key` to `value`, in one transaction."""
        with self._transaction() as conn:
            conn.execute(delete(meta).where(meta.c.key == key))
            conn.execute(insert(meta), {"key": key, "value": value})

    def describe(self) -> StoreInfo:
        """What the database holds; `log_bytes` counts the batch rows' payloads."""
        with self._transaction() as conn:
            first, last, log_bytes = conn.execute(select(
                func.min(txnlog.c.first_zxid), func.max(txnlog.c.zxid),
                func.coalesce(func.sum(func.length(txnlog.c.payload)), 0))).one()
            snaps = conn.execute(select(snapshots.c.zxid, snapshots.c.size)
                                 .order_by(snapshots.c.zxid)).all()
        return StoreInfo(
            backend=NAME, location=self._location, first_zxid=first, last_zxid=last,
            snapshot_zxids=tuple(z for z, _ in snaps), log_bytes=int(log_bytes),
            snapshot_bytes=sum(size for _, size in snaps),
            extra={"force_sync": self._force_sync})


def _one_line(error: Exception) -> str:
    """The driver's message of a database error (SQLAlchemy's or the driver's own), without
    SQLAlchemy's extra lines."""
    text = str(getattr(error, "orig", None) or error)
    return text.splitlines()[0] if text else type(error).__name__


def create_store(config: Config) -> SqliteStore:
    """The backend factory: reads ``sqlite.url`` (optional), dataDir and forceSync."""
    options = dict(config.plugin_options(NAME))
    url = options.pop("url", None)
    if options:
        raise StoreError(f"unknown option {NAME}.{min(options)} (the {NAME} store knows "
                         f"{NAME}.url)")
    return SqliteStore(config.data_dir, config.force_sync, url, getattr(config, "data_log_dir", None))
