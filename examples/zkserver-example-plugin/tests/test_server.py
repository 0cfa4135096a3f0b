"""A real server on the appendlog store, with the event log on: zkserver's pytest fixtures."""

from __future__ import annotations

import json
from pathlib import Path

from kazoo.client import KazooClient


def test_server_on_appendlog_logs_watch_events(zkserver_factory, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    server = zkserver_factory(storage="appendlog", config={"example.eventLog": str(events)})
    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start(timeout=15)
    try:
        client.create("/app", b"v1")
        assert client.get("/app", watch=lambda event: None)[0] == b"v1"
        client.set("/app", b"v2")
        client.get_children("/", watch=lambda event: None)
        client.delete("/app")
        assert (server.data_dir / "appendlog" / "log").stat().st_size > 0
    finally:
        client.stop()
        client.close()
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["type"], e["path"]) for e in logged] == [
        ("NodeDataChanged", "/app"), ("NodeChildrenChanged", "/")]
    assert all(e["sessions"] == [logged[0]["sessions"][0]] for e in logged)
