"""The ``appendlog`` store: zkserver's Store contract over plain files.

Everything lives under ``dataDir/appendlog/``:

``STORE``
    The text ``appendlog``: marks the directory as this store's. The store refuses a dataDir
    that holds ZooKeeper's ``version-2/`` or another store's marked directory (zkserver's own
    stores follow the same convention, so each recognises the other's files).
``log``
    The transaction log, append-only. Each txn is one record: a header ``>IIQ`` (CRC32, payload
    length, zxid) followed by the payload. The CRC covers the zxid's 8 bytes and the payload.
    ``append`` writes a whole batch with one ``write`` and one ``fsync`` (none with
    ``forceSync=no``). ``open`` reads the log once to index it; the first record that is short
    or fails its CRC (a torn write) ends the log: the file is cut there, so the next append
    continues from the last good txn.
``snapshot.<zxid as 16 hex digits>``
    One snapshot: a header ``>8sIQ`` (magic, CRC32 of the data, data length) and the data.
    Written to ``*.tmp``, synced, renamed into place and the directory synced, so a snapshot is
    there whole or not at all; one that fails its CRC on load is skipped for the one before.
``meta``
    The metadata as JSON (hex values), replaced the same way as a snapshot.

The core calls every method from its one storage thread, one call at a time, so nothing here
locks. This is an example: the log is one file, and ``purge`` rewrites it.
"""

from __future__ import annotations

import bisect
import json
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from core import Config, ConfigError, StoreError, StoreInfo

NAME = "appendlog"
MARKER = "STORE"
_RECORD = struct.Struct(">IIQ")  # crc32, payload length, zxid
_ZXID = struct.Struct(">Q")
_SNAPSHOT = struct.Struct(">8sIQ")  # magic, crc32, length
_MAGIC = b"ZKXSNAP1"
_READ_CHUNK = 1 << 20


def create_store(config: Config) -> AppendLogStore:
    """The factory of the ``appendlog`` BackendSpec: check our zoo.cfg keys, build the store
    (it opens nothing yet: the core calls ``open`` on its storage thread)."""
    unknown = sorted(config.plugin_options(NAME))
    if unknown:
        raise ConfigError(f"{NAME}.{unknown[0]}: the appendlog store has no such setting")
    if not config.data_dir:
        raise ConfigError(f"the {NAME} store needs dataDir")
    return AppendLogStore(Path(config.data_dir), force_sync=config.force_sync)


