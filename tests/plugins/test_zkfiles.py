"""The zkfiles store: the Store conformance suite, ZooKeeper's byte layout, damage, bad input.

The suite hands stores synthetic payloads and snapshots (``b"ten"``). The Store protocol says a
payload is ZooKeeper's log-entry bytes and a snapshot ZooKeeper's serialization, and this store
relies on that: a ZooKeeper log keeps a txn's zxid only in its TxnHeader, and a snapshot is
checked by its seals. So the suite runs through `Enveloped`, which puts each synthetic payload
behind a TxnHeader carrying its zxid and each snapshot between ZooKeeper's FileHeader and
seals, and takes them out again on the way back; the store below sees ZooKeeper's shapes only.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import cast

import pytest
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher

from core.interfaces import Store, StoreError, StoreInfo
from core.snapshot import deserialize, serialize
from core.testing.store_suite import MakeStore, StoreSuite, StubConfig
from core.tree import DataTree
from core.txn import decode_txn
from plugins.storage_zkfiles import hooks
from plugins.storage_zkfiles.store import ZkFilesStore, create_store
from tests.fixtures.hexfile import read_hex

_TXN_HEADER = struct.Struct(">qiqqi")  # clientId, cxid, zxid, time, type
_SNAP_HEAD = struct.Struct(">iiq")
_SEAL_END = b"\x00\x00\x00\x01/"
PREALLOC_KIB = 64  # small files for tests


def txn_bytes(zxid: int, body: bytes = b"", type_: int = -10) -> bytes:
    """A log-entry payload: a TxnHeader with `zxid`, then `body`."""
    return _TXN_HEADER.pack(0x1234, 7, zxid, 1_700_000_000_000, type_) + body


def snapshot_bytes(body: bytes, zxid: int = 0) -> bytes:
    """`body` inside ZooKeeper's snapshot envelope: FileHeader, seal 1, ZxidDigest, seal 2."""
    data = _SNAP_HEAD.pack(0x5A4B534E, 2, -1) + body
    data += struct.pack(">q", zlib.adler32(data)) + _SEAL_END
    data += struct.pack(">qiq", zxid, 2, 0)
    return data + struct.pack(">q", zlib.adler32(data)) + _SEAL_END


class Enveloped:
    """A Store that wraps the suite's synthetic payloads and snapshots in ZooKeeper's shapes
    (see the module docstring) around a real ZkFilesStore."""

    def __init__(self, inner: ZkFilesStore) -> None:
        self.inner = inner

    def open(self) -> None:
        self.inner.open()

    def append(self, txns: Sequence[tuple[int, bytes]]) -> None:
        self.inner.append([(z, txn_bytes(z, p)) for z, p in txns])

    def read_from(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        return ((z, p[_TXN_HEADER.size:]) for z, p in self.inner.read_from(zxid))

    def last_zxid(self) -> int:
        return self.inner.last_zxid()

    def truncate_after(self, zxid: int) -> None:
        self.inner.truncate_after(zxid)

    def save_snapshot(self, zxid: int, chunks: Iterable[bytes]) -> None:
        self.inner.save_snapshot(zxid, [snapshot_bytes(b"".join(chunks), zxid)])

    def load_snapshot(self) -> tuple[int, bytes] | None:
        loaded = self.inner.load_snapshot()
        if loaded is None:
            return None
        zxid, data = loaded
        return zxid, data[_SNAP_HEAD.size:-46]

    def purge(self, retain_count: int) -> None:
        self.inner.purge(retain_count)

    def get_meta(self, key: str) -> bytes | None:
        return self.inner.get_meta(key)

    def put_meta(self, key: str, value: bytes) -> None:
        self.inner.put_meta(key, value)

    def describe(self) -> StoreInfo:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


def make(data_dir: Path, **options: str) -> ZkFilesStore:
    """A zkfiles store on `data_dir` with small preallocation, opened."""
    options.setdefault("zkfiles.preAllocSize", str(PREALLOC_KIB))
    store = create_store(StubConfig(data_dir=str(data_dir), options=options))  # type: ignore[arg-type]
    store.open()
    return store


def log_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "version-2").glob("log.*"),
                  key=lambda p: int(p.name[4:], 16))


