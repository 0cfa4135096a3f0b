"""The AdminServer: ZooKeeper 3.8's ``/commands/<name>`` JSON over HTTP, with twisted.web.

``GET <admin.commandURL>`` (default ``/commands``) lists the commands as ZooKeeper's HTML index;
``GET <admin.commandURL>/<name or alias>`` runs one and answers JSON in Jackson's pretty-printed
layout, ZooKeeper's field names, then ``"command"`` (the primary name) and ``"error"``. An
unknown name answers 200 with ``"error" : "Unknown command: <name>"``, as ZooKeeper does; paths
outside the command URL are 404, methods other than GET/HEAD 405, a malformed request 400
(twisted.web), never a traceback.

Started only when ``admin.enableServer`` is true (ZooKeeper's default), on
``admin.serverAddress:admin.serverPort`` (0.0.0.0:8080).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from core.ops import fourletter as fl

if TYPE_CHECKING:
    from core.server import ZKServer

log = Logger()

Handler = Callable[["ZKServer", dict[str, list[str]]], dict[str, Any]]

# ZooKeeper keys that QuorumPeerConfig reads itself; every other zoo.cfg key becomes the system
# property "zookeeper.<key>" (what system_properties shows).
_QUORUM_PEER_CONFIG_KEYS = frozenset({
    "dataDir", "dataLogDir", "clientPort", "localSessionsEnabled", "localSessionsUpgradingEnabled",
    "clientPortAddress", "secureClientPort", "secureClientPortAddress", "observerMasterPort",
    "clientPortListenBacklog", "tickTime", "maxClientCnxns", "minSessionTimeout",
    "maxSessionTimeout", "initLimit", "syncLimit", "connectToLearnerMasterLimit", "electionAlg",
    "quorumListenOnAllIPs", "peerType", "syncEnabled", "dynamicConfigFile",
    "autopurge.snapRetainCount", "autopurge.purgeInterval", "standaloneEnabled",
    "reconfigEnabled", "sslQuorum", "portUnification", "sslQuorumReloadCertFiles",
    "client.portUnification", "quorum.cnxn.threads.size", "oraclePath",
})
_QUORUM_PEER_CONFIG_PREFIXES = ("server.", "group.", "weight.", "quorum.auth.", "metricsProvider.",
                                "multiAddress.", "jvm.pause.")


# -- JSON as Jackson's DefaultPrettyPrinter writes it ----------------------------------------------

def jackson(value: Any, level: int = 0) -> str:
    """JSON in Jackson's pretty layout: ``"key" : value``, two-space indents per object level,
    arrays inline (``[ 1, 2 ]``, ``[ ]``), empty objects ``{ }``, no trailing newline."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        pad = "  " * (level + 1)
        body = ",".join(f"\n{pad}{json.dumps(str(k), ensure_ascii=False)} : {jackson(v, level + 1)}"
                        for k, v in value.items())
        return "{" + body + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(jackson(v, level) for v in value) + " ]"
    return json.dumps(value, ensure_ascii=False)


# -- the commands ---------------------------------------------------------------------------------

def _connection(server: ZKServer, conn: Any, brief: bool) -> dict[str, Any]:
    """ServerCnxn.getConnectionInfo."""
    info: dict[str, Any] = {
        "remote_socket_address": f"{conn.peer.host}:{conn.peer.port}",
        "interest_ops": fl.interest_ops(server, conn),
        "outstanding_requests": len(conn.pending),
        "packets_received": conn.packets_received,
        "packets_sent": conn.packets_sent,
    }
    if not brief:
        s = conn.cstats
        lat = s.latency
        info.update({
            "session_id": fl.signed(conn.session_id),
            "last_operation": s.last_op,
            "established": s.established,
            "session_timeout": conn.timeout,
            "last_cxid": s.last_cxid,
            "last_zxid": s.last_zxid,
            "last_response_time": s.last_response,
            "last_latency": s.last_latency,
            "min_latency": lat.min,
            "avg_latency": lat.total // lat.count if lat.count else 0,
            "max_latency": lat.max,
        })
    return info


def _sessions_only(server: ZKServer) -> list[Any]:
    """The client connections (an HTTP request is not one)."""
    return fl.clients(server)


