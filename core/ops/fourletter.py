"""Four-letter words on the client port, formatted as ZooKeeper 3.8 formats them.

A new connection whose first four bytes spell a known word gets a plain-text answer and is
closed; a word not in `4lw.commands.whitelist` gets ZooKeeper's refusal text. The values the
AdminServer and the metrics endpoint report come from the same functions here (`server_values`,
`monitor_values`, `environment`, ...), so the three views agree.

Differences from ZooKeeper, by necessity:

- Java-only values get Python equivalents under ZooKeeper's key names (`environment`):
  ``java.version`` is the Python version, ``java.vendor`` the implementation, ``java.home``
  ``sys.prefix``, ``java.class.path`` ``sys.path``; ``os.memory.*`` describe the process
  (total: resident size, max: the address-space limit or physical memory, free: max - total).
- Times ZooKeeper keeps as "elapsed" milliseconds (session expiry buckets, ``lresp``) are
  wall-clock epoch milliseconds here, the clock our session tracker uses.
- ``dataDirSize``/``dataLogSize`` count the files of the chosen store under
  ``dataDir/<storage>/`` (0 for the memory store).
- ``mntr`` lists ZooKeeper's server values (ZooKeeperServer.dumpMonitorValues) and the
  counters we keep; JVM, Netty and request-processor internals (the avg/min/max/cnt/sum
  summaries) are not emitted.
"""

from __future__ import annotations

import getpass
import os
import platform
import resource
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.connection import ServerConnection
    from core.server import ZKServer

VERSION = "3.8.0-zkserver"
BUILT = "2026-01-01 00:00 UTC"
FULL_VERSION = f"{VERSION}, built on {BUILT}"
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"
SESSIONLESS_TIMEOUT_MS = 10000  # NIOServerCnxnFactory's sessionless connection timeout

KNOWN = frozenset({
    "ruok", "stat", "srvr", "conf", "cons", "crst", "dump", "envi", "mntr", "srst", "wchs",
    "wchc", "wchp", "dirs", "isro", "gtmk", "stmk", "hash",
})
_LONG = struct.Struct(">q")


def answer(server: ZKServer, word: str, conn: ServerConnection | None = None, extra: bytes = b"") -> str | None:
    """The text for `word`, or None if it is not a four-letter word (then it is a length).
    `extra` is what the client sent after the word (stmk's mask).

    Counts the word as one packet received and its answer as one sent, as ZooKeeper does
    (the asking connection shows ``recved=1,sent=0`` in its own ``stat``).
    """
    if word not in KNOWN:
        return None
    stats = server.stats
    stats.packets_received += 1
    if conn is not None:
        conn.packets_received += 1
    if not server.config.four_letter_word_enabled(word):
        text = f"{word} is not executed because it is not in the whitelist.\n"
    elif word in _NEEDS_SERVING and not server.consensus.is_serving() and not read_only(server):
        text = NOT_SERVING
    elif word == "stmk":
        text = _set_trace_mask(server, extra)
    else:
        text = COMMANDS[word](server)
    stats.packets_sent += 1
    return text


# -- shared values ---------------------------------------------------------------------------

def mode(server: ZKServer) -> str:
    """standalone / leader / follower / observer (what ``Mode:`` says)."""
    return str(server.consensus.role)


def read_only(server: ZKServer) -> bool:
    return mode(server) == "read-only"


def signed(sid: int) -> int:
    """A session id as Java's signed long."""
    sid &= (1 << 64) - 1
    return sid - (1 << 64) if sid >= 1 << 63 else sid


def hex_id(sid: int) -> str:
    """Long.toHexString: two's complement for negative values, no leading zeros."""
    return f"{sid & ((1 << 64) - 1):x}"


def clients(server: ZKServer) -> list[ServerConnection]:
    """Every connection, the one asking included, oldest first."""
    return list(server.all_connections)  # in the order they opened


def outstanding(server: ZKServer) -> int:
    """Requests received and not yet answered (writes in flight, reads queued behind them)."""
    return sum(len(c.pending) for c in server.all_connections)


def interest_ops(server: ZKServer, conn: ServerConnection) -> int:
    """NIO interest ops as ZooKeeper prints them: 1 reading, 0 not reading (throttled, or
    the four-letter-word connection itself)."""
    if conn.closing or not conn.handshaken or conn in server.stats.throttled:
        return 0
    return 1


