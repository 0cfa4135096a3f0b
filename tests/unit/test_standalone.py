"""The standalone consensus's group commit with a storage thread: the batch queued behind a
durable one is appended before that one is applied (the two overlap), and yet every txn is
applied, and every write and sync answered, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.opcodes import OpCode
from core.records import ACL, CreateRequest, Id, PathRequest, RequestHeader, SetDataRequest
from tests.inprocess import Client, HeldStorage, start_server

pytestmark = pytest.mark.timeout(30)

OPEN = [ACL(31, Id("world", "anyone"))]


def zxids(args: tuple[Any, ...]) -> list[int]:
    """The zxids an append was handed."""
    return [zxid for zxid, _ in args[0]]


def send(client: Client, op: int, record: Any) -> None:
    """A request, without waiting for its reply."""
    client.xid += 1
    client.send(RequestHeader.encode(RequestHeader(client.xid, op)) + type(record).encode(record))


def test_the_next_batch_is_appended_before_the_last_is_applied_and_all_stays_in_order(tmp_path: Path) -> None:
    server, clock = start_server(tmp_path, 2000)
    client = Client(server, clock, 40001)
    client.connect(30000)
    applied_at_call: list[int] = []  # the tree's last zxid when each append was made
    held = HeldStorage(lambda args: applied_at_call.append(server.tree.last_zxid))
    server.storage = held
    base = server.tree.last_zxid
    send(client, OpCode.create, CreateRequest("/a", b"0", OPEN, 0))  # batch 1, held
    send(client, OpCode.setData, SetDataRequest("/a", b"1", 0))       # queued: batch 2
    send(client, OpCode.sync, PathRequest("/a"))
    assert len(held.held) == 1 and client.replies() == []
    assert zxids(held.release()) == [base + 1]
    # batch 2 went to the log before batch 1 was applied; then batch 1 was applied and answered
    assert len(held.held) == 1 and applied_at_call == [base, base]
    assert server.tree.nodes["/a"].data == b"0"
    (create,) = client.replies()
    assert create[0].zxid == base + 1 and create[0].err == 0
    send(client, OpCode.sync, PathRequest("/a"))  # only a sync queued behind batch 2
    assert zxids(held.release()) == [base + 2]
    replies = client.replies()
    # the setData, then both syncs, stamped with the setData's zxid (applied before them)
    assert [(h.xid, h.zxid, h.err) for h, _ in replies] == [(2, base + 2, 0), (3, base + 2, 0), (4, base + 2, 0)]
    assert server.tree.nodes["/a"].data == b"1" and held.held == []
    # an idle consensus writes the next write at once
    send(client, OpCode.setData, SetDataRequest("/a", b"2", 1))
    assert zxids(held.release()) == [base + 3]
    assert [(h.xid, h.err) for h, _ in client.replies()] == [(5, 0)]
