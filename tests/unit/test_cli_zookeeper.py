"""`zkserver import --from-zookeeper` and `zkserver export --to-zookeeper`: migrate with the
zkfiles store (ZooKeeper's own data directory) on one side, in-process on real stores.
(With Apache ZooKeeper itself: tests/e2e/test_zkfiles_interop.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.snapshot import deserialize, serialize
from core.txn import decode_txn, encode_txn
from tests.unit.test_cli import (
    SNAPSHOT_ZXID, contents, fill, history, one_line_error, open_store, run, state_at, write_cfg,
)

SMALL = "zkfiles.preAllocSize=64\n"


def zk_cfg(tmp_path: Path, name: str) -> Path:
    """A zoo.cfg selecting the zkfiles store on tmp_path/<name> (small log files)."""
    path = write_cfg(tmp_path / f"{name}.cfg", "zkfiles", tmp_path / name)
    path.write_text(path.read_text() + SMALL)
    return path


def zk_data(tmp_path: Path) -> Path:
    """A ZooKeeper dataDir holding the history, written by the zkfiles store."""
    fill(zk_cfg(tmp_path, "zk"))
    return tmp_path / "zk"


def tree_text(snapshot: tuple[int, bytes]) -> tuple[dict, dict[int, int]]:
    tree, sessions, _ = deserialize(snapshot[1])
    nodes = {p: (n.data, n.czxid, n.mzxid, n.pzxid, n.version, n.cversion, n.aversion,
                 n.ephemeral_owner, sorted(n.children)) for p, n in tree.nodes.items()}
    return nodes, sessions


def test_info_log_snapshot_read_a_zookeeper_data_dir(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    zk_data(tmp_path)
    cfg = tmp_path / "zk.cfg"
    status, out, _ = run(capsys, "info", "-c", str(cfg))
    assert status == 0 and "zkfiles" in out and "version-2" in out
    status, out, _ = run(capsys, "log", "-c", str(cfg))
    assert status == 0 and len(out.splitlines()) == 12
    status, out, _ = run(capsys, "snapshot", "-c", str(cfg))
    assert status == 0 and "Last zxid: 0x6" in out


def test_import_into_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = zk_data(tmp_path)
    before = sorted(os.listdir(data / "version-2"))
    target = write_cfg(tmp_path / "to.cfg", "sqlite", tmp_path / "to")
    status, out, _ = run(capsys, "import", "--from-zookeeper", str(data), "-c", str(target))
    assert status == 0, out
    assert out.startswith("copied snapshot 0x6 of ") and "6 txns 0x7-0xc from zkfiles" in out
    assert contents(target) == contents(tmp_path / "zk.cfg")
    assert sorted(os.listdir(data / "version-2")) == before


def test_export_always_writes_a_snapshot(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A store without a snapshot exports to the log plus a snapshot at its last txn."""
    source = write_cfg(tmp_path / "from.cfg", "sqlite", tmp_path / "from")
    store = open_store(source)
    store.append([(t.zxid, encode_txn(t)) for t in history()])
    store.close()
    out_dir = tmp_path / "zkout"
    status, out, _ = run(capsys, "export", "-c", str(source), "--to-zookeeper", str(out_dir))
    assert status == 0, out
    assert "no snapshot and 12 txns 0x1-0xc" in out and "wrote snapshot 0xc" in out
    names = sorted(os.listdir(out_dir / "version-2"))
    assert names == ["log.1", "snapshot.c"]
    assert (out_dir / "version-2" / "log.1").stat().st_size == 16 + 64 * 1024 * 1024
    exported = zk_cfg(tmp_path, "zkout")
    snapshot, log, _ = contents(exported)
    assert snapshot is not None and snapshot[0] == 12 and log == []
    tree, sessions = state_at(12)
    assert tree_text(snapshot) == tree_text((12, b"".join(serialize(tree, sessions, 12))))