def tear_last_entry(path: Path) -> None:
    """Zero the second half of the last entry of a log file and everything after (a torn
    write: the 'B' and part of the payload never reached the disk)."""
    data = path.read_bytes()
    pos, last = 16, None
    while pos + 12 <= len(data):
        _, length = struct.unpack_from(">qi", data, pos)
        if length == 0:
            break
        last = (pos, length)
        pos += 13 + length
    assert last is not None
    start, length = last
    cut = start + 12 + length // 2
    with open(path, "r+b") as f:
        f.truncate(cut)
        f.truncate(len(data))


class TestZkFilesStore(StoreSuite):
    """The zkfiles store on dataDir/version-2/, through the Enveloped adapter."""

    keeps_zookeeper_files = True
    purges_whole_log_files = True

    @pytest.fixture
    def make_store(self) -> MakeStore:
        def make_enveloped(data_dir: Path) -> Store:
            return Enveloped(make(data_dir))
        return make_enveloped

    def corrupt_last_txn(self, data_dir: Path) -> None:
        tear_last_entry(log_files(data_dir)[-1])

    def corrupt_newest_snapshot(self, data_dir: Path) -> None:
        newest = max((data_dir / "version-2").glob("snapshot.*"),
                     key=lambda p: int(p.name[9:], 16))
        data = bytearray(newest.read_bytes())
        data[20] ^= 1
        newest.write_bytes(bytes(data))


# -- beyond the suite -------------------------------------------------------------------------


@pytest.fixture
def events() -> Iterator[list[LogEvent]]:
    collected: list[LogEvent] = []
    observer = cast(ILogObserver, collected.append)
    globalLogPublisher.addObserver(observer)
    yield collected
    globalLogPublisher.removeObserver(observer)


def messages(events: list[LogEvent]) -> list[str]:
    return [formatEvent(e) for e in events]


def test_offered_by_the_plugin() -> None:
    [spec] = hooks.zk_storage_backends()
    assert spec.name == "zkfiles" and spec.factory is create_store


def test_log_file_layout(tmp_path: Path) -> None:
    """FileHeader, entries `adler32, len, payload, 'B'`, zero padding in preAllocSize steps,
    a file named after its first txn, rolled after a snapshot."""
    store = make(tmp_path)
    store.append([(1, txn_bytes(1, b"a")), (2, txn_bytes(2, b"bc"))])
    store.append([(3, txn_bytes(3))])
    [path] = log_files(tmp_path)
    assert path.name == "log.1"
    data = path.read_bytes()
    assert len(data) == 16 + PREALLOC_KIB * 1024
    assert data[:16] == bytes.fromhex("5a4b4c47000000020000000000000000")
    pos = 16
    for zxid, body in ((1, b"a"), (2, b"bc"), (3, b"")):
        payload = txn_bytes(zxid, body)
        assert data[pos:pos + 12] == struct.pack(">qi", zlib.adler32(payload), len(payload))
        assert data[pos + 12:pos + 12 + len(payload)] == payload
        assert data[pos + 12 + len(payload)] == ord("B")
        pos += 13 + len(payload)
    assert not data[pos:].strip(b"\0")
    store.save_snapshot(3, [snapshot_bytes(b"", 3)])
    store.append([(0x100000001, txn_bytes(0x100000001))])
    assert [p.name for p in log_files(tmp_path)] == ["log.1", "log.100000001"]
    assert (tmp_path / "version-2" / "snapshot.3").exists()
    store.close()
    store = make(tmp_path)
    store.append([(0x100000002, txn_bytes(0x100000002))])  # a new file after open
    assert [p.name for p in log_files(tmp_path)][-1] == "log.100000002"
    assert [z for z, _ in store.read_from(0)] == [1, 2, 3, 0x100000001, 0x100000002]
    store.close()