def _dir_size(path: Path | None) -> int:
    if path is None or not path.is_dir():
        return 0
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def store_dirs(server: ZKServer) -> tuple[Path | None, Path | None]:
    """The store's data and log directories: dataDir/<storage> (dataLogDir/<storage>)."""
    cfg = server.config
    if cfg.data_dir is None:
        return None, None
    data = cfg.data_dir / cfg.storage
    log_dir = (cfg.data_log_dir / cfg.storage) if cfg.data_log_dir else data
    return data, log_dir


def dir_sizes(server: ZKServer) -> tuple[int, int]:
    """(datadir_size, logdir_size) in bytes."""
    data, log_dir = store_dirs(server)
    data_size = _dir_size(data)
    return data_size, data_size if log_dir == data else _dir_size(log_dir)


def approximate_data_size(server: ZKServer) -> int:
    """DataTree.approximateDataSize: path lengths plus data lengths of every entry."""
    return sum(len(path) + len(node.data or b"") for path, node in server.tree.nodes.items())


def ephemerals_count(server: ZKServer) -> int:
    return sum(len(paths) for paths in server.tree.ephemerals.values())


def watch_count(server: ZKServer) -> int:
    """DataTree.getWatchCount: data + child watch tables; ZooKeeper puts a persistent
    (recursive) watch in both tables, so it counts twice."""
    w = server.watches
    one = sum(len(h) for kind in (0, 1) for h in w.paths(kind).values())
    two = sum(len(h) for kind in (2, 3) for h in w.paths(kind).values())
    return one + 2 * two


def data_watches(server: ZKServer) -> dict[str, set[Any]]:
    """The data-watch table (what wchc/wchp/wchs report in 3.8): exists/getData watches and
    persistent ones, by path."""
    table: dict[str, set[Any]] = {}
    for kind in (0, 2, 3):
        for path, holders in server.watches.paths(kind).items():
            table.setdefault(path, set()).update(holders)
    return table


def by_session(table: dict[str, set[Any]]) -> dict[int, list[str]]:
    """Invert a path -> watchers table into session id -> paths."""
    out: dict[int, list[str]] = {}
    for path, holders in table.items():
        for w in holders:
            out.setdefault(w.session_id, []).append(path)
    return out


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def max_fds() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return -1 if soft == resource.RLIM_INFINITY else soft


def uptime_ms(server: ZKServer) -> int:
    return server.now_ms() - server.started_ms


def server_values(server: ZKServer) -> dict[str, Any]:
    """The `srvr` numbers, by the AdminServer's names."""
    s = server.stats
    return {
        "packets_sent": s.packets_sent,
        "packets_received": s.packets_received,
        "outstanding_requests": outstanding(server),
        "avg_latency": s.latency.avg,
        "max_latency": s.latency.max,
        "min_latency": s.latency.min,
        "num_alive_client_connections": len(server.all_connections),
        "last_processed_zxid": server.tree.last_zxid,
        "node_count": len(server.tree.nodes),
    }


def monitor_values(server: ZKServer) -> dict[str, Any]:
    """`mntr` / `monitor`, without the ``zk_`` prefix, in ZooKeeper 3.8's order."""
    s = server.stats
    sessions = len(server.sessions.sessions)
    values = {
        "version": FULL_VERSION,
        "server_state": mode(server),
        "ephemerals_count": ephemerals_count(server),
        "num_alive_connections": len(server.all_connections),
        "avg_latency": s.latency.avg,
        "outstanding_requests": outstanding(server),
        "znode_count": len(server.tree.nodes),
        "global_sessions": sessions,
        "non_mtls_remote_conn_count": 0,
        "last_client_response_size": s.last_response_size,
        "packets_sent": s.packets_sent,
        "packets_received": s.packets_received,
        "max_client_response_size": s.max_response_size,
        "connection_drop_probability": 0.0,
        "watch_count": watch_count(server),
        "auth_failed_count": s.auth_failed,
        "min_latency": s.latency.min,
        "max_file_descriptor_count": max_fds(),
        "approximate_data_size": approximate_data_size(server),
        "open_file_descriptor_count": open_fds(),
        "local_sessions": 0,
        "uptime": uptime_ms(server),
        "max_latency": s.latency.max,
        "outstanding_tls_handshake": 0,
        "min_client_response_size": s.min_response_size,
        "non_mtls_local_conn_count": 0,
        "connection_rejected": s.connection_rejected,
        "bytes_received_count": s.bytes_received,
        "response_bytes": s.response_bytes,
    }
    return _with_ensemble_values(server, values)


