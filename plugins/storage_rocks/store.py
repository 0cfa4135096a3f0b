"""The ``rocksdb`` store: one RocksDB database (rocksdict, raw mode) at ``dataDir/rocksdb/``,
its write-ahead log (where every durable write is synced) at ``dataLogDir/rocksdb/wal/`` when
dataLogDir is set to another directory, as ZooKeeper puts its transaction log there.

Writes that must be durable are, when forceSync (the default), written and then the WAL synced
(FlushWAL with sync, durable as a write with sync=True: rocksdict holds the GIL through a synced
write, which stopped the reactor thread for as long as each sync took, and lets it go through
FlushWAL); with forceSync=no they survive a crash of the process but not of the machine.
RocksDB's WAL keeps writes in order, so a crash loses at most a suffix of them.

Keys (zxids as 8 bytes big-endian, so byte order is zxid order) and the rules kept here:

``batch/<zxid>`` -> CRC32 (4 bytes, big-endian) + the txns of one append (plugins.txn_batches)
    One key per appended batch, under its last zxid: one WriteBatch, one sync, and for RocksDB
    one record to write, flush and compact per group commit rather than per txn. The CRC covers
    the key and the record. A record whose CRC does not match ends ``read_from`` (logged, never
    returned); such records at the log's tail are deleted by ``open`` (logged), so
    ``last_zxid`` and the next append continue from the last good txn. ``truncate_after``
    rewrites the batch it cuts in two under its new last zxid.
``log/<zxid>`` -> CRC32 (4 bytes, big-endian) + one txn's bytes
    The log as stores made before batches keep it (one key per txn, the CRC over the key and
    the txn's bytes): read, truncated and purged as the batches are, never written. Every zxid
    in it is below the batches', so the log reads on from it into them.
``snap/<zxid><seq: 4 bytes>`` -> a chunk of the snapshot at zxid, as the caller gave it
    Written one key at a time, so a snapshot never sits whole in memory here, and past the WAL:
    a snapshot is tens of megabytes, which the WAL would write once more and which every synced
    append would wait behind. Values of 64 KiB and more (the chunks; a big batch too) go to blob
    files, which compactions do not rewrite. The memtable is then flushed (RocksDB syncs the
    files it writes), so the chunks are durable before:
``snapdone/<zxid>`` -> size (8 bytes) + CRC32 (4) + chunk count (4) of the whole snapshot
    Written last, synced: a snapshot without it is incomplete and never loaded (``purge``
    removes it). A size, CRC or count mismatch on load falls back to the previous one (logged).
``meta/<key, UTF-8>`` -> the value
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from rocksdict import Options, Rdict, WriteBatch, WriteOptions
from twisted.logger import Logger

from core.interfaces import StoreError, StoreInfo
from plugins import claim_store_dir, separate_log_dir
from plugins.txn_batches import decode_batch, encode_batch

if TYPE_CHECKING:
    from core.config import Config

log = Logger()

NAME = "rocksdb"
_ZXID = struct.Struct(">Q")
_SEQ = struct.Struct(">I")
_CRC = struct.Struct(">I")
_HEAD = struct.Struct(">QII")  # snapdone/ value: size, crc, chunk count
_MIN_BLOB = 1 << 16

LOG, BATCH, CHUNK, DONE, META = b"log/", b"batch/", b"snap/", b"snapdone/", b"meta/"


def _end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (which ends in "/")."""
    return prefix[:-1] + b"0"


def _key(prefix: bytes, zxid: int) -> bytes:
    return prefix + _ZXID.pack(max(zxid, 0))


def _zxid(key: bytes, prefix: bytes) -> int:
    return _ZXID.unpack_from(key, len(prefix))[0]


def _key_zxid(key: bytes) -> int:
    """The zxid of a log record's key (a batch's: its last txn's)."""
    return _zxid(key, BATCH if key.startswith(BATCH) else LOG)


def _valid(key: bytes, value: bytes) -> bool:
    """Whether a log record's CRC matches its key and bytes."""
    return len(value) >= _CRC.size and _CRC.unpack_from(value)[0] == zlib.crc32(
        memoryview(value)[_CRC.size:], zlib.crc32(key))


