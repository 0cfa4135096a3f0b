"""core.cli: the `zkserver` tool's main() run in-process on real sqlite and rocksdb stores,
filled through the Store API with real txns (core.records + core.txn.encode_txn)."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest

from core import cli, pluginmanager
from core.acl import OPEN_ACL_UNSAFE
from core.config import load
from core.errors import Code
from core.interfaces import Store
from core.opcodes import OpCode
from core.records import (
    ACL, CloseSessionTxn, CreateSessionTxn, CreateTxn, DeleteTxn, ErrorTxn, Id, SetACLTxn,
    SetDataTxn,
)
from core.snapshot import serialize
from core.tree import DataTree
from core.txn import Txn, encode_txn

S1 = 0x0100000FE69D0000
S2 = 0x0100000FE69D0001
OPEN = list(OPEN_ACL_UNSAFE)
DIGEST_ACL = [ACL(31, Id("digest", "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ="))]
T0 = int(datetime(2026, 11, 26, 10, 57, 44, tzinfo=timezone.utc).timestamp() * 1000)
SNAPSHOT_ZXID = 6
STORES = ["sqlite", "rocksdb"]


def txn(zxid: int, op: int, body: object, session: int = S1, cxid: int | None = None) -> Txn:
    return Txn(session, zxid - 1 if cxid is None else cxid, zxid, T0 + zxid, op, body)


def history() -> list[Txn]:
    """Twelve txns as a standalone server logs them: two sessions, creates, sets, a multi,
    an error, a delete, a close."""
    return [
        txn(1, OpCode.createSession, CreateSessionTxn(30000), cxid=0),
        txn(2, OpCode.create, CreateTxn("/app", b"v1", OPEN, False, 1)),
        txn(3, OpCode.create, CreateTxn("/app/eph", b"e\n\x00", OPEN, True, 1)),
        txn(4, OpCode.setData, SetDataTxn("/app", b"v2", 1)),
        txn(5, OpCode.createSession, CreateSessionTxn(30000), session=S2, cxid=0),
        txn(6, OpCode.create, CreateTxn("/app/s-0000000002", b"", OPEN, False, 2), session=S2),
        txn(7, OpCode.setACL, SetACLTxn("/app", DIGEST_ACL, 1)),
        txn(8, OpCode.multi, [(OpCode.create, CreateTxn("/m", b"1", OPEN, False, 2)),
                              (OpCode.setData, SetDataTxn("/m", b"2", 1))]),
        txn(9, OpCode.error, ErrorTxn(Code.NODEEXISTS)),
        txn(10, OpCode.delete, DeleteTxn("/app/s-0000000002"), session=S2),
        txn(11, OpCode.closeSession, CloseSessionTxn([]), session=S2),
        txn(12, OpCode.create, CreateTxn("/late", b"x", OPEN, False, 3)),
    ]


def state_at(zxid: int) -> tuple[DataTree, dict[int, int]]:
    """The tree and sessions after applying the history up to `zxid`."""
    tree, sessions = DataTree(), {}
    for t in history()[:zxid]:
        tree.apply(t)
        if t.type == OpCode.createSession:
            sessions[t.clientId] = t.body.timeOut
        elif t.type == OpCode.closeSession:
            sessions.pop(t.clientId)
    return tree, sessions


def write_cfg(path: Path, storage: str, data_dir: Path) -> Path:
    path.write_text(f"tickTime=2000\ndataDir={data_dir}\nclientPort=2191\nstorage={storage}\n")
    return path


def open_store(cfg: Path) -> Store:
    """The store a zoo.cfg selects, built as the server builds it, and opened."""
    config = load(cfg)
    backends = pluginmanager.storage_backends(pluginmanager.build_plugin_manager())
    store: Store = backends[config.storage].factory(config)
    store.open()
    return store


def fill(cfg: Path) -> None:
    """The history in three batches, a snapshot at SNAPSHOT_ZXID, and the epochs."""
    store = open_store(cfg)
    try:
        payloads = [(t.zxid, encode_txn(t)) for t in history()]
        for start in range(0, len(payloads), 5):
            store.append(payloads[start:start + 5])
        tree, sessions = state_at(SNAPSHOT_ZXID)
        store.save_snapshot(SNAPSHOT_ZXID, serialize(tree, sessions, SNAPSHOT_ZXID))
        store.put_meta("acceptedEpoch", b"0")
        store.put_meta("currentEpoch", b"0")
    finally:
        store.close()


@pytest.fixture(params=STORES)
def cfg(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A zoo.cfg whose store holds the history."""
    path = write_cfg(tmp_path / "zoo.cfg", request.param, tmp_path / "data")
    fill(path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    """The single stderr line of an operator error."""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("zkserver: error: ")
    return err


# -- info -----------------------------------------------------------------------------------


def test_info(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "info", "-c", str(cfg))
    assert status == 0
    rows = dict(line.split(":", 1) for line in out.splitlines())
    backend = load(cfg).storage
    assert rows["backend"].strip() == backend
    assert str(cfg.parent / "data" / backend) in rows["location"]
    assert rows["first zxid"].strip() == "0x1 (epoch 0, counter 1)"
    assert rows["last zxid"].strip() == "0xc (epoch 0, counter 12)"
    assert rows["snapshots"].strip() == "1: 0x6"
    assert rows["log size"].strip().endswith(" bytes")
    assert rows["snapshot size"].strip().endswith(" bytes")


# -- log ------------------------------------------------------------------------------------


def test_log_prints_every_txn_in_toolkit_format(cfg: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "log", "-c", str(cfg))
    assert status == 0 and err == "12 txns\n"
    lines = out.splitlines()
    assert len(lines) == 12
    s1, s2 = f"session {S1:#x}", f"session {S2:#x}"
    assert lines == [
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0x0 zxid 0x1 createSession 30000",
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0x1 zxid 0x2 create "
        "/app,v1,[31,s{'world,'anyone}],false,1",
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0x2 zxid 0x3 create "
        "/app/eph,e\\x0a\\x00,[31,s{'world,'anyone}],true,1",
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0x3 zxid 0x4 setData /app,v2,1",
        f"11/26/26, 10:57:44 AM UTC {s2} cxid 0x0 zxid 0x5 createSession 30000",
        f"11/26/26, 10:57:44 AM UTC {s2} cxid 0x5 zxid 0x6 create "
        "/app/s-0000000002,,[31,s{'world,'anyone}],false,2",
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0x6 zxid 0x7 setACL "
        "'/app,v{s{31,s{'digest,'u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=}}},1",
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0x7 zxid 0x8 multi "
        "create:/m,1,[31,s{'world,'anyone}],false,2;setData:/m,2,1",
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0x8 zxid 0x9 error -110",
        f"11/26/26, 10:57:44 AM UTC {s2} cxid 0x9 zxid 0xa delete '/app/s-0000000002",
        f"11/26/26, 10:57:44 AM UTC {s2} cxid 0xa zxid 0xb closeSession v{{}}",
        f"11/26/26, 10:57:44 AM UTC {s1} cxid 0xb zxid 0xc create "
        "/late,x,[31,s{'world,'anyone}],false,3",
    ]


def test_log_from_is_inclusive(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "log", "-c", str(cfg), "--from", "0xa")
    assert status == 0
    assert [line.split(" zxid ")[1].split()[0] for line in out.splitlines()] == \
        ["0xa", "0xb", "0xc"]
    status, out, _ = run(capsys, "log", "-c", str(cfg), "--from", "13")
    assert status == 0 and out == ""


def test_txn_lines_match_java_txnlogtoolkit() -> None:
    """Lines Apache ZooKeeper 3.8's TxnLogToolkit printed for these txns (its ACL line break
    removed)."""
    session = 0x100000FE69D0000
    head = f"11/26/26, 10:57:44 AM UTC session {session:#x}"

    def line(zxid: int, op: int, body: object) -> str:
        return cli.format_txn(Txn(session, zxid - 1, zxid, T0, op, body))

    assert line(1, OpCode.createSession, CreateSessionTxn(10000)) == \
        f"{head} cxid 0x0 zxid 0x1 createSession 10000"
    assert line(4, OpCode.create, CreateTxn("/a/s-0000000001", b"", OPEN, False, 2)) == \
        f"{head} cxid 0x3 zxid 0x4 create /a/s-0000000001,,[31,s{{'world,'anyone}}],false,2"
    assert line(5, OpCode.setData, SetDataTxn("/a", b"world", 1)) == \
        f"{head} cxid 0x4 zxid 0x5 setData /a,world,1"
    assert line(6, OpCode.setACL, SetACLTxn("/a", DIGEST_ACL, 1)) == \
        f"{head} cxid 0x5 zxid 0x6 setACL '/a,v{{s{{31,s{{'digest,'u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=}}}}}},1"
    assert line(9, OpCode.error, ErrorTxn(-110)) == f"{head} cxid 0x8 zxid 0x9 error -110"
    assert line(0x12, OpCode.delete, DeleteTxn("/c/d")) == \
        f"{head} cxid 0x11 zxid 0x12 delete '/c/d"
    assert line(0x14, OpCode.closeSession, CloseSessionTxn(["/e3"])) == \
        f"{head} cxid 0x13 zxid 0x14 closeSession v{{'/e3}}"


# -- snapshot -------------------------------------------------------------------------------


def test_snapshot_dumps_the_newest(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "snapshot", "-c", str(cfg))
    assert status == 0
    tree, sessions = state_at(SNAPSHOT_ZXID)
    assert out.splitlines() == list(cli.format_tree(tree, sessions, SNAPSHOT_ZXID))
    assert out.startswith("ZNode Details (count=8):\n----\n/\n  cZxid = 0x00000000000000\n")
    assert "/app/eph\n  cZxid = 0x00000000000003\n  ctime = Thu Nov 26 10:57:44 UTC 2026\n" in out
    assert f"  ephemeralOwner = {S1:#016x}\n  dataLength = 3\n" in out
    assert out.endswith(f"Session Details (sid, timeout, ephemeralCount):\n{S1:#x}, 30000, 1\n"
                        f"{S2:#x}, 30000, 0\n----\nLast zxid: 0x6\n")


@pytest.mark.parametrize("zxid", [SNAPSHOT_ZXID, 9, 12])
def test_snapshot_at_zxid_replays_the_log(cfg: Path, capsys: pytest.CaptureFixture[str],
                                          zxid: int) -> None:
    status, out, _ = run(capsys, "snapshot", "-c", str(cfg), "--zxid", hex(zxid))
    assert status == 0
    tree, sessions = state_at(zxid)
    assert out.splitlines() == list(cli.format_tree(tree, sessions, zxid))


@pytest.mark.parametrize("zxid, says", [("0x3", "before the newest snapshot, 0x6"),
                                        ("0x20", "no txn with zxid 0x20")])
def test_snapshot_at_zxid_out_of_reach(cfg: Path, capsys: pytest.CaptureFixture[str], zxid: str,
                                       says: str) -> None:
    status, out, err = run(capsys, "snapshot", "-c", str(cfg), "--zxid", zxid)
    assert status == 1 and out == ""
    assert says in one_line_error(err)


@pytest.mark.parametrize("storage", STORES)
def test_snapshot_of_a_store_without_one(tmp_path: Path, storage: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_cfg(tmp_path / "zoo.cfg", storage, tmp_path / "data")
    open_store(cfg).close()
    status, _, err = run(capsys, "snapshot", "-c", str(cfg))
    assert status == 1 and "no snapshot in" in one_line_error(err)


# -- migrate --------------------------------------------------------------------------------


def contents(cfg: Path) -> tuple[tuple[int, bytes] | None, list[tuple[int, bytes]], list]:
    """A store's newest snapshot, its log after it, and its epochs."""
    store = open_store(cfg)
    try:
        snapshot = store.load_snapshot()
        log = list(store.read_from(snapshot[0] if snapshot else 0))
        meta = [store.get_meta(key) for key in cli.META_KEYS]
    finally:
        store.close()
    return snapshot, log, meta


def test_migrate_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """sqlite -> rocksdb -> sqlite keeps the snapshot's bytes, the log after it and the
    epochs; every store reads the same stream."""
    first = write_cfg(tmp_path / "first.cfg", "sqlite", tmp_path / "first")
    middle = write_cfg(tmp_path / "middle.cfg", "rocksdb", tmp_path / "middle")
    last = write_cfg(tmp_path / "last.cfg", "sqlite", tmp_path / "last")
    fill(first)
    status, out, _ = run(capsys, "migrate", "-c", str(first), "--to", str(middle))
    assert status == 0
    assert out.startswith("copied snapshot 0x6 of ") and " and 6 txns 0x7-0xc from sqlite " in out
    status, _, _ = run(capsys, "migrate", "-c", str(middle), "--to", str(last))
    assert status == 0
    original = contents(first)
    assert original[0] is not None and original[0][0] == SNAPSHOT_ZXID
    assert [z for z, _ in original[1]] == list(range(SNAPSHOT_ZXID + 1, 13))
    assert contents(middle) == original
    assert contents(last) == original
    store = open_store(last)
    try:  # nothing before the snapshot was copied: the whole log is the part after it
        assert list(store.read_from(0)) == original[1]
        assert store.describe().snapshot_zxids == (SNAPSHOT_ZXID,)
    finally:
        store.close()


def test_migrate_refuses_a_non_empty_target(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    source = write_cfg(tmp_path / "source.cfg", "sqlite", tmp_path / "source")
    target = write_cfg(tmp_path / "target.cfg", "rocksdb", tmp_path / "target")
    fill(source)
    store = open_store(target)
    store.append([(100, encode_txn(txn(100, OpCode.createSession, CreateSessionTxn(1))))])
    store.close()
    status, out, err = run(capsys, "migrate", "-c", str(source), "--to", str(target))
    assert status == 1 and out == ""
    assert "is not empty: it holds txns up to 0x64" in one_line_error(err)
    assert [z for z, _ in contents(target)[1]] == [100]


def test_migrate_refuses_the_same_store(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "migrate", "-c", str(cfg), "--to", str(cfg))
    assert status == 1 and "select the same store" in one_line_error(err)


def test_migrate_of_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_cfg(tmp_path / "source.cfg", "rocksdb", tmp_path / "source")
    target = write_cfg(tmp_path / "target.cfg", "sqlite", tmp_path / "target")
    open_store(source).close()
    status, out, _ = run(capsys, "migrate", "-c", str(source), "--to", str(target))
    assert status == 0 and out.startswith("copied no snapshot and no txns from rocksdb")


# -- plugins --------------------------------------------------------------------------------


def test_plugins_lists_what_each_offers(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "plugins")
    assert status == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for name, offers in [("sqlite", "storage sqlite"), ("rocksdb", "storage rocksdb"),
                         ("memory", "storage memory"), ("standalone", "consensus standalone")]:
        assert "zkserver 0.1.0" in rows[name] and rows[name].endswith(offers)
    assert "auth digest, auth ip" in rows["auth"]
    assert "selected" not in out


def test_plugins_marks_the_selection(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "plugins", "-c", str(cfg))
    storage = load(cfg).storage
    assert status == 0
    assert f"storage {storage} (selected)" in out
    assert "consensus standalone (selected)" in out
    assert out.count("(selected)") == 2
    assert out.endswith(f"{cfg} selects storage={storage}, consensus=standalone\n")


# -- operator errors ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "log", "snapshot"])
def test_missing_data_dir(tmp_path: Path, command: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_cfg(tmp_path / "zoo.cfg", "sqlite", tmp_path / "nowhere")
    status, _, err = run(capsys, command, "-c", str(cfg))
    assert status == 1 and "does not exist" in one_line_error(err)
    assert not (tmp_path / "nowhere").exists()


def test_wrong_store(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A zoo.cfg naming another store than the one in dataDir: refused, nothing created."""
    other = "rocksdb" if load(cfg).storage == "sqlite" else "sqlite"
    wrong = write_cfg(cfg.parent / "wrong.cfg", other, cfg.parent / "data")
    status, _, err = run(capsys, "info", "-c", str(wrong))
    assert status == 1
    assert f"no {other} store in dataDir" in one_line_error(err)
    assert not (cfg.parent / "data" / other).exists()


@pytest.mark.parametrize("text, says", [
    ("tickTime=abc\n", "tickTime: expected a positive integer"),
    ("dataDir=/tmp\nclientPort=1\nstorage=nosuch\n", "no backend named 'nosuch' is installed"),
])
def test_bad_config(tmp_path: Path, text: str, says: str,
                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(text)
    status, _, err = run(capsys, "info", "-c", str(cfg))
    assert status == 2 and says in one_line_error(err)


def test_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "log", "-c", str(tmp_path / "none.cfg"))
    assert status == 2 and "cannot read the configuration" in one_line_error(err)


def test_bad_zxid_argument(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["log", "-c", str(cfg), "--from", "zz"])
    assert exit_info.value.code == 2
    assert "expected a zxid" in capsys.readouterr().err


# -- the progress bar -----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal() -> None:
    stream = Terminal()
    bar = cli.Progress("txns", 4, stream, width=8, interval=0)
    bar.advance(1)
    bar.advance(3)
    bar.close()
    assert stream.getvalue() == ("\rtxns [##......]  25% 1/4"
                                 "\rtxns [########] 100% 4/4"
                                 "\rtxns [########] 100% 4/4\n")


def test_progress_bar_stays_off_a_file() -> None:
    stream = io.StringIO()
    bar = cli.Progress("txns", 4, stream)
    bar.advance(4)
    bar.close()
    assert stream.getvalue() == ""
