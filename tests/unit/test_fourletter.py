"""Four-letter words, the AdminServer's JSON, statistics and throttling, driven in-process.

A ZKServer on a `Clock` reactor (never started: nothing here needs the store), connections
on `StringTransport`s. Formats are the ones observed on Apache ZooKeeper 3.8.0 (see
tests/e2e/test_ops.py for the live comparison).
"""

from __future__ import annotations

import json
import re
import struct

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from core.config import parse
from core.connection import OwedWrite, ServerConnection
from core.ops import admin, fourletter
from core.ops.stats import Latency
from core.server import ZKServer


def make_server(extra: str = "4lw.commands.whitelist=*\n") -> ZKServer:
    config = parse("storage=memory\nclientPort=0\ntickTime=2000\n" + extra)
    clock = Clock()
    clock.advance(1_800_000_000)
    return ZKServer(config, reactor=clock)


def connect(server: ZKServer, port: int = 40000) -> ServerConnection:
    conn = ServerConnection(server)
    conn.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port)))
    return conn


def word(server: ZKServer, w: str, extra: bytes = b"") -> str:
    conn = connect(server, 50000)
    conn.dataReceived(w.encode() + extra)
    out = conn.transport.value().decode()
    conn.connectionLost(None)
    return out


@pytest.fixture
def server() -> ZKServer:
    return make_server()


def test_ruok_and_srvr(server: ZKServer) -> None:
    assert word(server, "ruok") == "imok"
    text = word(server, "srvr")
    assert re.fullmatch(
        r"Zookeeper version: 3\.8\.0-\S+, built on .+\n"
        r"Latency min/avg/max: 0/0\.0/0\nReceived: \d+\nSent: \d+\nConnections: 1\n"
        r"Outstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 5\n", text), text


def test_whitelist_refusal_and_srvr_always_allowed() -> None:
    server = make_server("")
    assert word(server, "ruok") == "ruok is not executed because it is not in the whitelist.\n"
    assert word(server, "mntr") == "mntr is not executed because it is not in the whitelist.\n"
    assert word(server, "srvr").startswith("Zookeeper version: ")
    server = make_server("4lw.commands.whitelist=stat, ruok\n")
    assert word(server, "ruok") == "imok"
    assert word(server, "stat").startswith("Zookeeper version: ")
    assert "not in the whitelist" in word(server, "conf")


def test_unknown_word_is_a_length(server: ZKServer) -> None:
    assert fourletter.answer(server, "abcd") is None


def test_stat_lists_the_asking_connection(server: ZKServer) -> None:
    connect(server, 41000)
    text = word(server, "stat")
    assert "Clients:\n /127.0.0.1:41000[0](queued=0,recved=0,sent=0)\n" in text
    assert " /127.0.0.1:50000[0](queued=0,recved=1,sent=0)\n\nLatency" in text


def test_counts_four_letter_words_as_packets(server: ZKServer) -> None:
    word(server, "ruok")
    text = word(server, "srvr")
    assert "Received: 2\nSent: 1\n" in text


def test_gtmk_stmk(server: ZKServer) -> None:
    assert word(server, "gtmk") == "306"
    assert word(server, "stmk", struct.pack(">q", 31)) == "31"
    assert word(server, "gtmk") == "31"
    assert word(server, "stmk") == ""  # no mask bytes: ZooKeeper answers nothing


def test_srst_crst(server: ZKServer) -> None:
    server.stats.latency.add(3, 7)
    assert word(server, "srst") == "Server stats reset.\n"
    assert server.stats.latency.count == 0
    assert word(server, "crst") == "Connection stats reset.\n"


def test_plain_formats(server: ZKServer) -> None:
    assert word(server, "wchs") == "0 connections watching 0 paths\nTotal watches:0\n"
    assert word(server, "wchc") == "\n"
    assert word(server, "wchp") == "\n"
    assert word(server, "isro") == "rw"
    assert word(server, "hash") == ""
    assert word(server, "dirs") == "datadir_size: 0\nlogdir_size: 0\n"
    conf = word(server, "conf")
    assert conf.startswith("clientPort=0\nsecureClientPort=-1\n") and conf.endswith("serverId=0\n")
    envi = word(server, "envi")
    assert envi.startswith("Environment:\nzookeeper.version=3.8.0-") and "java.version=" in envi
    dump = word(server, "dump")
    assert dump.startswith("SessionTracker dump:\nSession Sets (0)/(0):\nephemeral nodes dump:\n"
                           "Sessions with Ephemerals (0):\nConnections dump:\n")
    mntr = word(server, "mntr")
    lines = dict(line.split("\t", 1) for line in mntr.splitlines())
    assert lines["zk_server_state"] == "standalone"
    assert lines["zk_znode_count"] == "5"
    assert lines["zk_approximate_data_size"] == "44"