def _record(key: bytes, body: bytes) -> bytes:
    """A log record's value: the CRC of `key` and `body`, then `body`."""
    return _CRC.pack(zlib.crc32(body, zlib.crc32(key))) + body


def _txns(key: bytes, value: bytes) -> list[tuple[int, bytes]] | None:
    """The txns of a log record (a batch/ or a log/ key's), or None when it is corrupt."""
    if not _valid(key, value):
        return None
    if key.startswith(LOG):
        return [(_zxid(key, LOG), value[_CRC.size:])]
    try:
        return decode_batch(value, _CRC.size)
    except struct.error:
        return None


class RocksStore:
    """The Store protocol over one RocksDB database, keys as described in the module."""

    # save_snapshot may run beside the other calls (RocksDB takes writes from several threads):
    # the log's appends go on meanwhile; truncate_after, purge and close wait for it
    snapshots_aside = True

    def __init__(self, data_dir: str | os.PathLike[str] | None,
                 force_sync: bool = True, log_dir: str | os.PathLike[str] | None = None) -> None:
        self._data_dir = data_dir
        self._log_dir = log_dir
        self._force_sync = force_sync
        self._path = ""
        self._db: Rdict | None = None
        self._nosync = WriteOptions()
        self._snapshot_lock = threading.Lock()  # held by save_snapshot, truncate_after, purge, close
        self._no_wal = WriteOptions()
        # a property, which rocksdict's stub declares as a method
        self._no_wal.disable_wal = True  # type: ignore[method-assign, assignment]
        self._last = 0

    # -- opening and closing ------------------------------------------------------------------

    def open(self) -> None:
        """Claim dataDir/rocksdb/ (and dataLogDir/rocksdb/ for the WAL when dataLogDir is
        another directory), open (or create) the database, drop a corrupt log tail."""
        self._path = claim_store_dir(self._data_dir, NAME)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_enable_blob_files(True)
        options.set_min_blob_size(_MIN_BLOB)
        if separate_log_dir(self._data_dir, self._log_dir):
            options.set_wal_dir(os.path.join(claim_store_dir(self._log_dir, NAME), "wal"))
        try:
            self._db = Rdict(self._path, options)
        except Exception as e:  # rocksdict raises plain Exceptions carrying RocksDB's status
            raise StoreError(f"cannot open {self._path}: {e}") from e
        self._last = self._drop_corrupt_tail()

    def _drop_corrupt_tail(self) -> int:
        """Delete corrupt records at the log's end (batches, then the log before batches when
        none is left); return the last good zxid (0 if none)."""
        db = self._opened()
        dropped = []
        last = 0
        it = db.iter()
        for prefix in (BATCH, LOG):
            it.seek_for_prev(_end(prefix))
            while it.valid() and it.key().startswith(prefix) and _txns(it.key(), it.value()) is None:
                dropped.append(it.key())
                it.prev()
            if it.valid() and it.key().startswith(prefix):
                last = _zxid(it.key(), prefix)
                break
        del it
        if dropped:
            batch = WriteBatch(raw_mode=True)
            for key in dropped:
                batch.delete(key)
            self._write(batch)
            log.warn("{path}: dropped {count} corrupt record(s) at the log's tail, "
                     "zxids {first:#x}-{last:#x}", path=self._path, count=len(dropped),
                     first=_key_zxid(dropped[-1]), last=_key_zxid(dropped[0]))
        return last

    def close(self) -> None:
        """Flush and close the database (once a snapshot being saved is)."""
        with self._snapshot_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _opened(self) -> Rdict:
        if self._db is None:
            raise StoreError(f"the {NAME} store is not open")
        return self._db

    def _write(self, batch: WriteBatch, options: WriteOptions | None = None) -> None:
        """Apply a batch atomically, durable when forceSync (see the module doc), or as
        `options` say; a failure becomes StoreError."""
        try:
            db = self._opened()
            db.write(batch, options or self._nosync)
            if options is None and self._force_sync:
                db.flush_wal(True)
        except StoreError:
            raise
        except Exception as e:  # rocksdict raises plain Exceptions carrying RocksDB's status
            raise StoreError(f"{self._path}: write failed: {e}") from e

    def _flush(self) -> None:
        """Write the memtable to files, synced (what was written past the WAL is durable then)."""
        try:
            self._opened().flush(True)
        except Exception as e:  # rocksdict raises plain Exceptions carrying RocksDB's status
            raise StoreError(f"{self._path}: flush failed: {e}") from e

    def _range(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The (key, value) pairs whose key starts with `prefix`, from `start` on, in order."""
        for key, value in self._opened().items(from_key=start or prefix):
            assert isinstance(key, bytes)
            if not key.startswith(prefix):
                return
            yield key, value

    # -- the log ------------------------------------------------------------------------------

    def append(self, txns: Sequence[tuple[int, bytes]]) -> None:
        """Write the batch as one record under its last zxid (one sync)."""
        if not txns:
            return
        if txns[0][0] <= self._last:
            raise ValueError(f"zxid {txns[0][0]:#x} is not above the last, {self._last:#x}")
        key = _key(BATCH, txns[-1][0])
        batch = WriteBatch(raw_mode=True)
        batch.put(key, _record(key, encode_batch(txns)))
        self._write(batch)
        self._last = txns[-1][0]

    def read_from(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Every txn above `zxid` in zxid order (the log before batches, then the batches from
        the one holding zxid + 1). Stops at a corrupt record, logged."""
        for prefix in (LOG, BATCH):
            for key, value in self._range(prefix, _key(prefix, zxid + 1)):
                txns = _txns(key, value)
                if txns is None:
                    log.warn("{path}: corrupt log record at zxid {zxid:#x}; reading stops before it",
                             path=self._path, zxid=_zxid(key, prefix))
                    return
                for txn in txns:
                    if txn[0] > zxid:
                        yield txn

    def last_zxid(self) -> int:
        """The highest zxid logged, 0 when the log is empty."""
        return self._last

    def truncate_after(self, zxid: int) -> None:
        """Delete every txn and every snapshot above `zxid`, in one synced WriteBatch; the
        batch holding zxid + 1 keeps its txns up to `zxid`, under the last of them."""
        with self._snapshot_lock:
            batch = WriteBatch(raw_mode=True)
            for prefix in (LOG, BATCH, CHUNK, DONE):
                batch.delete_range(_key(prefix, zxid + 1), _end(prefix))
            self._cut(batch, zxid, keep_above=False)
            self._write(batch)
            self._last = self._edge_zxid()

    def _cut(self, batch: WriteBatch, zxid: int, keep_above: bool) -> None:
        """Add to `batch` the rewrite of the batch record holding zxid + 1, if it holds zxid too:
        its txns above `zxid` (keep_above) or up to it, under the last of them."""
        for key, value in self._range(BATCH, _key(BATCH, zxid + 1)):
            txns = _txns(key, value) or []
            if txns and txns[0][0] <= zxid:
                kept = [txn for txn in txns if (txn[0] > zxid) == keep_above]
                if kept:
                    cut = _key(BATCH, kept[-1][0])
                    batch.put(cut, _record(cut, encode_batch(kept)))
            return

    def _edge_zxid(self) -> int:
        """The highest zxid logged, read from the database (0 when the log is empty)."""
        it = self._opened().iter()
        for prefix in (BATCH, LOG):
            it.seek_for_prev(_end(prefix))
            if it.valid() and it.key().startswith(prefix):
                return _zxid(it.key(), prefix)
        return 0

    # -- snapshots ----------------------------------------------------------------------------

    def save_snapshot(self, zxid: int, chunks: Iterable[bytes]) -> None:
        """Write the chunks one key each past the WAL, flush them, then write the snapshot's
        snapdone/ key, synced (beside the log's appends: `snapshots_aside`)."""
        with self._snapshot_lock:
            prefix = _key(CHUNK, zxid)
            batch = WriteBatch(raw_mode=True)
            batch.delete(_key(DONE, zxid))
            batch.delete_range(prefix, _key(CHUNK, zxid + 1))
            self._write(batch, self._nosync)
            crc = size = seq = 0
            for chunk in chunks:
                if not chunk:
                    continue
                batch = WriteBatch(raw_mode=True)
                batch.put(prefix + _SEQ.pack(seq), bytes(chunk))
                self._write(batch, self._no_wal)
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                seq += 1
            self._flush()
            batch = WriteBatch(raw_mode=True)
            batch.put(_key(DONE, zxid), _HEAD.pack(size, crc, seq))
            self._write(batch)

    def load_snapshot(self) -> tuple[int, bytes] | None:
        """The newest complete snapshot whose size, CRC and chunk count match, or None;
        skipped ones are logged."""
        heads = list(self._range(DONE))
        for key, head in reversed(heads):
            zxid = _zxid(key, DONE)
            chunks = [value for _, value in self._range(_key(CHUNK, zxid))]
            crc = 0
            for chunk in chunks:
                crc = zlib.crc32(chunk, crc)
            if (len(head) == _HEAD.size
                    and _HEAD.unpack(head) == (sum(map(len, chunks)), crc, len(chunks))):
                return zxid, b"".join(chunks)
            log.warn("{path}: snapshot {zxid:#x} is corrupt; trying the one before it",
                     path=self._path, zxid=zxid)
        return None

    def _snapshot_zxids(self) -> list[int]:
        return [_zxid(key, DONE) for key, _ in self._range(DONE)]

    def purge(self, retain_count: int) -> None:
        """Keep the newest `retain_count` snapshots and the txns above the oldest of them;
        incomplete snapshots go too. One synced WriteBatch."""
        if retain_count < 1:
            raise ValueError("retain_count must be at least 1")
        with self._snapshot_lock:
            kept = self._snapshot_zxids()[-retain_count:]
            if not kept:
                return
            batch = WriteBatch(raw_mode=True)
            low = 0
            for zxid in kept:
                batch.delete_range(_key(DONE, low), _key(DONE, zxid))
                batch.delete_range(_key(CHUNK, low), _key(CHUNK, zxid))
                low = zxid + 1
            batch.delete_range(_key(CHUNK, low), _end(CHUNK))
            for prefix in (LOG, BATCH):
                batch.delete_range(_key(prefix, 0), _key(prefix, kept[0] + 1))
            self._cut(batch, kept[0], keep_above=True)
            self._write(batch)
            self._last = self._edge_zxid()

    # -- metadata and description -------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        """The value stored under `key`, or None."""
        return self._opened().get(META + key.encode())  # type: ignore[no-any-return]

    def put_meta(self, key: str, value: bytes) -> None:
        """Set `key` to `value` (synced when forceSync)."""
        batch = WriteBatch(raw_mode=True)
        batch.put(META + key.encode(), bytes(value))
        self._write(batch)

    def describe(self) -> StoreInfo:
        """What the database holds; `log_bytes` counts the log's values (CRCs included)."""
        first = last = None
        log_bytes = 0
        for prefix in (LOG, BATCH):
            for key, value in self._range(prefix):
                if first is None:
                    first = (_txns(key, value) or [(_zxid(key, prefix), b"")])[0][0]
                last = _zxid(key, prefix)
                log_bytes += len(value)
        heads = [(_zxid(key, DONE), _HEAD.unpack(value)[0]) for key, value in self._range(DONE)
                 if len(value) == _HEAD.size]
        return StoreInfo(
            backend=NAME, location=self._path, first_zxid=first, last_zxid=last,
            snapshot_zxids=tuple(z for z, _ in heads), log_bytes=log_bytes,
            snapshot_bytes=sum(size for _, size in heads),
            extra={"force_sync": self._force_sync})


def create_store(config: Config) -> RocksStore:
    """The backend factory: reads dataDir, dataLogDir (the WAL's place) and forceSync; the
    store has no options of its own."""
    options = config.plugin_options(NAME)
    if options:
        raise StoreError(f"unknown option {NAME}.{min(options)} (the {NAME} store has none)")
    return RocksStore(config.data_dir, config.force_sync, getattr(config, "data_log_dir", None))

