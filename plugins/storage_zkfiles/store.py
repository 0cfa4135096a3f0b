"""The ``zkfiles`` store: Apache ZooKeeper's own data directory (quorum.md 2.9, 4).

Layout, as ZooKeeper 3.8 keeps it (FileTxnSnapLog)::

    dataDir/version-2/snapshot.<zxid hex>    snapshots, the bytes the server hands over
    dataDir/version-2/acceptedEpoch          decimal ASCII, written via <name>.tmp + rename
    dataDir/version-2/currentEpoch           (both: get_meta/put_meta of those keys)
    dataDir/version-2/zkserver.meta          other meta keys (ours; ZooKeeper ignores it)
    dataLogDir/version-2/log.<zxid hex>      transaction logs (dataLogDir defaults to dataDir)
    dataDir/myid                             never touched

A log file is ``FileHeader {int magic 'ZKLG', int version 2, long dbid 0}`` followed by entries
``long adler32(payload), int len, payload, byte 'B'``; the file is extended with zeros in
preAllocSize steps (64 MiB by default; ``zkfiles.preAllocSize`` or ZooKeeper's ``preAllocSize``
key, in KiB) whenever the write position comes within 4096 bytes of its end. A zero length
ends a file. A file is named after its first txn; a new one is started at the first append
after open, after each snapshot and after a truncation. Every append batch is one write and,
with forceSync, one fdatasync.

The payload is ZooKeeper's log-entry bytes (TxnHeader + body [+ TxnDigest]), written as given;
the only thing read from it is the TxnHeader's zxid (bytes 12-19), which a ZooKeeper log keeps
nowhere else. Snapshots are written as given (core.snapshot.serialize writes ZooKeeper's
format) and checked on load the way their seals allow: header ``ZKSN`` version 2, the file
ending in ``int 1, '/'`` and the last seal (Adler32 of every byte before it) matching.

Damage (quorum.md 4.2, 4.4):

- the last record of the newest log file torn (no 'B', a length past the end, or a checksum
  mismatch followed only by zeros) is cut off at open (zeroed; logged), as is a newest log file
  left holding no txn at all (removed; logged);
- a torn record inside an older file ends that file (ZooKeeper does the same; logged);
- any other checksum mismatch, a log or snapshot of another magic or version, or a truncated
  header of an older log: StoreError, one line naming the file and the reason;
- a snapshot whose seals do not match is skipped for the one before it (logged); if every
  snapshot is bad and there is a log, load_snapshot refuses (StoreError) rather than replay a
  log whose beginning is gone.

``truncate_after`` removes every txn above the target in every file (later files deleted, the
file holding the target cut), unlike ZooKeeper 3.8.0 (quorum.md 2.4), and the snapshots above
it. ``purge`` follows ZooKeeper's PurgeTxnLog: keep the newest N snapshots, the log file that
holds the oldest kept snapshot's zxid and all later ones; whole files only, so txns older than
that snapshot may remain in the first kept file.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from twisted.logger import Logger

from core.interfaces import StoreError, StoreInfo
from plugins import MARKER

if TYPE_CHECKING:
    from core.config import Config

log = Logger()

NAME = "zkfiles"
VERSION_DIR = "version-2"
LOG_PREFIX = "log."
SNAP_PREFIX = "snapshot."
LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
FORMAT_VERSION = 2
LOG_DBID = 0
#: ZooKeeper's default preallocation (zookeeper.preAllocSize, 65536 KiB).
DEFAULT_PREALLOC_KIB = 64 * 1024
#: The file is extended when the write position comes this close to its end (FilePadding).
PAD_MARGIN = 4096
#: Meta keys kept in ZooKeeper's own files, the rest go to META_FILE.
EPOCH_KEYS = ("acceptedEpoch", "currentEpoch")
META_FILE = "zkserver.meta"

_HEADER = struct.Struct(">iiq")  # FileHeader: magic, version, dbid
_ENTRY = struct.Struct(">qi")  # checksum, length
_ZXID = struct.Struct(">q")  # TxnHeader.zxid at byte 12 (after clientId, cxid)
_ZXID_OFFSET = 12
_TXN_HEADER_SIZE = 32
_EOR = 0x42  # 'B'
_SEAL_END = b"\x00\x00\x00\x01/"  # ustring "/"
_SEAL = 13  # long adler32 + ustring "/"


@dataclass(frozen=True)
class _Stop:
    """Where and why reading a log file stopped before a clean end."""

    offset: int
    reason: str
    torn: bool  # a torn write (ends the file) rather than a checksum mismatch
    tail: bool  # nothing but zeros (or EOF) follows the damaged entry


class _LogFile:
    """One ``log.<zxid>`` file: its entries read in order, and where reading stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = int(path.name[len(LOG_PREFIX):], 16)
        self.stop: _Stop | None = None
        self.end = _HEADER.size  # the offset after the last good entry read so far

    def entries(self) -> Iterator[tuple[int, bytes, int]]:
        """(zxid, payload, end offset) of each good entry; sets `stop` at damage. Raises
        StoreError for a header of another magic or version; a short header is a torn file."""
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise StoreError(f"cannot read {self.path}: {e.strerror}") from e
        with f:
            if not check_log_header(self.path, f.read(_HEADER.size)):
                self.stop = _Stop(0, "truncated file header", torn=True, tail=True)
                self.end = 0
                return
            size = os.fstat(f.fileno()).st_size
            pos = _HEADER.size
            while True:
                head = f.read(_ENTRY.size)
                if len(head) < _ENTRY.size:
                    if head.strip(b"\0"):
                        self.stop = _Stop(pos, "truncated entry header", True, True)
                    return
                checksum, length = _ENTRY.unpack(head)
                if length == 0 and checksum == 0:
                    return  # preallocated zeros: the end
                after = pos + _ENTRY.size + length + 1
                if length <= 0 or after > size:
                    self.stop = _Stop(pos, f"entry length {length} runs past the end of the "
                                      f"file", True, _zeros_after(f, pos + _ENTRY.size))
                    return
                body = f.read(length + 1)
                if len(body) != length + 1 or body[-1] != _EOR:
                    self.stop = _Stop(pos, "entry without its end mark 'B' (a torn write)",
                                      True, _zeros_after(f, pos + _ENTRY.size))
                    return
                payload = body[:-1]
                if zlib.adler32(payload) != checksum:
                    self.stop = _Stop(pos, f"checksum mismatch (stored {checksum:#x}, "
                                      f"computed {zlib.adler32(payload):#x})", False,
                                      _zeros_after(f, after))
                    return
                if length < _TXN_HEADER_SIZE:
                    self.stop = _Stop(pos, f"entry of {length} bytes is shorter than a "
                                      f"TxnHeader", False, _zeros_after(f, after))
                    return
                (zxid,) = _ZXID.unpack_from(payload, _ZXID_OFFSET)
                pos = self.end = after
                yield zxid, payload, after