def connections(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return {"connections": [_connection(server, c, False) for c in _sessions_only(server)],
            "secure_connections": []}


def configuration(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    v = fl.conf_values(server)
    out = {
        "client_port": v["clientPort"],
        "data_dir": str(v["dataDir"]),
        "data_log_dir": str(v["dataLogDir"]),
        "tick_time": v["tickTime"],
        "max_client_cnxns": v["maxClientCnxns"],
        "min_session_timeout": v["minSessionTimeout"],
        "max_session_timeout": v["maxSessionTimeout"],
        "server_id": v["serverId"],
        "client_port_listen_backlog": v["clientPortListenBacklog"],
    }
    for key, name in (("initLimit", "init_limit"), ("syncLimit", "sync_limit"),
                      ("electionAlg", "election_alg"), ("electionPort", "election_port"),
                      ("quorumPort", "quorum_port"), ("peerType", "peer_type")):
        if key in v:
            out[name] = v[key]
    if fl.mode(server) != "standalone":
        out["membership"] = "".join(f"server.{sid}={fl.server_line(spec)}\n"
                                    for sid, spec in sorted(server.config.servers.items()))
    return out


def environment(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return dict(fl.environment())


def monitor(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return fl.monitor_values(server)


def ruok(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return {}


def _server_stats(server: ZKServer) -> dict[str, Any]:
    """SrvrCommand's body (ServerStats serialized by Jackson)."""
    s = server.stats
    v = fl.server_values(server)
    data_size, log_size = fl.dir_sizes(server)
    response = {"last_buffer_size": s.last_response_size, "min_buffer_size": s.min_response_size,
                "max_buffer_size": s.max_response_size}
    return {
        "version": fl.FULL_VERSION,
        "read_only": fl.read_only(server),
        "server_stats": {
            "packets_sent": v["packets_sent"],
            "packets_received": v["packets_received"],
            "fsync_threshold_exceed_count": 0,
            "client_response_stats": dict(response),
            "data_dir_size": data_size,
            "log_dir_size": log_size,
            "provider_null": False,
            "server_state": fl.mode(server),
            "last_processed_zxid": v["last_processed_zxid"],
            "outstanding_requests": v["outstanding_requests"],
            "avg_latency": v["avg_latency"],
            "max_latency": v["max_latency"],
            "min_latency": v["min_latency"],
            "num_alive_client_connections": len(_sessions_only(server)),
            "uptime": fl.uptime_ms(server),
            "auth_failed_count": s.auth_failed,
            "non_mtlsremote_conn_count": 0,
            "non_mtlslocal_conn_count": 0,
        },
        "client_response": response,
        "node_count": v["node_count"],
    }


def server_stats(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return _server_stats(server)


def stats(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    out = _server_stats(server)
    out["connections"] = [_connection(server, c, True) for c in _sessions_only(server)]
    out["secure_connections"] = []
    return out


def watches(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    table = fl.by_session(fl.data_watches(server))
    return {"session_id_to_watched_paths": {str(fl.signed(sid)): paths for sid, paths in table.items()}}


def watches_by_path(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    table = fl.data_watches(server)
    return {"path_to_session_ids": {path: [fl.signed(w.session_id) for w in holders]
                                    for path, holders in table.items()}}


def watch_summary(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    table = fl.data_watches(server)
    return {"num_connections": len(fl.by_session(table)), "num_paths": len(table),
            "num_total_watches": sum(len(h) for h in table.values())}


def dump(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "expiry_time_to_session_ids": {str(t): [fl.signed(s) for s in sids]
                                       for t, sids in fl.session_buckets(server)},
        "session_id_to_ephemeral_paths": {str(fl.signed(sid)): sorted(paths)
                                          for sid, paths in server.tree.ephemerals.items() if paths},
    }


def _consensus(server: ZKServer, name: str, default: Any = None) -> Any:
    return getattr(server.consensus, name, default)


def leader(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    role = fl.mode(server)
    if role == "standalone":
        return {"error": "server is not initialized"}
    leader_id = _consensus(server, "leader_id")
    spec = server.config.servers.get(leader_id) if leader_id is not None else None
    return {"is_leader": role == "leader", "leader_id": leader_id if leader_id is not None else -1,
            "leader_ip": spec.host if spec is not None else ""}


def voting_view(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    if fl.mode(server) == "standalone":
        return {"current_config": {}}
    return {"current_config": {str(sid): fl.server_line(spec)
                               for sid, spec in sorted(server.config.servers.items())
                               if spec.role != "observer"}}


def is_read_only(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return {"read_only": fl.read_only(server)}


def last_snapshot(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    """The last snapshot's zxid (hex, no 0x) and time (seconds): what the snapshotter reports
    when it keeps them (``last_zxid``/``last_time``), else zxid 0 at start-up, as a fresh
    ZooKeeper writes its first snapshot when it starts."""
    snap = getattr(server, "snapshotter", None)
    zxid = getattr(snap, "last_zxid", None)
    when = getattr(snap, "last_time", None)
    return {"zxid": f"{zxid or 0:x}", "timestamp": int(when if when is not None else server.started_ms // 1000)}


def system_properties(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    """Java's system properties, in Python's terms, plus the zoo.cfg keys ZooKeeper turns into
    ``zookeeper.<key>`` properties. Sorted by name, as ZooKeeper lists them."""
    env = fl.environment()
    props: dict[str, Any] = {
        "file.encoding": sys.getdefaultencoding().upper().replace("UTF8", "UTF-8"),
        "file.separator": os.sep,
        "java.class.path": env["java.class.path"],
        "java.home": env["java.home"],
        "java.io.tmpdir": tempfile.gettempdir(),
        "java.library.path": env["java.library.path"],
        "java.runtime.name": platform.python_implementation(),
        "java.runtime.version": sys.version.split()[0],
        "java.vendor": env["java.vendor"],
        "java.version": env["java.version"],
        "java.vm.name": platform.python_implementation(),
        "line.separator": os.linesep,
        "os.arch": env["os.arch"],
        "os.name": env["os.name"],
        "os.version": env["os.version"],
        "path.separator": os.pathsep,
        "sun.java.command": " ".join(sys.argv),
        "user.dir": env["user.dir"],
        "user.home": env["user.home"],
        "user.name": env["user.name"],
    }
    for key, value in server.config.raw.items():
        if key not in _QUORUM_PEER_CONFIG_KEYS and not key.startswith(_QUORUM_PEER_CONFIG_PREFIXES):
            props["zookeeper." + key if not key.startswith("zookeeper.") else key] = value
    return dict(sorted(props.items()))


def connection_stat_reset(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    fl.crst(server)
    return {}


def stat_reset(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    server.stats.reset()
    return {}


def get_trace_mask(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return {"tracemask": server.stats.trace_mask}


def set_trace_mask(server: ZKServer, args: dict[str, list[str]]) -> dict[str, Any]:
    values = args.get("traceMask")
    if not values:
        return {"error": "setTraceMask requires long traceMask argument"}
    try:
        mask = int(values[0])
        if not -(1 << 63) <= mask < (1 << 63):
            raise ValueError(values[0])
    except ValueError:
        return {"error": f"setTraceMask requires long traceMask argument, got {values[0]}"}
    server.stats.trace_mask = mask
    return {"tracemask": mask}


def hash_(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    from core.ops.stats import DIGEST_VERSION
    return {"digests": [{"zxid": z, "digest": d, "digest_version": DIGEST_VERSION}
                        for z, d in fl.digests(server)]}


def dirs(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    data_size, log_size = fl.dir_sizes(server)
    return {"datadir_size": data_size, "logdir_size": log_size}


def observers(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    synced = list(_consensus(server, "observers", None) or [])
    return {"synced_observers": len(synced), "observers": synced}


def observer_connection_stat_reset(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    return {}


def zabstate(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
    role = fl.mode(server)
    if role == "standalone":
        return {"voting": False, "zabstate": ""}
    cfg = server.config
    spec = cfg.servers.get(cfg.server_id)
    zxid = server.tree.last_zxid
    return {
        "myid": cfg.server_id,
        "is_leader": role == "leader",
        "quorum_address": f"{spec.host}:{spec.quorum_port}" if spec else "",
        "election_address": f"{spec.host}:{spec.election_port}" if spec else "",
        "client_address": f"{cfg.client_port_address}:{cfg.client_port}",
        "voting": spec is not None and spec.role != "observer",
        "last_zxid": f"0x{zxid:x}",
        "zab_epoch": zxid >> 32,
        "zab_counter": zxid & 0xFFFFFFFF,
        "zabstate": str(_consensus(server, "zab_state", "broadcast")).upper(),
    }


def make_initial_configuration(text: str) -> Handler:
    def initial_configuration(server: ZKServer, _: dict[str, list[str]]) -> dict[str, Any]:
        return {"initial_configuration": text}
    return initial_configuration


# (primary name, aliases, handler): ZooKeeper 3.8's Commands, those of a standalone server and
# the quorum ones that answer on any server.
COMMANDS: list[tuple[str, tuple[str, ...], Handler | None]] = [
    ("configuration", ("conf", "config"), configuration),
    ("connection_stat_reset", ("crst",), connection_stat_reset),
    ("connections", ("cons",), connections),
    ("dirs", (), dirs),
    ("dump", (), dump),
    ("environment", ("env", "envi"), environment),
    ("get_trace_mask", ("gtmk",), get_trace_mask),
    ("hash", (), hash_),
    ("initial_configuration", ("icfg",), None),  # bound to the zoo.cfg text by AdminResource
    ("is_read_only", ("isro",), is_read_only),
    ("last_snapshot", ("lsnp",), last_snapshot),
    ("leader", ("lead",), leader),
    ("monitor", ("mntr",), monitor),
    ("observer_connection_stat_reset", ("orst",), observer_connection_stat_reset),
    ("observers", ("obsr",), observers),
    ("ruok", (), ruok),
    ("server_stats", ("srvr",), server_stats),
    ("set_trace_mask", ("stmk",), set_trace_mask),
    ("stat_reset", ("srst",), stat_reset),
    ("stats", ("stat",), stats),
    ("system_properties", ("sysp",), system_properties),
    ("voting_view", (), voting_view),
    ("watch_summary", ("wchs",), watch_summary),
    ("watches", ("wchc",), watches),
    ("watches_by_path", ("wchp",), watches_by_path),
    ("zabstate", (), zabstate),
]


def run_command(server: ZKServer, table: dict[str, tuple[str, Handler]], name: str,
                args: dict[str, list[str]]) -> dict[str, Any]:
    """The response map: the command's data, then "command" and "error" (an "error" the
    command set keeps its place, as in ZooKeeper's CommandResponse)."""
    entry = table.get(name)
    if entry is None:
        return {"command": name, "error": f"Unknown command: {name}"}
    primary, handler = entry
    try:
        data = handler(server, args)
    except Exception as e:  # a failing command answers its error, never a traceback
        log.failure("admin command {name} failed", name=primary)
        data = {"error": f"{type(e).__name__}: {e}"}
    data["command"] = primary
    data.setdefault("error", None)
    return data


class AdminResource(Resource):
    """Everything under the site root: the command URL and the commands below it."""

    isLeaf = True

    def __init__(self, server: ZKServer, command_url: str, initial_config: str) -> None:
        super().__init__()
        self.zk = server
        self.command_url = "/" + command_url.strip("/")
        self.table: dict[str, tuple[str, Handler]] = {}
        for primary, aliases, handler in COMMANDS:
            h = handler or make_initial_configuration(initial_config)
            for name in (primary, *aliases):
                self.table[name] = (primary, h)
        self.index = "".join(f'<a href="{self.command_url}/{p}">{p}</a>\n<br/>\n'
                             for p, _, _ in COMMANDS).encode()

    def render_GET(self, request: Request) -> bytes:
        path = request.path.decode("utf-8", "replace")
        if path in (self.command_url, self.command_url + "/"):
            return self.index
        prefix = self.command_url.rstrip("/") + "/"
        if not path.startswith(prefix):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/html;charset=iso-8859-1")
            return b"<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>\n"
        name = path[len(prefix):]
        args = {k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
                for k, vs in (request.args or {}).items()}
        body = jackson(run_command(self.zk, self.table, name, args))
        request.setHeader(b"content-type", b"application/json")
        return body.encode("utf-8")


class QuietSite(Site):
    """A Site without an access log line per request."""

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


class ListenerService(Service):
    """Listen on one TCP port while running; a port that cannot be bound is logged, and the
    server goes on without this listener (ZooKeeper goes on without its AdminServer)."""

    def __init__(self, reactor: Any, port: int, factory: Any, interface: str, what: str) -> None:
        self.reactor = reactor
        self.port_number = port
        self.factory = factory
        self.interface = interface
        self.what = what
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        try:
            self.port = self.reactor.listenTCP(self.port_number, self.factory, interface=self.interface)
        except CannotListenError as e:
            log.error("{what} not started: {err}", what=self.what, err=e)
            return
        log.info("{what} listening on {host}:{port}", what=self.what, host=self.interface,
                 port=self.port.getHost().port)

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


def _initial_config_text(server: ZKServer) -> str:
    try:
        return Path(server.config.source).read_text(encoding="utf-8")
    except OSError:
        return "".join(f"{k}={v}\n" for k, v in server.config.raw.items())


def admin_service(server: ZKServer) -> ListenerService:
    """The AdminServer as a child service (admin.serverAddress:admin.serverPort)."""
    cfg = server.config
    site = QuietSite(AdminResource(server, cfg.admin_command_url, _initial_config_text(server)))
    return ListenerService(server.reactor, cfg.admin_server_port, site, cfg.admin_server_address, "AdminServer")