_PEER_STATES = {"leader": "leading", "follower": "following", "observer": "observing", "looking": "looking",
                "read-only": "looking"}


def _with_ensemble_values(server: ZKServer, values: dict[str, Any]) -> dict[str, Any]:
    """An ensemble member's extra `mntr` keys, read from the consensus (ZooKeeper 3.8 names):
    zk_peer_state after zk_server_state ("following - broadcast"), zk_quorum_size (voters),
    zk_digest_mismatches_count (a learner's TxnDigest comparisons that failed), and
    on the leader zk_learners, zk_synced_followers, zk_synced_non_voting_followers,
    zk_synced_observers, zk_pending_syncs, zk_leader_uptime and the proposal sizes. Standalone:
    nothing added. (Java prints them in hash order; ours keep the standalone order first.)"""
    consensus = server.consensus
    role = mode(server)
    if role == "standalone" or not hasattr(consensus, "voting"):
        return values
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[key] = value
        if key == "server_state":
            zab = str(getattr(consensus, "zab_state", "broadcast")).lower()
            out["peer_state"] = f"{_PEER_STATES.get(role, role)} - {zab}"
    out["quorum_size"] = len(consensus.voting)
    # ServerMetrics.DIGEST_MISMATCHES_COUNT: a learner's TxnDigest comparisons that failed
    out["digest_mismatches_count"] = getattr(consensus, "digest_mismatches", 0)
    leader = getattr(consensus, "active", None)
    if role == "leader" and leader is not None and hasattr(leader, "handlers"):
        handlers = [h for h in leader.handlers if h.state == "serving"]
        voting = consensus.voting
        out["learners"] = len(leader.handlers)
        out["synced_followers"] = sum(1 for h in handlers if not h.observer and h.sid in voting)
        out["synced_non_voting_followers"] = sum(1 for h in handlers if not h.observer and h.sid not in voting)
        out["synced_observers"] = sum(1 for h in handlers if h.observer)
        out["pending_syncs"] = len(getattr(leader, "syncs", ()))
        started = getattr(leader, "established_ms", None)
        out["leader_uptime"] = server.now_ms() - started if started is not None else 0
        last, smallest, largest = getattr(leader, "proposal_sizes", (-1, -1, -1))
        out["last_proposal_size"] = last
        out["max_proposal_size"] = largest
        out["min_proposal_size"] = smallest
    return out


def _memory_mb() -> tuple[int, int, int]:
    """(free, max, total) in MB: the process's resident size as "total", the address-space
    limit (else physical memory) as "max"."""
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/statm") as f:
            rss_kb = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        pass
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        try:
            limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (OSError, ValueError):
            limit = rss_kb * 1024
    total = rss_kb // 1024
    most = limit // (1024 * 1024)
    return max(0, most - total), most, total


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "AMD64": "amd64", "i686": "x86", "i386": "x86"}.get(machine, machine)


def environment() -> dict[str, str]:
    """`envi` / `environment`: ZooKeeper's keys, Python's values (see the module docstring)."""
    free, most, total = _memory_mb()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return {
        "zookeeper.version": FULL_VERSION,
        "host.name": socket.getfqdn(),
        "java.version": platform.python_version(),
        "java.vendor": platform.python_implementation(),
        "java.home": sys.prefix,
        "java.class.path": os.pathsep.join(p for p in sys.path if p),
        "java.library.path": os.environ.get("LD_LIBRARY_PATH", ""),
        "java.io.tmpdir": tempfile.gettempdir(),
        "java.compiler": "<NA>",
        "os.name": platform.system(),
        "os.arch": _arch(),
        "os.version": platform.release(),
        "user.name": user,
        "user.home": os.path.expanduser("~"),
        "user.dir": os.getcwd(),
        "os.memory.free": f"{free}MB",
        "os.memory.max": f"{most}MB",
        "os.memory.total": f"{total}MB",
    }


def conf_values(server: ZKServer) -> dict[str, Any]:
    """`conf` (ZooKeeperServer.dumpConf), by its zoo.cfg-style names."""
    cfg = server.config
    data, log_dir = store_dirs(server)
    data_size, log_size = dir_sizes(server)
    standalone = mode(server) == "standalone"
    values: dict[str, Any] = {
        "clientPort": cfg.client_port,
        "secureClientPort": -1,
        "dataDir": data if data is not None else "",
        "dataDirSize": data_size,
        "dataLogDir": log_dir if log_dir is not None else "",
        "dataLogSize": log_size,
        "tickTime": cfg.tick_time,
        "maxClientCnxns": cfg.max_client_cnxns,
        "minSessionTimeout": cfg.min_session_timeout,
        "maxSessionTimeout": cfg.max_session_timeout,
        "clientPortListenBacklog": -1,
        "serverId": 0 if standalone else cfg.server_id,
    }
    if not standalone:
        values.update({"initLimit": cfg.init_limit, "syncLimit": cfg.sync_limit, "electionAlg": 3})
        me = cfg.servers.get(cfg.server_id)
        if me is not None:
            values.update({"electionPort": me.election_port, "quorumPort": me.quorum_port,
                           "peerType": 1 if me.role == "observer" else 0})
    return values