def _zeros_after(f: BinaryIO, offset: int) -> bool:
    """Whether nothing but zeros follows `offset` in the open file `f` (checked up to 1 MiB:
    a preallocated tail)."""
    f.seek(offset)
    rest = f.read(1 << 20)
    return not rest.strip(b"\0")


def check_log_header(path: Path, header: bytes) -> bool:
    """Check a log file's FileHeader: False when it is cut short (a torn new file); StoreError
    when it is of another magic or version."""
    if len(header) < _HEADER.size:
        if len(header) >= 4 and header[:4] != b"ZKLG":
            raise StoreError(f"{path}: not a ZooKeeper transaction log (magic {header[:4]!r})")
        return False
    magic, version, _ = _HEADER.unpack(header)
    if magic != LOG_MAGIC:
        raise StoreError(f"{path}: not a ZooKeeper transaction log (magic {magic & 0xFFFFFFFF:#x},"
                         f" expected {LOG_MAGIC:#x} 'ZKLG')")
    if version != FORMAT_VERSION:
        raise StoreError(f"{path}: transaction log format version {version}; the {NAME} store "
                         f"reads version {FORMAT_VERSION} (ZooKeeper 3.x)")
    return True


def check_snapshot_version(path: Path, header: bytes) -> None:
    """StoreError when `header` is a snapshot FileHeader of a version this store does not
    read (a snapshot of another magic is damage, handled by `snapshot_problem`)."""
    magic, version, _ = _HEADER.unpack_from(header)
    if magic == SNAP_MAGIC and version != FORMAT_VERSION:
        raise StoreError(f"{path}: snapshot format version {version}; the {NAME} store reads "
                         f"version {FORMAT_VERSION} (ZooKeeper 3.x)")