def test_export_then_import_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_cfg(tmp_path / "from.cfg", "sqlite", tmp_path / "from")
    fill(source)
    out_dir, log_dir = tmp_path / "zkdata", tmp_path / "zklogs"
    status, out, _ = run(capsys, "export", "-c", str(source), "--to-zookeeper", str(out_dir),
                         "--log-dir", str(log_dir))
    assert status == 0, out
    assert sorted(os.listdir(out_dir / "version-2")) == [
        "acceptedEpoch", "currentEpoch", f"snapshot.{SNAPSHOT_ZXID:x}", "snapshot.c"]
    assert os.listdir(log_dir / "version-2") == ["log.7"]
    back = write_cfg(tmp_path / "back.cfg", "rocksdb", tmp_path / "back")
    status, out, _ = run(capsys, "import", "--from-zookeeper", str(out_dir), "--log-dir",
                         str(log_dir), "-c", str(back))
    assert status == 0, out
    snapshot, log, meta = contents(back)
    assert snapshot is not None and snapshot[0] == 12 and log == []
    assert meta == [b"0", b"0"]
    original = contents(source)
    assert [decode_txn(p).zxid for _, p in original[1]] == list(range(7, 13))


def test_import_of_a_missing_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write_cfg(tmp_path / "to.cfg", "sqlite", tmp_path / "to")
    status, _, err = run(capsys, "import", "--from-zookeeper", str(tmp_path / "nope"),
                         "-c", str(target))
    assert status == 1 and "does not exist" in one_line_error(err)
    status, _, err = run(capsys, "import", "--from-zookeeper", str(tmp_path), "-c", str(target))
    assert status == 1 and "no zkfiles store" in one_line_error(err)
    assert not (tmp_path / "to").exists()


@pytest.mark.parametrize("damage, says", [
    (lambda v2: (v2 / "log.1").write_bytes(b"ZKLG\x00\x00\x00\x09" + bytes(8)),
     "log.1: transaction log format version 9"),
    (lambda v2: (v2 / "snapshot.6").write_bytes(b"ZKSN\x00\x00\x00\x01" + bytes(40)),
     "snapshot.6: snapshot format version 1"),
])
def test_import_of_an_unreadable_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          damage, says: str) -> None:
    data = zk_data(tmp_path)
    damage(data / "version-2")
    files = {p.name: p.read_bytes() for p in (data / "version-2").iterdir()}
    target = write_cfg(tmp_path / "to.cfg", "sqlite", tmp_path / "to")
    status, _, err = run(capsys, "import", "--from-zookeeper", str(data), "-c", str(target))
    assert status == 1 and says in one_line_error(err)
    assert {p.name: p.read_bytes() for p in (data / "version-2").iterdir()} == files
    assert not (tmp_path / "to").exists()


def test_import_of_a_corrupt_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = zk_data(tmp_path)
    log = sorted((data / "version-2").glob("log.*"))[0]
    raw = bytearray(log.read_bytes())
    raw[16 + 12 + 5] ^= 0xFF  # inside the first txn
    log.write_bytes(bytes(raw))
    target = write_cfg(tmp_path / "to.cfg", "sqlite", tmp_path / "to")
    status, _, err = run(capsys, "import", "--from-zookeeper", str(data), "-c", str(target))
    assert status == 1 and f"{log}: checksum mismatch" in one_line_error(err)
    assert log.read_bytes() == bytes(raw)


def test_export_refuses_a_non_empty_zookeeper_dir(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = zk_data(tmp_path)
    files = {p.name: p.read_bytes() for p in (data / "version-2").iterdir()}
    source = write_cfg(tmp_path / "from.cfg", "sqlite", tmp_path / "from")
    fill(source)
    status, _, err = run(capsys, "export", "-c", str(source), "--to-zookeeper", str(data))
    assert status == 1 and "is not empty" in one_line_error(err)
    assert {p.name: p.read_bytes() for p in (data / "version-2").iterdir()} == files


def test_other_stores_refuse_a_zookeeper_dir_and_zkfiles_refuses_theirs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = zk_data(tmp_path)
    cfg = write_cfg(tmp_path / "sq.cfg", "sqlite", data)
    status, _, err = run(capsys, "export", "-c", str(cfg), "--to-zookeeper", str(tmp_path / "x"))
    assert status == 1
    fill(write_cfg(tmp_path / "s.cfg", "sqlite", tmp_path / "s"))
    status, _, err = run(capsys, "export", "-c", str(tmp_path / "s.cfg"), "--to-zookeeper",
                         str(tmp_path / "s"))
    assert status == 1 and "the files of the sqlite store" in one_line_error(err)
    assert sorted(os.listdir(tmp_path / "s")) == ["sqlite"]