def test_digest_history(server: ZKServer) -> None:
    server.stats.log_digest(127, 1)
    server.stats.log_digest(128, 203039885740)
    server.stats.log_digest(256, -5)
    assert word(server, "hash") == "80: 203039885740\n100: -5\n"
    body = admin.run_command(server, _table(), "hash", {})
    assert body == {"digests": [{"zxid": 128, "digest": 203039885740, "digest_version": 2},
                                {"zxid": 256, "digest": -5, "digest_version": 2}],
                    "command": "hash", "error": None}


def test_latency_counter() -> None:
    lat = Latency()
    assert (lat.min, lat.avg, lat.max) == (0, 0.0, 0)
    lat.add(2, 3)
    lat.add(1, 1)
    lat.add(1, 24)
    assert (lat.min, lat.max, lat.count, lat.total) == (1, 24, 4, 31)
    assert lat.avg == 7.75


def _table() -> dict:
    return admin.AdminResource(make_server(), "/commands", "").table


def test_jackson_layout() -> None:
    assert admin.jackson({"command": "ruok", "error": None}) == '{\n  "command" : "ruok",\n  "error" : null\n}'
    assert admin.jackson({"a": [], "b": {}, "c": [1, 2], "d": [{"x": 1}]}) == (
        '{\n  "a" : [ ],\n  "b" : { },\n  "c" : [ 1, 2 ],\n  "d" : [ {\n    "x" : 1\n  } ]\n}')


def test_admin_commands_and_aliases(server: ZKServer) -> None:
    table = admin.AdminResource(server, "/commands", "tickTime=2000\n").table
    assert admin.run_command(server, table, "ruok", {}) == {"command": "ruok", "error": None}
    assert admin.run_command(server, table, "nosuch", {}) == {"command": "nosuch", "error": "Unknown command: nosuch"}
    assert admin.run_command(server, table, "conf", {})["command"] == "configuration"
    leader = admin.run_command(server, table, "lead", {})
    assert list(leader) == ["error", "command"] and leader["error"] == "server is not initialized"
    assert admin.run_command(server, table, "icfg", {})["initial_configuration"] == "tickTime=2000\n"
    assert admin.run_command(server, table, "set_trace_mask", {"traceMask": ["255"]})["tracemask"] == 255
    assert admin.run_command(server, table, "gtmk", {})["tracemask"] == 255
    bad = admin.run_command(server, table, "stmk", {"traceMask": ["abc"]})
    assert bad == {"error": "setTraceMask requires long traceMask argument, got abc", "command": "set_trace_mask"}
    for name in {primary for primary, _ in table.values()}:
        body = admin.run_command(server, table, name, {})
        json.loads(admin.jackson(body))
        assert body["command"] == name


def test_watch_reports(server: ZKServer) -> None:
    a, b = connect(server, 41001), connect(server, 41002)
    a.session_id, b.session_id = 0x100, 0x200
    server.watches.add(0, "/x", a)
    server.watches.add(0, "/x", b)
    server.watches.add(0, "/nope", a)
    server.watches.add(1, "/x", b)  # a child watch: not in the data-watch reports, in watch_count
    assert word(server, "wchs") == "2 connections watching 2 paths\nTotal watches:3\n"
    assert fourletter.watch_count(server) == 4
    wchp = word(server, "wchp")
    assert "/nope\n\t0x100\n" in wchp
    table = admin.AdminResource(server, "/commands", "").table
    assert admin.run_command(server, table, "watch_summary", {}) == {
        "num_connections": 2, "num_paths": 2, "num_total_watches": 3, "command": "watch_summary", "error": None}


def test_reply_latency_and_packets(server: ZKServer) -> None:
    conn = connect(server)
    conn.handshaken = True
    conn.session_id = 0x123
    clock = server.reactor
    conn.dataReceived(b"")  # sets received_at
    conn.reply_now_or_queue(lambda: b"\x00\x00\x00\x10" + bytes(16))
    clock.advance(0.005)
    conn.flush()
    assert server.stats.latency.count == 1 and server.stats.latency.max == 5
    assert server.stats.packets_sent == 1 and server.stats.min_response_size == 16
    conn.dataReceived(b"")  # a new batch: the write arrives now
    slot = OwedWrite(0x123, 7, 5, None, b"", (), conn, conn.received_at)
    conn.pending.append(slot)
    clock.advance(0.012)
    conn.complete(slot, b"\x00\x00\x00\x10" + bytes(16))
    conn.flush()  # counted when written
    assert server.stats.latency.max == 12
    assert conn.cstats.latency.count == 2


def test_global_outstanding_limit_pauses_and_resumes() -> None:
    server = make_server("globalOutstandingLimit=2\n")
    server.consensus.submit = lambda request: None  # keep writes outstanding
    conn = connect(server)
    conn.handshaken = True
    conn.session_id = 0x42
    for xid in range(1, 3):
        server.submit(conn, xid, 5, None, bytes(8))
    assert conn.transport.producerState == "producing"
    server.submit(conn, 3, 5, None, bytes(8))
    assert conn.transport.producerState == "paused"
    assert fourletter.interest_ops(server, conn) == 0
    server.waiting.pop((0x42, 3))
    server.flush()
    assert conn.transport.producerState == "producing"
    assert not server.stats.throttled