class AppendLogStore:
    """A Store over an append-only log file, snapshot files and a metadata file."""

    def __init__(self, data_dir: Path, force_sync: bool = True) -> None:
        self.data_dir = data_dir
        self.dir = data_dir / NAME
        self.force_sync = force_sync
        self._log: int | None = None  # the log's file descriptor while open
        self._zxids: list[int] = []  # every logged zxid, in order ...
        self._offsets: list[int] = []  # ... and where its record starts
        self._size = 0  # the log's length: where the next record goes

    # -- open and close -----------------------------------------------------------------------

    def open(self) -> None:
        """Claim dataDir/appendlog/, then index the log, cutting off a torn tail."""
        self._claim()
        self._log = os.open(self.dir / "log", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._zxids, self._offsets, good = _scan(self.dir / "log")
        self._size = os.fstat(self._log).st_size
        if good < self._size:  # a torn or corrupt tail: the log ends at the last good record
            os.ftruncate(self._log, good)
            self._sync(self._log)
            self._size = good

    def _claim(self) -> None:
        """Create and mark our directory, refusing a dataDir that holds others' files."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            for entry in sorted(self.data_dir.iterdir()):
                if entry.name == NAME or not entry.is_dir():
                    continue
                if entry.name == "version-2":
                    raise StoreError(f"dataDir {self.data_dir} holds {entry}, Apache "
                                     f"ZooKeeper's files; the {NAME} store will not open there")
                if (entry / MARKER).exists():
                    owner = (entry / MARKER).read_text().strip()
                    raise StoreError(f"dataDir {self.data_dir} holds {entry}, the files of the "
                                     f"{owner} store; the {NAME} store will not open there")
            self.dir.mkdir(exist_ok=True)
            if not (self.dir / MARKER).exists():
                (self.dir / MARKER).write_text(NAME + "\n")
        except OSError as e:
            raise StoreError(f"cannot use dataDir {self.data_dir}: {e}") from e

    def close(self) -> None:
        """Close the log file."""
        if self._log is not None:
            os.close(self._log)
            self._log = None

    # -- the log ------------------------------------------------------------------------------

    def append(self, txns: Sequence[tuple[int, bytes]]) -> None:
        """Write the batch as one run of records, then one fsync: durable on return."""
        if not txns:
            return
        assert self._log is not None, "append on a closed store"
        records = bytearray()
        offsets = []
        for zxid, payload in txns:
            offsets.append(self._size + len(records))
            crc = zlib.crc32(payload, zlib.crc32(_ZXID.pack(zxid)))
            records += _RECORD.pack(crc, len(payload), zxid)
            records += payload
        try:
            os.write(self._log, records)
            self._sync(self._log)
        except OSError as e:
            # nothing of the batch counts as stored: cut the file back to where it was
            os.ftruncate(self._log, self._size)
            raise StoreError(f"cannot append to {self.dir / 'log'}: {e}") from e
        self._zxids.extend(zxid for zxid, _ in txns)
        self._offsets.extend(offsets)
        self._size += len(records)

    def read_from(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Every txn above `zxid`: the records logged at this call, read from the file when
        the iteration starts."""
        start = bisect.bisect_right(self._zxids, zxid)
        if start == len(self._zxids):
            return iter(())
        return _read_records(self.dir / "log", self._offsets[start], self._size)

    def last_zxid(self) -> int:
        """The highest logged zxid, 0 when the log is empty."""
        return self._zxids[-1] if self._zxids else 0

    def truncate_after(self, zxid: int) -> None:
        """Cut the log after `zxid` and delete the snapshots above it."""
        assert self._log is not None, "truncate_after on a closed store"
        keep = bisect.bisect_right(self._zxids, zxid)
        if keep < len(self._zxids):
            self._size = self._offsets[keep]
            os.ftruncate(self._log, self._size)
            self._sync(self._log)
            del self._zxids[keep:], self._offsets[keep:]
        for snap_zxid, path in self._snapshots():
            if snap_zxid > zxid:
                path.unlink()
        self._sync_dir()

    # -- snapshots ----------------------------------------------------------------------------

    def save_snapshot(self, zxid: int, chunks: Iterable[bytes]) -> None:
        """Write the snapshot to a temporary file, sync it, rename it into place."""
        path = self.dir / f"snapshot.{zxid:016x}"
        tmp = path.with_suffix(".tmp")
        crc = length = 0
        with open(tmp, "wb") as f:
            f.write(_SNAPSHOT.pack(_MAGIC, 0, 0))
            for chunk in chunks:
                f.write(chunk)
                crc = zlib.crc32(chunk, crc)
                length += len(chunk)
            f.seek(0)
            f.write(_SNAPSHOT.pack(_MAGIC, crc, length))
            f.flush()
            self._sync(f.fileno())
        os.replace(tmp, path)
        self._sync_dir()

    def load_snapshot(self) -> tuple[int, bytes] | None:
        """The newest snapshot whose CRC holds, or None."""
        for zxid, path in reversed(self._snapshots()):
            data = path.read_bytes()
            if len(data) >= _SNAPSHOT.size:
                magic, crc, length = _SNAPSHOT.unpack_from(data)
                body = data[_SNAPSHOT.size:]
                if magic == _MAGIC and len(body) == length and zlib.crc32(body) == crc:
                    return zxid, body
        return None

    def _snapshots(self) -> list[tuple[int, Path]]:
        """Every snapshot file, oldest first."""
        found = []
        for path in self.dir.glob("snapshot.*"):
            suffix = path.name.split(".", 1)[1]
            if len(suffix) == 16:
                found.append((int(suffix, 16), path))
        return sorted(found)

    def purge(self, retain_count: int) -> None:
        """Keep the newest `retain_count` snapshots and the txns after the oldest kept one."""
        snapshots = self._snapshots()
        if not snapshots:
            return
        kept = snapshots[-retain_count:] if retain_count > 0 else snapshots[-1:]
        for _, path in snapshots[:len(snapshots) - len(kept)]:
            path.unlink()
        cut = bisect.bisect_right(self._zxids, kept[0][0])
        if cut:
            self._rewrite_log_from(cut)
        self._sync_dir()

    def _rewrite_log_from(self, index: int) -> None:
        """Replace the log by its records from the `index`-th on (a copy, synced, renamed)."""
        assert self._log is not None
        start = self._offsets[index]
        tmp = self.dir / "log.tmp"
        with open(self.dir / "log", "rb") as src, open(tmp, "wb") as dst:
            src.seek(start)
            while block := src.read(_READ_CHUNK):
                dst.write(block)
            dst.flush()
            self._sync(dst.fileno())
        os.close(self._log)
        os.replace(tmp, self.dir / "log")
        self._log = os.open(self.dir / "log", os.O_RDWR | os.O_APPEND)
        del self._zxids[:index]
        self._offsets = [offset - start for offset in self._offsets[index:]]
        self._size -= start

    # -- metadata -----------------------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        """A small named value, or None."""
        value = self._read_meta().get(key)
        return None if value is None else bytes.fromhex(value)

    def put_meta(self, key: str, value: bytes) -> None:
        """Set a small named value: the metadata file is replaced whole, durably."""
        meta = self._read_meta()
        meta[key] = value.hex()
        tmp = self.dir / "meta.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f)
            f.flush()
            self._sync(f.fileno())
        os.replace(tmp, self.dir / "meta")
        self._sync_dir()

    def _read_meta(self) -> dict[str, str]:
        try:
            return dict(json.loads((self.dir / "meta").read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}

    # -- describe -----------------------------------------------------------------------------

    def describe(self) -> StoreInfo:
        """Where the files are and what they hold."""
        snapshots = self._snapshots()
        return StoreInfo(
            backend=NAME,
            location=str(self.dir),
            first_zxid=self._zxids[0] if self._zxids else None,
            last_zxid=self._zxids[-1] if self._zxids else None,
            snapshot_zxids=tuple(zxid for zxid, _ in snapshots),
            log_bytes=self._size,
            snapshot_bytes=sum(path.stat().st_size for _, path in snapshots),
        )

    # -- syncing ------------------------------------------------------------------------------

    def _sync(self, fd: int) -> None:
        if self.force_sync:
            os.fsync(fd)

    def _sync_dir(self) -> None:
        """Make renames and deletions in our directory durable."""
        if self.force_sync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _scan(path: Path) -> tuple[list[int], list[int], int]:
    """Index the log: its zxids, their records' offsets, and the length of its good part."""
    zxids: list[int] = []
    offsets: list[int] = []
    good = 0
    for offset, zxid, _, good in _parse(path.read_bytes()):
        zxids.append(zxid)
        offsets.append(offset)
    return zxids, offsets, good


def _parse(data: bytes, base: int = 0) -> Iterator[tuple[int, int, bytes, int]]:
    """(offset, zxid, payload, offset after it) of each record in `data`, which starts at
    offset `base` of the log, up to the first short or corrupt record."""
    pos = 0
    while pos + _RECORD.size <= len(data):
        crc, length, zxid = _RECORD.unpack_from(data, pos)
        body = data[pos + _RECORD.size:pos + _RECORD.size + length]
        if len(body) < length or zlib.crc32(body, zlib.crc32(_ZXID.pack(zxid))) != crc:
            return
        end = pos + _RECORD.size + length
        yield base + pos, zxid, body, base + end
        pos = end


def _read_records(path: Path, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """The txns of the log's records between offsets `start` and `end`."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    for _, zxid, payload, _ in _parse(data, start):
        yield zxid, payload
