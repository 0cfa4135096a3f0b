"""Operating it: four-letter words, the AdminServer and Prometheus metrics, ours beside Apache
ZooKeeper 3.8 (Debian's package).

Both servers run as processes on free ports of 127.0.0.1, with the AdminServer on (ours also
with the metrics endpoint), each holding the same small load (one kazoo session with an
ephemeral node and watches). Every four-letter word and every AdminServer command the live
3.8 lists is read on both and compared by shape: numbers, ids, addresses and dates are
normalized; JVM- and Netty-internal values (mntr's processor summaries, Java's system
properties) are left aside. Tests needing Java skip without the package, and fail under CI=true.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import SLF4J_JAR, ZK_JAR, ApacheZK, OurZK, four_letter, free_port, require_zookeeper

pytestmark = pytest.mark.timeout(120)

HOST = "127.0.0.1"
SERVLET_JAR = Path("/usr/share/java/servlet-api.jar")
WORDS = ["ruok", "srvr", "stat", "conf", "cons", "dump", "envi", "mntr", "wchs", "wchc", "wchp",
         "dirs", "isro", "hash", "gtmk", "crst", "srst"]
# mntr values of ZooKeeperServer.dumpMonitorValues: every one must be ours too.
MNTR_CORE = {
    "version", "server_state", "ephemerals_count", "num_alive_connections", "avg_latency",
    "outstanding_requests", "znode_count", "global_sessions", "non_mtls_remote_conn_count",
    "last_client_response_size", "packets_sent", "packets_received", "max_client_response_size",
    "connection_drop_probability", "watch_count", "auth_failed_count", "min_latency",
    "max_file_descriptor_count", "approximate_data_size", "open_file_descriptor_count",
    "local_sessions", "uptime", "max_latency", "outstanding_tls_handshake",
    "min_client_response_size", "non_mtls_local_conn_count",
}
PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


class ApacheWithAdmin(ApacheZK):
    """Apache ZooKeeper 3.8 with its Jetty AdminServer (needs the servlet API on the classpath)."""

    def command(self, cfg_path: Path) -> tuple[list[str], Path | None]:
        require_zookeeper()
        if not SERVLET_JAR.exists():
            pytest.skip(f"{SERVLET_JAR} missing (the AdminServer needs it)")
        argv = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dzookeeper.log.dir={self.workdir}",
                "-cp", f"{ZK_JAR}:{SLF4J_JAR}:{SERVLET_JAR}",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg_path)]
        return argv, self.workdir


def admin_cfg(port: int) -> dict[str, str]:
    return {"admin.enableServer": "true", "admin.serverAddress": HOST, "admin.serverPort": str(port)}


def load(srv) -> object:
    """One kazoo session holding an ephemeral node, data/exists/child watches."""
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=srv.hosts, timeout=10.0)
    zk.start(timeout=15)
    zk.ensure_path("/ops")
    zk.set("/ops", b"hello")
    zk.create("/ops/e", b"abc", ephemeral=True, sequence=True)
    zk.get("/ops", watch=lambda e: None)
    zk.exists("/ops/missing", watch=lambda e: None)
    zk.get_children("/ops", watch=lambda e: None)
    for _ in range(5):
        zk.get("/ops")
    return zk


@pytest.fixture(scope="module")
def pair():
    """(apache, ours), both loaded; each has .admin (its AdminServer port); ours has .metrics."""
    started, clients = [], []
    try:
        a_admin = free_port(HOST)
        apache = ApacheWithAdmin(HOST, extra_cfg=admin_cfg(a_admin))
        apache.admin = a_admin
        apache.start()
        started.append(apache)
        o_admin, o_metrics = free_port(HOST), free_port(HOST)
        cfg = admin_cfg(o_admin) | {"metricsProvider.className": PROMETHEUS,
                                    "metricsProvider.httpHost": HOST,
                                    "metricsProvider.httpPort": str(o_metrics)}
        ours = OurZK(HOST, extra_cfg=cfg)
        ours.admin, ours.metrics = o_admin, o_metrics
        ours.start()
        started.append(ours)
        clients = [load(apache), load(ours)]
        yield apache, ours
    finally:
        for c in clients:
            c.stop()
            c.close()
        for srv in started:
            srv.stop()


@pytest.fixture(scope="module")
def ours_only():
    """Ours alone with metrics, for tests that do not need Java."""
    metrics = free_port(HOST)
    srv = OurZK(HOST, extra_cfg={"admin.enableServer": "false",
                                 "metricsProvider.className": PROMETHEUS,
                                 "metricsProvider.httpHost": HOST,
                                 "metricsProvider.httpPort": str(metrics),
                                 "globalOutstandingLimit": "2", "maxClientCnxns": "4"})
    srv.metrics = metrics
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# -- helpers ------------------------------------------------------------------------------------

_VERSION = re.compile(r"3\.8\.0-\S+, built on [^\n\"]+")
_DATE = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \w+ \d{4}")
_ADDR = re.compile(r"/?\d+\.\d+\.\d+\.\d+:\d+")
_HEX = re.compile(r"0x[0-9a-f]+")
_NUM = re.compile(r"-?\d+(\.\d+)?")


def shape(text: str) -> str:
    """The text with versions, dates, addresses, hex ids and numbers replaced by placeholders."""
    text = _VERSION.sub("VERSION", text)
    text = re.sub(r"/tmp/[^\"\s]*", "PATH", text)
    text = _DATE.sub("DATE", text)
    text = _ADDR.sub("ADDR", text)
    text = _HEX.sub("HEX", text)
    text = re.sub(r"/ops/e\d+", "/ops/e", text)
    return _NUM.sub("N", text)


def line_shapes(text: str) -> set[str]:
    """The set of line patterns, without ZooKeeper's empty expiry buckets (a session that
    moves to a later bucket leaves an empty set behind on Java; ours drops it)."""
    kept = [line for line in text.splitlines()
            if not re.fullmatch(r'0 expire at .*|\s*"\d+" : \[ \],?', line)]
    return set(shape("\n".join(kept)).splitlines())


def kv(text: str, sep: str) -> dict[str, str]:
    return dict(line.split(sep, 1) for line in text.splitlines() if sep in line)


def get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type") or "", r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type") or "", e.read().decode()


def key_shape(value: object) -> object:
    """Keys all the way down (lists by their first element), values dropped."""
    if isinstance(value, dict):
        if value and all(re.fullmatch(r"-?\d+|/.*", k) for k in value):  # keyed by ids/times/paths
            values = list(value.values())
            return {"*": key_shape(next((v for v in values if v), values[0]))}
        return {k: key_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


# -- four-letter words --------------------------------------------------------------------------

@pytest.mark.needs_zookeeper
@pytest.mark.parametrize("word", WORDS)
def test_four_letter_word_formats_match(pair, word):
    apache, ours = pair
    a, o = apache.four_letter(word), ours.four_letter(word)
    if word == "mntr":
        a_keys, o_keys = set(kv(a, "\t")), set(kv(o, "\t"))
        assert {"zk_" + k for k in MNTR_CORE} <= o_keys
        assert o_keys <= a_keys, f"keys ZooKeeper does not have: {o_keys - a_keys}"
        assert all(re.fullmatch(r"zk_\w+\t.*", line) for line in o.splitlines())
    elif word in ("conf", "envi"):
        assert list(kv(o, "=")) == list(kv(a, "="))
        assert o.splitlines()[0] == a.splitlines()[0] or word == "conf"
    elif word in ("srvr", "ruok", "isro", "gtmk", "crst", "srst", "dirs", "wchs", "hash"):
        assert shape(o) == shape(a)
    else:  # order of sessions/connections is a hash order on Java: compare the line patterns
        assert line_shapes(o) == line_shapes(a), (a, o)
        assert o.endswith("\n") == a.endswith("\n")


@pytest.mark.needs_zookeeper
def test_stmk_sets_the_trace_mask(pair):
    for srv in pair:
        mask = struct.pack(">q", 31)
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b"stmk" + mask)
            out = b""
            while chunk := s.recv(100):
                out += chunk
        assert out == b"31"
        assert srv.four_letter("gtmk") == "31"
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b"stmk" + struct.pack(">q", 306))
            s.recv(100)


@pytest.mark.needs_zookeeper
def test_srvr_parses_like_zkserver_sh_status(pair):
    for srv in pair:
        srvr = srv.four_letter("srvr")
        assert [line for line in srvr.splitlines() if "Mode" in line] == ["Mode: standalone"]
        assert re.search(r"^Zookeeper version: 3\.8\.0-", srvr, re.M)


def test_whitelist_refusal_text_matches():
    """A whitelist without mntr: the same refusal text on both; srvr is always allowed."""
    require_zookeeper()
    texts = {}
    for cls in (ApacheZK, OurZK):
        with cls(HOST, extra_cfg={"4lw.commands.whitelist": "ruok, conf"}) as srv:
            texts[cls.kind] = {w: srv.four_letter(w) for w in ("ruok", "mntr", "wchp", "srvr")}
    a, o = texts["apache"], texts["ours"]
    assert a["mntr"] == o["mntr"] == "mntr is not executed because it is not in the whitelist.\n"
    assert a["wchp"] == o["wchp"] == "wchp is not executed because it is not in the whitelist.\n"
    assert a["ruok"] == o["ruok"] == "imok"
    assert shape(a["srvr"]) == shape(o["srvr"])


# -- the AdminServer ----------------------------------------------------------------------------

def _index(port: int) -> list[str]:
    status, _, body = get(port, "/commands")
    assert status == 200
    return re.findall(r'<a href="/commands/(\w+)">', body)


@pytest.mark.needs_zookeeper
def test_admin_index_matches(pair):
    apache, ours = pair
    assert get(ours.admin, "/commands")[2] == get(apache.admin, "/commands")[2]
    assert get(ours.admin, "/commands/")[2] == get(apache.admin, "/commands/")[2]
    assert len(_index(apache.admin)) >= 26


@pytest.mark.needs_zookeeper
def test_every_admin_command_matches(pair):
    apache, ours = pair
    for name in _index(apache.admin):
        a_status, a_type, a_body = get(apache.admin, f"/commands/{name}")
        o_status, o_type, o_body = get(ours.admin, f"/commands/{name}")
        assert (o_status, o_type) == (a_status, a_type) == (200, "application/json"), name
        a, o = json.loads(a_body), json.loads(o_body)
        assert o["command"] == a["command"] == name
        assert list(o)[-2:] == list(a)[-2:], name  # "command", "error" close the object
        if name == "monitor":
            assert MNTR_CORE <= set(o) <= set(a)
        elif name == "system_properties":
            assert {k for k in a if k.startswith("zookeeper.") and k != "zookeeper.log.dir"} <= set(o)
        else:
            assert key_shape(o) == key_shape(a), name
        # Jackson's layout: same text once values are normalized (order kept when it is not
        # a hash order: objects keyed by session ids/paths are compared by their lines)
        if name == "watches":  # one watching session each: the same paths
            assert [sorted(v) for v in o["session_id_to_watched_paths"].values()] == \
                [sorted(v) for v in a["session_id_to_watched_paths"].values()]
        elif name == "watches_by_path":
            assert {p: len(v) for p, v in o["path_to_session_ids"].items()} == \
                {p: len(v) for p, v in a["path_to_session_ids"].items()}
        elif name in ("dump", "connections", "stats"):
            assert line_shapes(o_body) == line_shapes(a_body), name
        elif name in ("configuration", "ruok", "leader", "watch_summary", "is_read_only",
                      "voting_view", "observers", "zabstate", "get_trace_mask", "hash", "dirs",
                      "server_stats", "last_snapshot", "connection_stat_reset", "stat_reset",
                      "observer_connection_stat_reset"):
            assert shape(o_body) == shape(a_body), name


@pytest.mark.needs_zookeeper
def test_admin_aliases_errors_and_http(pair):
    apache, ours = pair
    for alias in ("conf", "config", "cons", "crst", "env", "envi", "gtmk", "icfg", "isro", "lsnp",
                  "lead", "mntr", "orst", "obsr", "srvr", "stmk", "srst", "stat", "sysp", "wchs",
                  "wchc", "wchp", "nosuch", "ruok/extra", "RUOK"):
        a = json.loads(get(apache.admin, f"/commands/{alias}")[2])
        o = json.loads(get(ours.admin, f"/commands/{alias}")[2])
        assert (o["command"], o["error"] is None) == (a["command"], a["error"] is None), alias
        if alias in ("nosuch", "ruok/extra", "RUOK"):
            assert o == a
    for query in ("?traceMask=255", "?traceMask=abc", ""):
        a = get(apache.admin, f"/commands/set_trace_mask{query}")[2]
        o = get(ours.admin, f"/commands/set_trace_mask{query}")[2]
        assert o == a, query
    get(apache.admin, "/commands/set_trace_mask?traceMask=306")
    get(ours.admin, "/commands/set_trace_mask?traceMask=306")
    for path, method in (("/", "GET"), ("/foo", "GET"), ("/commands/ruok", "POST")):
        assert get(ours.admin, path, method)[0] == get(apache.admin, path, method)[0], (path, method)
    with socket.create_connection((HOST, ours.admin), timeout=5) as s:
        s.sendall(b"GARBAGE nonsense\r\n\r\n")
        reply = s.recv(4096)
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", reply), reply
    assert b"Traceback" not in reply


# -- metrics, logs, limits (ours only) ----------------------------------------------------------

def scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
            if not s.labels}


def test_metrics_move_under_load(ours_only):
    from kazoo.client import KazooClient
    before = scrape(ours_only.metrics)
    for name in ("znode_count", "watch_count", "outstanding_requests", "avg_latency", "min_latency",
                 "max_latency", "packets_received", "packets_sent", "num_alive_connections",
                 "ephemerals_count", "approximate_data_size", "open_file_descriptor_count",
                 "uptime", "global_sessions", "bytes_received_count", "process_open_fds"):
        assert name in before, name
    zk = KazooClient(hosts=ours_only.hosts, timeout=10.0)
    zk.start(timeout=15)
    try:
        zk.ensure_path("/m")
        for i in range(20):
            zk.create(f"/m/n{i}", b"x" * 10)
        zk.create("/m/e", ephemeral=True)
        zk.get("/m", watch=lambda e: None)
        during = scrape(ours_only.metrics)
        assert during["znode_count"] == before["znode_count"] + 22
        assert during["ephemerals_count"] == before["ephemerals_count"] + 1
        assert during["watch_count"] >= before["watch_count"] + 1
        assert during["num_alive_connections"] >= 1
        assert during["packets_received"] >= before["packets_received"] + 23
        assert during["packets_sent"] >= before["packets_sent"] + 23
        assert during["approximate_data_size"] > before["approximate_data_size"] + 200
        assert during["global_sessions"] == before["global_sessions"] + 1
    finally:
        zk.stop()
        zk.close()
    assert urllib.request.urlopen(f"http://{HOST}:{ours_only.metrics}/metrics").status == 200
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://{HOST}:{ours_only.metrics}/nope")


def test_global_outstanding_limit_throttles_but_completes(ours_only):
    """globalOutstandingLimit=2: a burst of 300 async writes pauses reading, and all complete."""
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=ours_only.hosts, timeout=10.0)
    zk.start(timeout=15)
    try:
        zk.ensure_path("/burst")
        results = [zk.create_async(f"/burst/n{i}", b"v") for i in range(300)]
        assert all(r.get(timeout=30) == f"/burst/n{i}" for i, r in enumerate(results))
        assert len(zk.get_children("/burst")) == 300
    finally:
        zk.stop()
        zk.close()


def test_session_logs_and_rejected_connections(ours_only):
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=ours_only.hosts, timeout=10.0)
    zk.start(timeout=15)
    zk.stop()
    zk.close()
    socks = []
    try:
        for _ in range(8):  # maxClientCnxns=4 from one address: the rest are refused
            try:
                socks.append(socket.create_connection((ours_only.host, ours_only.port), timeout=5))
            except ConnectionResetError:  # a refusal may beat the connect's return
                pass
        time.sleep(0.3)
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = ours_only.log_tail(400)
        if "Processed session termination" in log and "Too many connections" in log:
            break
        time.sleep(0.1)
    assert re.search(r"Established session 0x[0-9a-f]+ with negotiated timeout \d+ for client /", log)
    assert re.search(r"Processed session termination for sessionid: 0x[0-9a-f]+", log)
    assert "Too many connections from 127.0.0.1 - max is 4" in log
    time.sleep(0.3)
    mntr = kv(four_letter(ours_only.host, ours_only.port, "mntr"), "\t")
    assert int(mntr["zk_connection_rejected"]) >= 4
