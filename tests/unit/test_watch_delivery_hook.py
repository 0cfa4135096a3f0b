"""The watch-delivery hook: a plugin's stage sees each event with its watchers, and what it
returns is what the next stage, finally the connections, delivers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import WatchEvent, Watcher, hookimpl
from core.opcodes import EventType, OpCode
from core.records import ACL, CreateRequest, Id, PathWatchRequest, SetDataRequest, WatcherEvent
from tests.inprocess import Client, start_server

OPEN = [ACL(31, Id("world", "anyone"))]


class Recorder:
    """A stage that records what it is given; `keep` decides what goes on down the chain."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.seen: list[tuple[int, str, int]] = []

    def deliver(self, event: WatchEvent, watchers: list[Watcher]) -> list[Watcher]:
        self.seen.append((event.type, event.path, len(watchers)))
        return watchers if self.keep else []


class Plugin:
    def __init__(self, stage: Recorder) -> None:
        self.stage = stage

    @hookimpl
    def zk_watch_delivery(self, config: Any, server: Any) -> Recorder:
        return self.stage


def events(client: Client) -> list[tuple[int, str]]:
    out = []
    for hdr, body in client.replies():
        if hdr.xid == -1:
            e = WatcherEvent.decode(body, 0)[0]
            out.append((e.type, e.path))
    return out


def _watched_change(tmp_path: Path, stage: Recorder) -> tuple[Client, Client]:
    server, clock = start_server(tmp_path, 2000, [Plugin(stage)])
    writer, watcher = Client(server, clock, 5001), Client(server, clock, 5002)
    writer.connect(10000)
    watcher.connect(10000)
    writer.request(OpCode.create, CreateRequest("/w", b"", OPEN, 0))
    watcher.request(OpCode.getData, PathWatchRequest("/w", True))
    writer.request(OpCode.setData, SetDataRequest("/w", b"new", -1))
    return writer, watcher


def test_an_observing_stage_sees_events_and_the_client_still_gets_them(tmp_path: Path) -> None:
    stage = Recorder(keep=True)
    _, watcher = _watched_change(tmp_path, stage)
    assert stage.seen == [(EventType.NodeDataChanged, "/w", 1)]
    assert events(watcher) == [(EventType.NodeDataChanged, "/w")]


def test_a_stage_that_takes_over_delivery_stops_the_connection_write(tmp_path: Path) -> None:
    stage = Recorder(keep=False)
    _, watcher = _watched_change(tmp_path, stage)
    assert stage.seen == [(EventType.NodeDataChanged, "/w", 1)]
    assert events(watcher) == []