def test_preallocation_grows_in_steps(tmp_path: Path) -> None:
    store = make(tmp_path)
    big = b"x" * 50_000
    for zxid in range(1, 5):
        store.append([(zxid, txn_bytes(zxid, big))])
    size = log_files(tmp_path)[0].stat().st_size
    assert (size - 16) % (PREALLOC_KIB * 1024) == 0 and size > 4 * 50_000
    assert [len(p) for _, p in store.read_from(0)] == [32 + 50_000] * 4
    store.close()


def test_default_preallocation_is_zookeepers(tmp_path: Path) -> None:
    store = create_store(StubConfig(data_dir=str(tmp_path)))  # type: ignore[arg-type]
    store.open()
    store.append([(1, txn_bytes(1))])
    assert log_files(tmp_path)[0].stat().st_size == 67108880  # quorum.md 4.2, observed 3.8.0
    store.close()


def test_zookeepers_own_preallocsize_key_is_read(tmp_path: Path) -> None:
    class Cfg(StubConfig):
        raw = {"preAllocSize": "16"}
    store = create_store(Cfg(data_dir=str(tmp_path)))  # type: ignore[arg-type]
    store.open()
    store.append([(1, txn_bytes(1))])
    assert log_files(tmp_path)[0].stat().st_size == 16 + 16 * 1024
    store.close()


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="preAllocSize=lots"):
        create_store(StubConfig(data_dir=str(tmp_path),  # type: ignore[arg-type]
                                options={"zkfiles.preAllocSize": "lots"}))
    with pytest.raises(StoreError, match="unknown option zkfiles.colour"):
        create_store(StubConfig(data_dir=str(tmp_path),  # type: ignore[arg-type]
                                options={"zkfiles.colour": "blue"}))


def test_payload_must_carry_its_zxid(tmp_path: Path) -> None:
    store = make(tmp_path)
    with pytest.raises(ValueError, match="TxnHeader"):
        store.append([(1, txn_bytes(2))])
    with pytest.raises(ValueError, match="TxnHeader"):
        store.append([(1, b"short")])
    assert store.last_zxid() == 0 and log_files(tmp_path) == []
    store.close()


def test_reads_zookeepers_log_fixture(tmp_path: Path) -> None:
    """The Java-written log.100000001 (fixture: its first 2180 bytes, cut inside the padding)."""
    v2 = tmp_path / "version-2"
    v2.mkdir()
    data = read_hex("txnlog-sample.hex")
    (v2 / "log.100000001").write_bytes(data)
    store = make(tmp_path)
    txns = list(store.read_from(0))
    assert len(txns) == 25
    assert txns[0][0] == 0x100000001
    assert [z for z, _ in txns] == sorted(z for z, _ in txns)
    for zxid, payload in txns:
        assert decode_txn(payload).zxid == zxid
    assert store.last_zxid() == txns[-1][0]
    assert (v2 / "log.100000001").read_bytes() == data  # nothing rewritten
    store.close()


def test_writes_what_java_accepted(tmp_path: Path) -> None:
    """The entry of the Python-written log that 3.8.0 loaded comes out byte for byte."""
    fixture = read_hex("txnlog-written-by-python-accepted-by-java.hex")
    probe = ZkFilesStore(tmp_path / "probe", prealloc_kib=0)
    probe.open()
    probe_v2 = tmp_path / "probe" / "version-2"
    (probe_v2 / "log.1").write_bytes(fixture)
    [(zxid, payload)] = list(probe.read_from(0))
    probe.close()
    store = ZkFilesStore(tmp_path / "data", prealloc_kib=0)
    store.open()
    store.append([(zxid, payload)])
    store.close()
    [path] = log_files(tmp_path / "data")
    assert path.name == f"log.{zxid:x}"
    assert path.read_bytes() == fixture[:len(path.read_bytes())]
    assert not fixture[len(path.read_bytes()):].strip(b"\0")