def server_line(spec: Any) -> str:
    """A server.N value as QuorumServer.toString writes it."""
    text = f"{spec.host}:{spec.quorum_port}:{spec.election_port}:{spec.role}"
    if spec.client_port is not None:
        text += f";{spec.client_host or '0.0.0.0'}:{spec.client_port}"
    return text


def session_buckets(server: ZKServer) -> list[tuple[int, list[int]]]:
    """The session tracker's expiry buckets (expiry ms, session ids), soonest first."""
    buckets: dict[int, list[int]] = {}
    for sid, session in server.sessions.sessions.items():
        buckets.setdefault(session.expires_at, []).append(sid)
    return sorted(buckets.items())


def java_date(ms: int) -> str:
    """java.util.Date.toString: ``Thu Nov 26 10:57:36 UTC 2026`` (local time zone)."""
    t = time.localtime(ms / 1000)
    return time.strftime("%a %b %d %H:%M:%S ", t) + (time.strftime("%Z", t) or "UTC") + time.strftime(" %Y", t)


# -- the words --------------------------------------------------------------------------------

def _latency_line(server: ZKServer) -> str:
    lat = server.stats.latency
    return f"Latency min/avg/max: {lat.min}/{lat.avg}/{lat.max}\n"


def _srvr_tail(server: ZKServer) -> str:
    v = server_values(server)
    return (
        f"Received: {v['packets_received']}\n"
        f"Sent: {v['packets_sent']}\n"
        f"Connections: {v['num_alive_client_connections']}\n"
        f"Outstanding: {v['outstanding_requests']}\n"
        f"Zxid: 0x{server.tree.last_zxid:x}\n"
        f"Mode: {mode(server)}\n"
        f"Node count: {v['node_count']}\n"
    )


def srvr(server: ZKServer) -> str:
    return f"Zookeeper version: {FULL_VERSION}\n{_latency_line(server)}{_srvr_tail(server)}"


def connection_line(server: ZKServer, conn: ServerConnection, brief: bool) -> str:
    """ServerCnxn.dumpConnectionInfo."""
    ops = interest_ops(server, conn)
    text = (f" /{conn.peer.host}:{conn.peer.port}[{ops:x}](queued={len(conn.pending)},"
            f"recved={conn.packets_received},sent={conn.packets_sent}")
    if not brief and conn.session_id:
        s = conn.cstats
        text += (f",sid=0x{hex_id(conn.session_id)},lop={s.last_op},est={s.established},"
                 f"to={conn.timeout}")
        if s.last_cxid >= 0:
            text += f",lcxid=0x{s.last_cxid:x}"
        lat = s.latency
        text += (f",lzxid=0x{hex_id(s.last_zxid)},lresp={s.last_response},llat={s.last_latency},"
                 f"minlat={lat.min},avglat={lat.total // lat.count if lat.count else 0},maxlat={lat.max}")
    return text + ")\n"


def stat(server: ZKServer) -> str:
    lines = "".join(connection_line(server, c, True) for c in clients(server))
    return (f"Zookeeper version: {FULL_VERSION}\nClients:\n{lines}\n"
            f"{_latency_line(server)}{_srvr_tail(server)}")


def cons(server: ZKServer) -> str:
    return "".join(connection_line(server, c, False) for c in clients(server)) + "\n"


def crst(server: ZKServer) -> str:
    for c in server.all_connections:
        c.cstats.reset()
    return "Connection stats reset.\n"


def srst(server: ZKServer) -> str:
    server.stats.reset()
    return "Server stats reset.\n"


def conf(server: ZKServer) -> str:
    text = "".join(f"{k}={v}\n" for k, v in conf_values(server).items())
    if mode(server) != "standalone":
        text += "membership: \n" + "".join(
            f"server.{sid}={server_line(spec)}\n" for sid, spec in sorted(server.config.servers.items()))
    return text