def snapshot_problem(path: Path, data: bytes) -> str | None:
    """Why `data` (the bytes of `path`) is not a complete ZooKeeper snapshot, or None.
    StoreError for a snapshot of a format version this store does not read."""
    if len(data) >= _HEADER.size:
        check_snapshot_version(path, data[:_HEADER.size])
    if len(data) < _HEADER.size + _SEAL:
        return f"{len(data)} bytes, too short for a snapshot"
    magic, version, _ = _HEADER.unpack_from(data)
    if magic != SNAP_MAGIC:
        return f"not a snapshot (magic {magic & 0xFFFFFFFF:#x}, expected {SNAP_MAGIC:#x} 'ZKSN')"
    if data[-5:] != _SEAL_END:
        return "truncated: it does not end with a seal"
    (stored,) = _ZXID.unpack_from(data, len(data) - _SEAL)
    computed = zlib.adler32(memoryview(data)[:len(data) - _SEAL])
    if stored != computed:
        return f"seal mismatch (stored {stored:#x}, computed {computed:#x})"
    return None


def _fsync_dir(path: Path) -> None:
    """Make a directory's entries (new, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, chunks: Iterable[bytes], sync: bool = True) -> int:
    """Write `chunks` to `<path>.tmp`, fsync, rename over `path`, fsync the directory.
    Returns the byte count."""
    tmp = path.with_name(path.name + ".tmp")
    size = 0
    with open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            size += len(chunk)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync:
        _fsync_dir(path.parent)
    return size


class ZkFilesStore:
    """The Store protocol over ZooKeeper's ``version-2`` directories (see the module)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None,
                 data_log_dir: str | os.PathLike[str] | None = None, force_sync: bool = True,
                 prealloc_kib: int = DEFAULT_PREALLOC_KIB) -> None:
        self._data_dir = Path(data_dir) if data_dir else None
        self._log_root = Path(data_log_dir) if data_log_dir else self._data_dir
        self._force_sync = force_sync
        self._prealloc = prealloc_kib * 1024
        self.snap_dir = Path()
        self.log_dir = Path()
        self._last = 0
        self._log: BinaryIO | None = None  # the open log file being appended to (raw, r+b)
        self._log_path: Path | None = None
        self._pos = 0  # write position in it
        self._allocated = 0  # its size, preallocation included
        self._opened = False

    # -- opening and closing ------------------------------------------------------------------

    def open(self) -> None:
        """Check dataDir (and dataLogDir), create their version-2/ if missing, check every
        file header, and cut a torn tail off the newest log."""
        if self._data_dir is None or self._log_root is None:
            raise StoreError(f"the {NAME} store needs dataDir to be set")
        for root in dict.fromkeys((self._data_dir, self._log_root)):
            self._refuse_other_stores(root)
        self.snap_dir = self._data_dir / VERSION_DIR
        self.log_dir = self._log_root / VERSION_DIR
        try:
            for directory in dict.fromkeys((self.snap_dir, self.log_dir)):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {e.filename}: {e.strerror}") from e
        for path in self._log_paths()[:-1]:
            with open(path, "rb") as f:
                if not check_log_header(path, f.read(_HEADER.size)):
                    raise StoreError(f"{path}: truncated file header, and later log files "
                                     f"follow it")
        for _, path in self._snapshots():
            with open(path, "rb") as f:
                head = f.read(_HEADER.size)
            if len(head) == _HEADER.size:
                check_snapshot_version(path, head)
        self._opened = True
        self._last = self._recover_tail()

    @staticmethod
    def _refuse_other_stores(root: Path) -> None:
        """StoreError when `root` holds a directory another store has marked as its own."""
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name) if root.is_dir() else []
        except OSError as e:
            raise StoreError(f"cannot read dataDir {root}: {e.strerror}") from e
        for entry in entries:
            if entry.name == VERSION_DIR or not entry.is_dir():
                continue
            try:
                owner = Path(entry.path, MARKER).read_text("utf-8").strip()
            except OSError:
                continue
            raise StoreError(f"dataDir {root} holds {entry.path}, the files of the {owner} "
                             f"store; the {NAME} store will not open there")

    def _recover_tail(self) -> int:
        """The last good zxid; cuts a torn last entry off the newest log file and removes
        newest log files that hold no txn."""
        while True:
            paths = self._log_paths()
            if not paths:
                return 0
            logfile = _LogFile(paths[-1])
            last = None
            for zxid, _, _ in logfile.entries():
                last = zxid
            stop = logfile.stop
            if stop is not None:
                if not (stop.torn or stop.tail):
                    raise StoreError(f"{logfile.path}: {stop.reason} in the entry at byte "
                                     f"{stop.offset}")
                if last is None:
                    logfile.path.unlink()
                    _fsync_dir(self.log_dir)
                    log.warn("{path}: {reason} at byte {offset} and no complete txn; removed",
                             path=str(logfile.path), reason=stop.reason, offset=stop.offset)
                    continue
                self._zero_from(logfile.path, stop.offset)
                log.warn("{path}: {reason} at byte {offset}; the torn tail after zxid "
                         "{last:#x} was cut off", path=str(logfile.path), reason=stop.reason,
                         offset=stop.offset, last=last)
            if last is None:
                logfile.path.unlink()
                _fsync_dir(self.log_dir)
                log.warn("{path}: holds no txn; removed", path=str(logfile.path))
                continue
            return last

    def _zero_from(self, path: Path, offset: int) -> None:
        """Zero `path` from `offset` to its end, keeping its size (its preallocation)."""
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            f.truncate(offset)
            f.truncate(max(size, offset))
            os.fsync(f.fileno())

    def close(self) -> None:
        """Close the log file being appended to."""
        self._close_log()
        self._opened = False

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
        self._log = self._log_path = None

    def _require_open(self) -> None:
        if not self._opened:
            raise StoreError(f"the {NAME} store is not open")

    # -- listing files ------------------------------------------------------------------------

    def _log_paths(self) -> list[Path]:
        """The log files, oldest first."""
        return [p for _, p in _named(self.log_dir, LOG_PREFIX)]

    def _snapshots(self) -> list[tuple[int, Path]]:
        """(zxid, path) of the snapshot files, oldest first."""
        return _named(self.snap_dir, SNAP_PREFIX)

    # -- the log ------------------------------------------------------------------------------

    def append(self, txns: Sequence[tuple[int, bytes]]) -> None:
        """Write the batch to the current log file (a new one at the first append after open,
        a snapshot or a truncation) in one write, then one fdatasync (with forceSync)."""
        self._require_open()
        if not txns:
            return
        previous = self._last
        parts: list[bytes] = []
        for zxid, payload in txns:
            if zxid <= previous:
                raise ValueError(f"zxid {zxid:#x} is not above the last, {previous:#x}")
            if len(payload) < _TXN_HEADER_SIZE or \
                    _ZXID.unpack_from(payload, _ZXID_OFFSET)[0] != zxid:
                raise ValueError(f"the payload of zxid {zxid:#x} is not a log entry with that "
                                 f"zxid in its TxnHeader")
            previous = zxid
            parts.append(_ENTRY.pack(zlib.adler32(payload), len(payload)))
            parts.append(payload)
            parts.append(b"B")
        data = b"".join(parts)
        try:
            if self._log is None:
                self._roll(txns[0][0])
            f = self._log
            assert f is not None
            self._pad(len(data))
            f.seek(self._pos)
            f.write(data)
            if self._force_sync:
                _datasync(f.fileno())
        except OSError as e:
            path = self._log_path
            self._close_log()  # a partial write stays a torn record; continue in a new file
            raise StoreError(f"cannot write {path or self.log_dir}: {e.strerror}") from e
        self._pos += len(data)
        self._last = txns[-1][0]

    def _roll(self, zxid: int) -> None:
        """Start ``log.<zxid>`` with its FileHeader."""
        path = self.log_dir / f"{LOG_PREFIX}{zxid:x}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        f: BinaryIO = os.fdopen(fd, "r+b", buffering=0)
        f.write(_HEADER.pack(LOG_MAGIC, FORMAT_VERSION, LOG_DBID))
        self._log, self._log_path = f, path
        self._pos = self._allocated = _HEADER.size
        if self._force_sync:
            os.fsync(fd)
            _fsync_dir(self.log_dir)

    def _pad(self, size: int) -> None:
        """Extend the file with zeros in preAllocSize steps while the write of `size` bytes
        would come within PAD_MARGIN bytes of its end (FilePadding)."""
        if self._prealloc <= 0:
            return
        grown = self._allocated
        while self._pos + size + PAD_MARGIN >= grown:
            grown += self._prealloc
        if grown != self._allocated and self._log is not None:
            self._log.truncate(grown)
            self._allocated = grown

    def read_from(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Every txn above `zxid`, reading the log files in zxid order from the one that can
        hold zxid + 1. StoreError at a checksum mismatch that is not the log's torn tail."""
        self._require_open()
        paths = self._log_paths()
        first = 0
        for i, path in enumerate(paths):
            if int(path.name[len(LOG_PREFIX):], 16) <= zxid + 1:
                first = i
        return self._read(paths[first:], zxid)

    def _read(self, paths: list[Path], after: int) -> Iterator[tuple[int, bytes]]:
        last = after
        for n, path in enumerate(paths):
            logfile = _LogFile(path)
            for zxid, payload, _ in logfile.entries():
                if zxid > last:
                    last = zxid
                    yield zxid, payload
            stop = logfile.stop
            if stop is None:
                continue
            newest = n == len(paths) - 1
            if not stop.torn and not (newest and stop.tail):
                raise StoreError(f"{path}: {stop.reason} in the entry at byte {stop.offset}")
            if not newest:
                log.warn("{path}: {reason} at byte {offset}; reading goes on with the next "
                         "log file", path=str(path), reason=stop.reason, offset=stop.offset)

    def last_zxid(self) -> int:
        """The highest zxid logged (0 when the log is empty)."""
        return self._last

    def truncate_after(self, zxid: int) -> None:
        """Remove every txn above `zxid`: later log files are deleted, the file holding `zxid`
        is zeroed after it; snapshots above `zxid` are deleted too. The next append starts a
        new log file."""
        self._require_open()
        self._close_log()
        for path in reversed(self._log_paths()):
            logfile = _LogFile(path)
            if logfile.start > zxid:
                path.unlink()
                continue
            cut = None
            for txn_zxid, _, end in logfile.entries():
                if txn_zxid > zxid:
                    break
                cut = end
            if cut is None:
                path.unlink()
                continue
            self._zero_from(path, cut)
            break
        for snap_zxid, path in self._snapshots():
            if snap_zxid > zxid:
                path.unlink()
        for directory in dict.fromkeys((self.log_dir, self.snap_dir)):
            _fsync_dir(directory)
        self._last = self._recover_tail()

    # -- snapshots ----------------------------------------------------------------------------

    def save_snapshot(self, zxid: int, chunks: Iterable[bytes]) -> None:
        """Write ``snapshot.<zxid>`` (via a .tmp file and a rename) with the bytes as given;
        the next append starts a new log file (ZooKeeper's roll)."""
        self._require_open()
        path = self.snap_dir / f"{SNAP_PREFIX}{zxid:x}"
        try:
            _write_atomically(path, chunks, sync=True)
        except OSError as e:
            raise StoreError(f"cannot write {path}: {e.strerror}") from e
        self._close_log()

    def load_snapshot(self) -> tuple[int, bytes] | None:
        """The newest snapshot whose seals match, as (zxid, bytes); a bad one is logged and
        the one before it tried. StoreError when there are snapshots, none good, and a log."""
        self._require_open()
        snapshots = self._snapshots()
        problems = []
        for zxid, path in reversed(snapshots):
            try:
                data = path.read_bytes()
            except OSError as e:
                raise StoreError(f"cannot read {path}: {e.strerror}") from e
            problem = snapshot_problem(path, data)
            if problem is None:
                return zxid, data
            problems.append(f"{path}: {problem}")
            log.warn("{path}: {problem}; trying the snapshot before it", path=str(path),
                     problem=problem)
        if problems and self._log_paths():
            raise StoreError(f"no good snapshot ({problems[0]}) and a log to replay on top of "
                             f"one; refusing to start from the log alone")
        return None

    def purge(self, retain_count: int) -> None:
        """ZooKeeper's PurgeTxnLog: keep the newest `retain_count` snapshots, the log file
        holding the oldest kept snapshot's zxid and every later one; delete the rest."""
        self._require_open()
        if retain_count < 1:
            raise ValueError("retain_count must be at least 1")
        valid = [(z, p) for z, p in self._snapshots() if _looks_complete(p)]
        kept = valid[-retain_count:]
        if not kept:
            return
        least = kept[0][0]
        logs = _named(self.log_dir, LOG_PREFIX)
        keep_from = max((start for start, _ in logs if start <= least), default=None)
        removed = False
        for start, path in logs:
            if start < least and (keep_from is None or start < keep_from):
                path.unlink()
                removed = True
        for zxid, path in self._snapshots():
            if zxid < least:
                path.unlink()
                removed = True
        if removed:
            for directory in dict.fromkeys((self.log_dir, self.snap_dir)):
                _fsync_dir(directory)

    # -- metadata -----------------------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        """acceptedEpoch/currentEpoch from ZooKeeper's files; other keys from zkserver.meta."""
        self._require_open()
        if key in EPOCH_KEYS:
            try:
                return (self.snap_dir / key).read_bytes()
            except FileNotFoundError:
                return None
            except OSError as e:
                raise StoreError(f"cannot read {self.snap_dir / key}: {e.strerror}") from e
        return self._read_meta_file().get(key)

    def put_meta(self, key: str, value: bytes) -> None:
        """Write an epoch file (via <name>.tmp + rename, as ZooKeeper) or zkserver.meta."""
        self._require_open()
        try:
            if key in EPOCH_KEYS:
                _write_atomically(self.snap_dir / key, [value])
            else:
                values = self._read_meta_file()
                values[key] = value
                _write_atomically(self.snap_dir / META_FILE,
                                  [f"{k}={v.hex()}\n".encode() for k, v in sorted(values.items())])
        except OSError as e:
            raise StoreError(f"cannot write in {self.snap_dir}: {e.strerror}") from e

    def _read_meta_file(self) -> dict[str, bytes]:
        """zkserver.meta: ``key=<hex>`` lines."""
        path = self.snap_dir / META_FILE
        try:
            text = path.read_text("ascii")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            raise StoreError(f"cannot read {path}: {e}") from e
        values = {}
        for number, line in enumerate(text.splitlines(), 1):
            key, sep, value = line.partition("=")
            try:
                values[key] = bytes.fromhex(value)
            except ValueError:
                sep = ""
            if not sep:
                raise StoreError(f"{path}: line {number} is not key=<hex>")
        return values

    # -- description --------------------------------------------------------------------------

    def describe(self) -> StoreInfo:
        """The files: log_bytes and snapshot_bytes are file sizes (preallocation included)."""
        self._require_open()
        first = None
        for path in self._log_paths():
            for zxid, _, _ in _LogFile(path).entries():
                first = zxid
                break
            if first is not None:
                break
        snapshots = self._snapshots()
        location = str(self.snap_dir) if self.log_dir == self.snap_dir else \
            f"{self.snap_dir} (logs in {self.log_dir})"
        return StoreInfo(
            backend=NAME, location=location, first_zxid=first, last_zxid=self._last or None,
            snapshot_zxids=tuple(z for z, _ in snapshots),
            log_bytes=sum(p.stat().st_size for p in self._log_paths()),
            snapshot_bytes=sum(p.stat().st_size for _, p in snapshots),
            extra={"log files": len(self._log_paths()), "force_sync": self._force_sync,
                   "preAllocSize": f"{self._prealloc // 1024} KiB"})


def _named(directory: Path, prefix: str) -> list[tuple[int, Path]]:
    """(zxid, path) of the files ``<prefix><hex zxid>`` in `directory`, by zxid (ZooKeeper's
    Util.getZxidFromName: anything else, ``.tmp`` files included, is not one of them)."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or not entry.is_file():
            continue
        try:
            zxid = int(name[len(prefix):], 16)
        except ValueError:
            continue
        if name[len(prefix):].lower().strip("0123456789abcdef") == "" and zxid >= 0:
            found.append((zxid, Path(entry.path)))
    return sorted(found)


def _looks_complete(path: Path) -> bool:
    """ZooKeeper's SnapStream.isValidSnapshot: at least 10 bytes, ending in int 1 + '/'."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 10:
                return False
            f.seek(size - 5)
            return f.read(5) == _SEAL_END
    except OSError:
        return False


def _datasync(fd: int) -> None:
    """fdatasync where there is one (the file's size changes only by preallocation)."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


def create_store(config: Config) -> ZkFilesStore:
    """The backend factory: dataDir, dataLogDir, forceSync, and ``zkfiles.preAllocSize`` (KiB;
    ZooKeeper's own ``preAllocSize`` key is read too, the store's key wins)."""
    options = dict(config.plugin_options(NAME))
    raw = getattr(config, "raw", {}) or {}
    text = options.pop("preAllocSize", None) or raw.get("preAllocSize")
    if options:
        raise StoreError(f"unknown option {NAME}.{min(options)} (the {NAME} store knows "
                         f"{NAME}.preAllocSize)")
    prealloc = DEFAULT_PREALLOC_KIB
    if text is not None:
        try:
            prealloc = int(text)
            if prealloc < 0:
                raise ValueError
        except ValueError:
            raise StoreError(f"preAllocSize={text} is not a size in KiB (0 or more)") from None
    return ZkFilesStore(config.data_dir, getattr(config, "data_log_dir", None),
                        config.force_sync, prealloc)