def test_snapshot_fixture_and_ours_load(tmp_path: Path) -> None:
    v2 = tmp_path / "version-2"
    v2.mkdir()
    java = read_hex("snapshot-sample.hex")
    (v2 / "snapshot.600000006").write_bytes(java)
    store = make(tmp_path)
    assert store.load_snapshot() == (0x600000006, java)
    tree = DataTree()
    ours = b"".join(serialize(tree, {5: 4000}, 0x600000007))
    store.save_snapshot(0x600000007, [ours[:10], ours[10:]])
    assert store.load_snapshot() == (0x600000007, ours)
    assert deserialize(store.load_snapshot()[1])[1] == {5: 4000}  # type: ignore[index]
    store.close()


def test_truncate_drops_txns_in_later_files(tmp_path: Path) -> None:
    """quorum.md 2.4: 3.8.0 cut only the file holding the target; every txn above goes."""
    store = make(tmp_path)
    store.append([(z, txn_bytes(z)) for z in (0x200000001, 0x200000002, 0x200000006)])
    store.save_snapshot(0x200000006, [snapshot_bytes(b"")])  # rolls the log
    store.append([(0x200000007, txn_bytes(0x200000007))])
    assert [p.name for p in log_files(tmp_path)] == ["log.200000001", "log.200000007"]
    store.truncate_after(0x200000002)
    assert [z for z, _ in store.read_from(0)] == [0x200000001, 0x200000002]
    assert [p.name for p in log_files(tmp_path)] == ["log.200000001"]
    assert store.last_zxid() == 0x200000002
    store.close()
    store = make(tmp_path)
    assert store.last_zxid() == 0x200000002
    store.append([(0x300000001, txn_bytes(0x300000001))])
    assert [z for z, _ in store.read_from(0x200000001)] == [0x200000002, 0x300000001]
    store.close()


def test_torn_tail_is_cut_and_logged(tmp_path: Path, events: list[LogEvent]) -> None:
    store = make(tmp_path)
    store.append([(z, txn_bytes(z, b"payload")) for z in (1, 2, 3)])
    store.close()
    path = log_files(tmp_path)[0]
    size = path.stat().st_size
    tear_last_entry(path)
    store = make(tmp_path)
    assert [z for z, _ in store.read_from(0)] == [1, 2]
    assert path.stat().st_size == size  # cut, preallocation kept
    assert any("log.1" in m and "torn" in m for m in messages(events))
    store.close()