def envi(server: ZKServer) -> str:
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in environment().items())


def mntr(server: ZKServer) -> str:
    return "".join(f"zk_{k}\t{v}\n" for k, v in monitor_values(server).items())


def dump(server: ZKServer) -> str:
    buckets = session_buckets(server)
    out = [f"SessionTracker dump:\nSession Sets ({len(buckets)})/({len(server.sessions.sessions)}):\n"]
    for expires, sids in buckets:
        out.append(f"{len(sids)} expire at {java_date(expires)}:\n")
        out.extend(f"\t0x{hex_id(sid)}\n" for sid in sids)
    ephemerals = {sid: paths for sid, paths in server.tree.ephemerals.items() if paths}
    out.append(f"ephemeral nodes dump:\nSessions with Ephemerals ({len(ephemerals)}):\n")
    for sid, paths in ephemerals.items():
        out.append(f"0x{hex_id(sid)}:\n")
        out.extend(f"\t{p}\n" for p in sorted(paths))
    # Connections grouped by when they expire: their session's bucket, or the sessionless
    # connection timeout for connections without a session (this one among them).
    sessions = server.sessions.sessions
    conns: dict[int, list[ServerConnection]] = {}
    sessionless = server.now_ms() + SESSIONLESS_TIMEOUT_MS
    for c in clients(server):
        s = sessions.get(c.session_id) if c.session_id else None
        conns.setdefault(s.expires_at if s is not None else sessionless, []).append(c)
    out.append(f"Connections dump:\nConnections Sets ({len(conns)})/({sum(map(len, conns.values()))}):\n")
    for expires in sorted(conns):
        out.append(f"{len(conns[expires])} expire at {java_date(expires)}:\n")
        out.extend(f"\tip: /{c.peer.host}:{c.peer.port} sessionId: 0x{hex_id(c.session_id)}\n"
                   for c in conns[expires])
    return "".join(out)


def wchs(server: ZKServer) -> str:
    table = data_watches(server)
    sessions = by_session(table)
    total = sum(len(h) for h in table.values())
    return f"{len(sessions)} connections watching {len(table)} paths\nTotal watches:{total}\n"


def wchc(server: ZKServer) -> str:
    out = []
    for sid, paths in by_session(data_watches(server)).items():
        out.append(f"0x{hex_id(sid)}\n")
        out.extend(f"\t{p}\n" for p in paths)
    return "".join(out) + "\n"


def wchp(server: ZKServer) -> str:
    out = []
    for path, holders in data_watches(server).items():
        out.append(f"{path}\n")
        out.extend(f"\t0x{hex_id(w.session_id)}\n" for w in holders)
    return "".join(out) + "\n"


def dirs(server: ZKServer) -> str:
    data_size, log_size = dir_sizes(server)
    return f"datadir_size: {data_size}\nlogdir_size: {log_size}\n"


def isro(server: ZKServer) -> str:
    return "ro" if read_only(server) else "rw"


def digests(server: ZKServer) -> Iterable[tuple[int, int]]:
    """The digest history (zxid, digest), oldest first; empty with digest.enabled=false."""
    return list(server.stats.digests) if server.config.digest_enabled else []


def hash_(server: ZKServer) -> str:
    return "".join(f"{zxid:x}: {digest}\n" for zxid, digest in digests(server))


def gtmk(server: ZKServer) -> str:
    return str(server.stats.trace_mask)


def _set_trace_mask(server: ZKServer, extra: bytes) -> str:
    """stmk: the 8 bytes after the word are the new mask (a long); without them ZooKeeper
    answers nothing."""
    if len(extra) < 8:
        return ""
    server.stats.trace_mask = _LONG.unpack_from(extra)[0]
    return str(server.stats.trace_mask)


COMMANDS: dict[str, Callable[[ZKServer], str]] = {
    "ruok": lambda server: "imok",
    "srvr": srvr,
    "stat": stat,
    "conf": conf,
    "cons": cons,
    "crst": crst,
    "dump": dump,
    "envi": envi,
    "mntr": mntr,
    "srst": srst,
    "wchs": wchs,
    "wchc": wchc,
    "wchp": wchp,
    "dirs": dirs,
    "isro": isro,
    "hash": hash_,
    "gtmk": gtmk,
}

# The words whose ZooKeeper command checks isZKServerRunning first.
_NEEDS_SERVING = frozenset({"stat", "srvr", "conf", "cons", "crst", "dump", "mntr", "srst",
                            "wchs", "wchc", "wchp", "dirs", "hash"})
