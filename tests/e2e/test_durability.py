"""Durable stores end to end: snapshots taken while writing, recovery from snapshot + log."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.harness import OurZK


def _tree(zk: KazooClient, path: str = "/") -> dict[str, tuple[bytes, int, int, int]]:
    """Every node under `path` (but /zookeeper) with its data, version, cversion and czxid."""
    out = {}
    for child in zk.get_children(path):
        p = f"{path.rstrip('/')}/{child}"
        if p == "/zookeeper":
            continue
        data, stat = zk.get(p)
        out[p] = (data, stat.version, stat.cversion, stat.czxid)
        out.update(_tree(zk, p))
    return out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("storage", ["sqlite", "rocksdb"])
@pytest.mark.parametrize("log_dir", [False, True], ids=["dataDir", "dataLogDir"])
def test_restart_recovers_from_snapshots_and_log(tmp_path: Path, storage: str, log_dir: bool) -> None:
    cfg = {"storage": storage, "dataDir": str(tmp_path / "data"), "snapCount": "20"}
    if log_dir:
        cfg["dataLogDir"] = str(tmp_path / "log")
    with OurZK(extra_cfg=cfg) as server:
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=10)
        for i in range(60):
            zk.create(f"/d/n{i:03}", b"v%d" % i, makepath=True)
        for i in range(0, 60, 3):
            zk.set(f"/d/n{i:03}", b"changed")
        for i in range(0, 60, 7):
            zk.delete(f"/d/n{i:03}")
        zk.create("/d/seq-", b"", sequence=True)
        before = _tree(zk)
        zk.stop()
        zk.close()
        assert "snapshot 0x" in server.log_tail(400)
    with OurZK(extra_cfg=cfg) as server:
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=10)
        assert _tree(zk) == before
        assert zk.create("/d/seq-", b"", sequence=True) == "/d/seq-0000000061"
        zk.stop()
        zk.close()