def test_checksum_mismatch_at_the_tail_is_a_torn_write(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.append([(z, txn_bytes(z, b"payload")) for z in (1, 2, 3)])
    store.close()
    path = log_files(tmp_path)[0]
    data = bytearray(path.read_bytes())
    last_payload_byte = 16 + 3 * (13 + 39) - 2
    data[last_payload_byte] ^= 0xFF
    path.write_bytes(bytes(data))
    store = make(tmp_path)
    assert store.last_zxid() == 2
    store.close()


def test_checksum_mismatch_inside_the_log_is_an_error(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.append([(z, txn_bytes(z, b"payload")) for z in (1, 2, 3)])
    store.close()
    path = log_files(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[16 + 13 + 39 + 20] ^= 0xFF  # inside txn 2's payload
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(StoreError) as raised:
        make(tmp_path)
    message = str(raised.value)
    assert str(path) in message and "checksum mismatch" in message and "\n" not in message
    assert path.read_bytes() == before


def test_checksum_mismatch_in_an_older_file_stops_reading(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.append([(z, txn_bytes(z, b"payload")) for z in (1, 2, 3)])
    store.save_snapshot(3, [snapshot_bytes(b"")])
    store.append([(4, txn_bytes(4))])
    store.close()
    path = log_files(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[16 + 13 + 39 + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    store = make(tmp_path)  # the newest file is fine
    with pytest.raises(StoreError, match="log.1: checksum mismatch"):
        list(store.read_from(0))
    assert [z for z, _ in store.read_from(3)] == [4]
    store.close()


@pytest.mark.parametrize("name, header, reason", [
    ("log.1", bytes.fromhex("5a4b4c47000000030000000000000000"), "log format version 3"),
    ("log.1", b"GARBAGE!" * 4, "not a ZooKeeper transaction log"),
    ("snapshot.1", bytes.fromhex("5a4b534e00000001ffffffffffffffff") + b"\0" * 20,
     "snapshot format version 1"),
])
def test_unreadable_version_is_refused(tmp_path: Path, name: str, header: bytes,
                                       reason: str) -> None:
    v2 = tmp_path / "version-2"
    v2.mkdir()
    (v2 / name).write_bytes(header)
    with pytest.raises(StoreError) as raised:
        make(tmp_path)
    assert reason in str(raised.value) and str(v2 / name) in str(raised.value)
    assert os.listdir(v2) == [name] and (v2 / name).read_bytes() == header


def test_corrupt_snapshot_falls_back_with_a_log_line(tmp_path: Path,
                                                      events: list[LogEvent]) -> None:
    store = make(tmp_path)
    store.save_snapshot(1, [snapshot_bytes(b"one")])
    store.save_snapshot(2, [snapshot_bytes(b"two")[:-20]])  # truncated
    assert store.load_snapshot() == (1, snapshot_bytes(b"one"))
    [line] = [m for m in messages(events) if "snapshot.2" in m]
    assert "truncated" in line
    store.close()


def test_only_bad_snapshots_and_a_log_refuse(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.save_snapshot(1, [b"not a snapshot at all" * 3])
    store.append([(2, txn_bytes(2))])
    with pytest.raises(StoreError, match="snapshot.1: not a snapshot"):
        store.load_snapshot()
    store.close()


def test_epoch_files_are_zookeepers(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.put_meta("acceptedEpoch", b"5")
    store.put_meta("currentEpoch", b"4")
    store.put_meta("other", b"\x00\x01")
    v2 = tmp_path / "version-2"
    assert (v2 / "acceptedEpoch").read_bytes() == b"5"
    assert (v2 / "currentEpoch").read_bytes() == b"4"
    assert sorted(os.listdir(v2)) == ["acceptedEpoch", "currentEpoch", "zkserver.meta"]
    store.close()
    (tmp_path / "myid").write_text("3")
    store = make(tmp_path)
    assert store.get_meta("other") == b"\x00\x01"
    assert store.get_meta("currentEpoch") == b"4"
    store.close()
    assert (tmp_path / "myid").read_text() == "3"


def test_separate_data_log_dir(tmp_path: Path) -> None:
    store = ZkFilesStore(tmp_path / "data", tmp_path / "logs", prealloc_kib=4)
    store.open()
    store.append([(1, txn_bytes(1))])
    store.save_snapshot(1, [snapshot_bytes(b"")])
    assert os.listdir(tmp_path / "logs" / "version-2") == ["log.1"]
    assert os.listdir(tmp_path / "data" / "version-2") == ["snapshot.1"]
    assert "logs in" in store.describe().location
    store.close()


def test_purge_follows_purgetxnlog(tmp_path: Path) -> None:
    """Keep N snapshots, the log file holding the oldest kept one's zxid, and later files."""
    store = make(tmp_path)
    for first in (1, 11, 21, 31):
        store.append([(z, txn_bytes(z)) for z in range(first, first + 10)])
        store.save_snapshot(first + 4, [snapshot_bytes(b"")])
    assert [p.name for p in log_files(tmp_path)] == ["log.1", "log.b", "log.15", "log.1f"]
    store.purge(2)  # keeps snapshots 0x19 (25) and 0x23 (35)
    assert [p.name for p in log_files(tmp_path)] == ["log.15", "log.1f"]
    assert store.describe().snapshot_zxids == (25, 35)
    assert [z for z, _ in store.read_from(0)] == list(range(21, 41))
    store.close()
