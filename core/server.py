"""The server: the pipeline that takes a decoded request to its reply.

Reads are answered from the tree on the reactor, in the session's order (core.connection).
Writes become `Request`s for the consensus backend; every committed txn comes back through
`commit`, is applied to the tree (which fires watches), and completes the reply of the client
that asked for it, matched by (session id, cxid), as ZooKeeper's FinalRequestProcessor does.
"""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable
from typing import Any

import pluggy
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from core import native, pluginmanager
from core.acl import AccessControl
from core.config import Config
from core.connection import OwedWrite, ServerConnection, reply_frame
from core.errors import Code, ZKError
from core.heap import HeapSettler
from core.interfaces import Request, StoreError, WatchEvent
from core.jute import INT
from core.opcodes import AddWatchMode, EventType, KeeperState, OpCode, Perm
from core.ops import fourletter
from core.ops.stats import DIGEST_LOG_INTERVAL, ServerStats
from core.requests import (
    MULTI_OPS, MULTI_READ_OPS, RECORD_ERRORS, WRITE_REQUESTS, decode_multi, decode_record,
)
from core.records import (
    ACL, AddWatchRequest, AuthPacket, ClientInfo, ConnectRequest, CreateResponse,
    CreateSessionTxn, ErrorResponse, GetACLResponse,
    GetEphemeralsResponse, Id, MultiHeader, PathRequest,
    SaslToken, SetWatches, SetWatches2, WatchTypeRequest, WhoAmIResponse,
)
from core.sasl import sasl_reply
from core.sessions import SessionTracker, session_password
from core.snapshot import deserialize
from core.snapshotter import Snapshotter
from core.storage_thread import StorageThread
from core.tree import NODE_VIEW, STAT_SIZE, DataTree, Node, TxnResult
from core.txn import Txn, decode_txn
from core.watches import CHILD, DATA, PERSISTENT, RECURSIVE, ConnectionDelivery, WatchManager

log = Logger()

_HDR = struct.Struct(">ii")
_MULTI_END = MultiHeader.encode(MultiHeader(-1, True, -1))
# members compared with per request, bound once (see core.opcodes)
_MULTI, _READ = OpCode.multi, Perm.READ
_SESSION_TXNS = frozenset((OpCode.createSession, OpCode.closeSession))
# creates whose response carries the Stat (Create2Response), in a multi too
CREATE2_LIKE = frozenset({OpCode.create2, OpCode.createContainer, OpCode.createTTL})
# What a successful write's response holds, by op (a multi's sub-results too): the Stat
# (SetDataResponse, SetACLResponse), the created path (CreateResponse), or both
# (Create2Response); an op not here answers with nothing (delete, check).
BODY_STAT, BODY_PATH, BODY_PATH_STAT = 1, 2, 3
RESPONSE_BODIES: dict[int, int] = {OpCode.setData: BODY_STAT, OpCode.setACL: BODY_STAT, OpCode.create: BODY_PATH,
                                   **dict.fromkeys(CREATE2_LIKE, BODY_PATH_STAT)}
# the MultiHeader of a multi's successful result, by the sub-txn's type (creates answer as create2)
_MULTI_OK_HEADERS: dict[int, bytes] = {
    t: MultiHeader(OpCode.create2 if t in CREATE2_LIKE else t, False, 0).encode() for t in OpCode}


def ms_clock(seconds: Callable[[], float]) -> Callable[[], int]:
    """A clock of whole milliseconds, int(seconds() * 1000), from a clock of seconds (a
    reactor's): the accelerator's (a C call where the Python function's frame cost a write 4%
    of the reactor's time), else a Python function."""
    if native.MODULE is not None:
        return native.MODULE.ms_clock(seconds)  # type: ignore[no-any-return]
    return lambda: int(seconds() * 1000)


class ZKServer:
    """One member's server: tree, sessions, watches, connections, and the chosen backends."""

    # the attributes the C accelerator reads by their slots (core/_native.c); the rest in __dict__
    __slots__ = ("tree", "waiting", "snapshotter", "dirty", "config", "stats", "consensus", "__dict__", "__weakref__")

    def __init__(self, config: Config, reactor: Any = None,
                 plugin_manager: pluggy.PluginManager | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.now_ms = ms_clock(reactor.seconds)
        self.pm = plugin_manager or pluginmanager.build_plugin_manager()
        self.pm.hook.zk_configure(config=config)
        self.access = AccessControl(pluginmanager.auth_providers(self.pm, config))
        self.watches = WatchManager(lambda acl, ids: self.access.allowed(acl, ids, Perm.READ))
        self.tree = DataTree(self.watches)
        self.sessions = SessionTracker(config.server_id, config.tick_time, self.now_ms())
        store_spec = pluginmanager.pick(pluginmanager.storage_backends(self.pm), config.storage, "storage", config)
        self.store = store_spec.factory(config)
        self.storage = StorageThread(reactor)
        consensus_spec = pluginmanager.pick(pluginmanager.consensus_backends(self.pm), config.consensus, "consensus", config)
        self.consensus = consensus_spec.factory(config, self.store, self)
        stages = [s for s in self.pm.hook.zk_watch_delivery(config=config, server=self) if s is not None]
        self.watches.delivery = [*stages, ConnectionDelivery()]
        self.connections: dict[int, ServerConnection] = {}  # session id -> its live connection
        self.all_connections: dict[ServerConnection, None] = {}  # in the order they opened
        self.per_host: dict[str, int] = {}
        self.handshakes: dict[int, ServerConnection] = {}  # session id -> connection awaiting createSession
        self.waiting: dict[tuple[int, int], OwedWrite] = {}
        self.dirty: set[ServerConnection] = set()
        self._flush_scheduled = False
        self.started_ms = self.now_ms()
        self.stats = ServerStats(reactor.seconds)  # core.ops: 4lw, AdminServer, metrics
        self.heap = HeapSettler()  # start-up and each snapshot fork freeze what lives on
        self.snapshotter = Snapshotter(self)
        self.store_open = False
        # the hottest reads: their path and watch flag decoded straight from the packet
        self.path_reads: dict[int, Callable[[ServerConnection, str, bool], bytes]] = {
            OpCode.exists: self.exists, OpCode.getData: self.get_data,
            OpCode.getChildren: self.get_children, OpCode.getChildren2: self.get_children2,
        }
        self.reads: dict[int, tuple[Any, Callable[[ServerConnection, Any], bytes]]] = {
            OpCode.getACL: (PathRequest, self.get_acl),
            OpCode.getAllChildrenNumber: (PathRequest, self.get_all_children_number),
            OpCode.getEphemerals: (PathRequest, self.get_ephemerals),
            OpCode.checkWatches: (WatchTypeRequest, self.check_watches),
            OpCode.removeWatches: (WatchTypeRequest, self.remove_watches),
            OpCode.addWatch: (AddWatchRequest, self.add_watch),
            OpCode.setWatches: (SetWatches, self.set_watches),
            OpCode.setWatches2: (SetWatches2, self.set_watches),
        }

    # -- life cycle -----------------------------------------------------------------------

    @inlineCallbacks
    def start(self) -> Any:
        """Open the store (unless `open_store` did), rebuild the tree and sessions from it,
        start the consensus."""
        self.storage.start()
        if not self.store_open:
            yield self.storage.run(self.open_store)
        had_snapshot = yield self.recover()
        if not had_snapshot and not self.tree.last_zxid:
            yield self.snapshotter.take()  # an empty data directory gets snapshot.0, as ZooKeeper's
        yield self.consensus.start()
        self.snapshotter.start()
        self.pm.hook.zk_server_started(server=self)

    def open_store(self) -> None:
        """Open the store: blocking; twistd calls it before the reactor runs, so that a store
        that cannot open stops start-up with one line (StoreError) and a non-zero status."""
        self.store.open()
        self.store_open = True

    @inlineCallbacks
    def recover(self) -> Any:
        """Rebuild the tree and sessions from the store: the newest snapshot, then every logged
        txn after it (at start, and on a member whose log was truncated). Fires with whether
        there was a snapshot."""
        snapshot = yield self.storage.run(self.store.load_snapshot)
        txns = yield self.storage.run(lambda: list(self.store.read_from(snapshot[0] if snapshot else 0)))
        gc.disable()  # everything built here lives on: no collector passes over a growing tree
        try:
            if snapshot is not None:
                tree, sessions, _ = deserialize(snapshot[1])
                tree.last_zxid = snapshot[0]  # fuzzy: the log after this zxid makes it whole
                self.reset(tree, sessions)
            else:
                self.reset(DataTree(), {})
            for _, payload in txns:
                self.replay(decode_txn(payload))
        finally:
            gc.enable()
        last_logged = yield self.storage.run(self.store.last_zxid)
        if last_logged > self.tree.last_zxid:  # read_from stopped early: a corrupt record
            info = yield self.storage.run(self.store.describe)
            raise StoreError(f"{info.location}: the log goes on to zxid 0x{last_logged:x} but "
                             f"cannot be read past 0x{self.tree.last_zxid:x} (a corrupt record); "
                             "not starting without the txns after it")
        if txns:
            log.info("recovered {n} txns up to zxid 0x{z:x}", n=len(txns), z=self.tree.last_zxid)
        return snapshot is not None

    def reset(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Replace the tree and the sessions wholesale (recovery, or a follower synced by SNAP)."""
        tree.listener = self.watches
        self.tree = tree
        now = self.now_ms()
        for sid in list(self.sessions.sessions):
            if sid not in sessions:
                self.sessions.remove(sid)
        for sid, timeout in sessions.items():
            self.sessions.add(sid, timeout, now)

    def replay(self, txn: Txn) -> None:
        """Apply a logged txn during recovery (no clients yet)."""
        self.tree.apply(txn)
        self._track_session(txn)
        if not txn.zxid % DIGEST_LOG_INTERVAL:
            self.stats.log_digest(txn.zxid, self.tree.digest)

    @inlineCallbacks
    def stop(self) -> Any:
        self.pm.hook.zk_server_stopping(server=self)
        for conn in list(self.all_connections):
            conn.close()
        yield self.consensus.stop()
        if self.consensus.is_serving():  # not after a failed store
            yield self.snapshotter.final()
        self.snapshotter.stop()
        yield self.storage.run(self.store.close)
        self.storage.stop()

    # -- connections ----------------------------------------------------------------------

    def connection_opened(self, conn: ServerConnection) -> bool:
        """Admit a connection unless its host is over maxClientCnxns."""
        host = conn.peer.host
        count = self.per_host.get(host, 0)
        limit = self.config.max_client_cnxns
        if limit and count >= limit:
            log.warn("Too many connections from {host} - max is {limit}", host=host, limit=limit)
            self.stats.connection_rejected += 1
            return False
        self.per_host[host] = count + 1
        self.all_connections[conn] = None
        return True

    def connection_closed(self, conn: ServerConnection) -> None:
        if conn not in self.all_connections:
            return
        del self.all_connections[conn]
        host = conn.peer.host
        self.per_host[host] -= 1
        if not self.per_host[host]:
            del self.per_host[host]
        self.watches.remove_watcher(conn)
        if self.connections.get(conn.session_id) is conn:
            del self.connections[conn.session_id]
        self.dirty.discard(conn)
        self.stats.throttled.discard(conn)

    def four_letter(self, head: bytes, conn: ServerConnection) -> str | None:
        """The answer to the four-letter word `head` starts with (stmk: its mask follows), or
        None when those 4 bytes are a packet length."""
        return fourletter.answer(self, head[:4].decode("latin-1"), conn, head[4:12])

    def connect(self, conn: ServerConnection, req: ConnectRequest) -> None:
        """Handle a ConnectRequest: a new session, or a reconnect to an existing one."""
        if req.lastZxidSeen > self.tree.last_zxid:
            conn.drop(f"client has seen zxid 0x{req.lastZxidSeen:x}, ours is 0x{self.tree.last_zxid:x}")
            return
        if not self.consensus.is_serving():
            if getattr(self.consensus, "role", None) == "read-only" and getattr(conn, "client_read_only", False):
                self._connect_read_only(conn, req)
                return
            conn.drop("not serving (no quorum, or the log cannot be written)")
            return
        cfg = self.config
        timeout = min(max(req.timeOut, cfg.min_session_timeout), cfg.max_session_timeout)
        sid = req.sessionId
        if sid == 0:
            sid = self.sessions.new_session_id()
            conn.timeout = timeout
            self.handshakes[sid] = conn
            self.consensus.submit(Request(sid, 0, OpCode.createSession, CreateSessionTxn(timeout), b"", []))
            return
        old = self.connections.pop(sid, None)
        if old is not None and old is not conn:
            old.close()
        session = self.sessions.sessions.get(sid)
        if session is None or session.closing or req.passwd != session_password(sid):
            conn.refuse_session()
            return
        session.timeout = timeout
        self.sessions.touch(sid, self.now_ms())
        revalidate = getattr(self.consensus, "revalidate", None)
        if revalidate is None:
            self._bind(conn, sid, timeout)
            return
        # an ensemble member asks the consensus (a ZAB learner: REVALIDATE to its leader)
        revalidate(sid, timeout).addCallback(self._revalidated, conn, sid, timeout)

    def _connect_read_only(self, conn: ServerConnection, req: ConnectRequest) -> None:
        """readonlymode.enabled and no quorum (ReadOnlyZooKeeperServer): a client that allows
        read-only gets a local session (not replicated; a reconnecting one keeps its id when
        its password matches), the readOnly byte true, reads, and NOTREADONLY for writes."""
        cfg = self.config
        timeout = min(max(req.timeOut, cfg.min_session_timeout), cfg.max_session_timeout)
        sid = req.sessionId
        if sid == 0:
            sid = self.sessions.new_session_id()
        elif req.passwd != session_password(sid):
            conn.refuse_session()
            return
        old = self.connections.pop(sid, None)
        if old is not None and old is not conn:
            old.close()
        conn.bind(sid, timeout)
        conn.read_only = True
        self.connections[sid] = conn
        conn.connect_response(timeout, sid, session_password(sid), read_only=True)
        log.info("Established read-only session 0x{sid:x} with negotiated timeout {timeout} for client "
                 "/{host}:{port}", sid=sid & (2**64 - 1), timeout=timeout, host=conn.peer.host, port=conn.peer.port)

    def _revalidated(self, valid: bool, conn: ServerConnection, sid: int, timeout: int) -> None:
        """The consensus' answer about a reconnecting session: bind it, or the expired answer."""
        if conn.closing:
            return
        if valid:
            self._bind(conn, sid, timeout)
        else:
            conn.refuse_session()
        self.flush()

    def _bind(self, conn: ServerConnection, sid: int, timeout: int) -> None:
        conn.bind(sid, timeout)
        self.connections[sid] = conn
        conn.connect_response(timeout, sid, session_password(sid))
        log.info("Established session 0x{sid:x} with negotiated timeout {timeout} for client /{host}:{port}",
                 sid=sid & (2**64 - 1), timeout=timeout, host=conn.peer.host, port=conn.peer.port)

    # -- requests -------------------------------------------------------------------------

    def request(self, conn: ServerConnection, frame: bytes) -> None:
        """Dispatch one request packet of a handshaken connection."""
        xid, op = _HDR.unpack_from(frame, 0)
        path_read = self.path_reads.get(op)
        if path_read is not None:
            # PathWatchRequest (path, watch), read in place: a path that is null or runs past
            # the frame, or no watch byte, is the MARSHALLINGERROR the record decoder gives
            n = INT.unpack_from(frame, 8)[0] if len(frame) >= 13 else -1
            end = 12 + n
            if n < 0 or end >= len(frame):
                self._marshalling_error(conn, xid)
                return
            try:
                path = frame[12:end].decode()
            except UnicodeDecodeError:  # replacement characters, as the record decoder gives
                path = frame[12:end].decode("utf-8", "replace")
            watch = frame[end] != 0
            if conn.pending:  # behind this session's writes: runs when they are done
                conn.pending.append((conn.received_at, self._run, (conn, xid, path_read, path, watch)))
            else:  # written when dataReceived has read the whole batch
                conn.out.append(self._run(conn, xid, path_read, path, watch))
                conn.replied_now += 1
            return
        write = WRITE_REQUESTS.get(op)
        if write is not None:
            # an undecodable body still takes a zxid: prep makes it a MARSHALLINGERROR txn
            self.submit(conn, xid, op, decode_record(write, frame, 8), frame)
            return
        read = self.reads.get(op)
        if read is not None:
            record = decode_record(read[0], frame, 8)
            if record is None:
                self._marshalling_error(conn, xid)
            else:
                conn.reply_now_or_queue(self._run, conn, xid, read[1], record)
        elif op == OpCode.ping:
            conn.reply_now_or_queue(self._empty_reply, xid, 0)
        elif op == OpCode.multi:
            self.submit(conn, xid, op, decode_multi(frame, 8, MULTI_OPS), frame)
        elif op == OpCode.multiRead:
            reads = decode_multi(frame, 8, MULTI_READ_OPS)
            if reads is None:
                self._marshalling_error(conn, xid)
                return
            conn.reply_now_or_queue(self._multi_read, conn, xid, reads)
        elif op == OpCode.sync:
            self.submit(conn, xid, op, PathRequest.decode(frame, 8)[0], frame)
        elif op == OpCode.closeSession:
            self.sessions.set_closing(conn.session_id)
            self.submit(conn, xid, op, None, frame)
        elif op == OpCode.auth:
            self.authenticate(conn, AuthPacket.decode(frame, 8)[0])
        elif op == OpCode.whoAmI:
            conn.reply_now_or_queue(self._run, conn, xid, self.who_am_i, None)
        elif op == OpCode.sasl:
            token = SaslToken.decode(frame, 8)[0].token
            if token is None:  # ZooKeeper 3.8 fails on a null token and closes, without a reply
                conn.drop("SASL packet with a null token")
                return
            conn.reply_now_or_queue(sasl_reply, conn, xid, token)
        else:
            # unknown op, op 0, top-level check (3.9.3+)
            conn.send(reply_frame(xid, -1, Code.UNIMPLEMENTED))
            conn.drop(f"unimplemented op code {op}")

    def _marshalling_error(self, conn: ServerConnection, xid: int) -> None:
        conn.reply_now_or_queue(self._empty_reply, xid, Code.MARSHALLINGERROR)

    def _empty_reply(self, xid: int, err: int) -> bytes:
        """A reply without a body (ping, errors), stamped with the zxid when it is written."""
        return reply_frame(xid, self.tree.last_zxid, err)

    def _run(self, conn: ServerConnection, xid: int, handler: Callable[..., bytes], arg: Any,
             watch: bool | None = None) -> bytes:
        """A read's reply frame: handler(conn, arg), or handler(conn, path, watch) for the path
        reads, or its ZKError's code (explicit arguments: a star call cost 7% of a getData)."""
        try:
            body = handler(conn, arg) if watch is None else handler(conn, arg, watch)
        except ZKError as e:
            return reply_frame(xid, self.tree.last_zxid, e.code)
        return reply_frame(xid, self.tree.last_zxid, 0, body)

    def submit(self, conn: ServerConnection, xid: int, op: int, record: Any, frame: bytes) -> None:
        """Hand a write to the consensus; its reply slot waits for the commit."""
        if conn.read_only:  # a read-only session (ReadOnlyRequestProcessor): no writes, no sync
            if op == OpCode.closeSession:
                conn.reply_now_or_queue(self._empty_reply, xid, 0)
                conn.close()
            else:
                conn.reply_now_or_queue(self._empty_reply, xid, Code.NOTREADONLY)
            return
        sid = conn.session_id
        write = OwedWrite(sid, xid, op, record, frame[8:], conn.auth_ids, conn, conn.received_at)
        conn.pending.append(write)  # its reply slot, filled by conn.complete at the commit
        self.waiting[(sid, xid)] = write
        if len(self.waiting) > self.config.global_outstanding_limit:
            self.stats.throttle(conn)  # globalOutstandingLimit: stop reading until it drops
        self.consensus.submit(write)

    # -- commits --------------------------------------------------------------------------

    def commit(self, txn: Txn) -> None:
        """CommitSink: apply a committed txn, then complete the reply waiting for it."""
        result = self.tree.apply(txn)
        self.snapshotter.txn_logged()
        if not txn.zxid % DIGEST_LOG_INTERVAL:
            self.stats.log_digest(txn.zxid, self.tree.digest)
        if txn.type in _SESSION_TXNS:
            self._session_committed(txn)
            return
        write = self.waiting.pop((txn.clientId, txn.cxid), None)
        if write is not None:
            write.conn.complete(write, write_reply(write.type, txn, result))

    def _session_committed(self, txn: Txn) -> None:
        """A createSession binds the connection waiting for it; a closeSession answers its
        closeSession request (if any) and closes the session's connection."""
        self._track_session(txn)
        if txn.type == OpCode.createSession:
            conn = self.handshakes.pop(txn.clientId, None)
            if conn is not None and not conn.closing:
                self._bind(conn, txn.clientId, conn.timeout)
            return
        write = self.waiting.pop((txn.clientId, txn.cxid), None)
        conn = self.connections.pop(txn.clientId, None)
        if write is not None:
            write.conn.complete(write, reply_frame(txn.cxid, txn.zxid, 0))
        if conn is not None:
            conn.close()
        log.info("Processed session termination for sessionid: 0x{sid:x}", sid=txn.clientId & (2**64 - 1))

    def _track_session(self, txn: Txn) -> None:
        if txn.type == OpCode.createSession:
            self.sessions.add(txn.clientId, txn.body.timeOut, self.now_ms())
        elif txn.type == OpCode.closeSession:
            self.sessions.remove(txn.clientId)

    def synced(self, request: Request) -> None:
        """CommitSink: a sync is complete."""
        write = self.waiting.pop((request.session_id, request.cxid), None)
        if write is not None:
            body = PathRequest.encode(request.record)
            write.conn.complete(write, reply_frame(request.cxid, self.tree.last_zxid, 0, body))

    def stop_serving(self) -> None:
        """The consensus can no longer make writes durable: answer every write still waiting
        (the failed batch and those queued behind it; none is applied here) with SYSTEMERROR,
        after the replies owed before it, then close every client connection. New ones are
        refused while ``consensus.is_serving()`` is false; four-letter words still answer."""
        waiting, self.waiting = self.waiting, {}
        for (_, xid), write in waiting.items():
            write.conn.complete(write, reply_frame(xid, self.tree.last_zxid, Code.SYSTEMERROR))
        self.handshakes.clear()
        self.flush()
        for conn in list(self.all_connections):
            conn.close()

    def flush_soon(self) -> None:
        """`flush` once this reactor turn's work is done: commits arriving one packet at a time
        (an ensemble's COMMITs and ACKs, many per read) then leave in one write per connection."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.reactor.callLater(0, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write out every connection that has queued frames (after a batch of commits)."""
        dirty = self.dirty
        while dirty:
            dirty.pop().flush()
        if self.stats.throttled and len(self.waiting) <= self.config.global_outstanding_limit:
            self.stats.unthrottle()

    # -- reads ----------------------------------------------------------------------------

    def _readable(self, conn: ServerConnection, path: str | None, perm: int) -> Node:
        """The node at `path` (else NONODE) if `conn` holds `perm` on it (else NOAUTH)."""
        node = self.tree.nodes.get(path or "/")
        if node is None:
            raise ZKError(Code.NONODE, path)
        if not self.access.allowed(node.acl, conn.auth_ids, perm):
            raise ZKError(Code.NOAUTH)
        return node

    def exists(self, conn: ServerConnection, path: str, watch: bool) -> bytes:
        path = path or "/"
        if "\0" in path:
            raise ZKError(Code.BADARGUMENTS)
        try:
            node = self._readable(conn, path, _READ)
        except ZKError as e:
            if watch and e.code == Code.NONODE:  # a watch for the node's creation
                self.watches.add(DATA, path, conn)
            raise
        if watch:
            self.watches.add(DATA, path, conn)
        return node.data_reply()[-STAT_SIZE:]

    def get_data(self, conn: ServerConnection, path: str, watch: bool) -> bytes:
        node = self._readable(conn, path, _READ)
        if watch:
            self.watches.add(DATA, path or "/", conn)
        return node.data_reply()  # GetDataResponse

    def _children(self, conn: ServerConnection, path: str, watch: bool) -> Node:
        node = self._readable(conn, path, _READ)
        if watch:
            self.watches.add(CHILD, path or "/", conn)
        return node

    def get_children(self, conn: ServerConnection, path: str, watch: bool) -> bytes:
        return self._children(conn, path, watch).children_list()

    def get_children2(self, conn: ServerConnection, path: str, watch: bool) -> bytes:
        node = self._children(conn, path, watch)
        return node.children_list() + node.data_reply()[-STAT_SIZE:]  # GetChildren2Response

    def get_acl(self, conn: ServerConnection, r: PathRequest) -> bytes:
        node = self._readable(conn, r.path, Perm.READ | Perm.ADMIN)
        acl = list(node.acl)
        if not self.access.allowed(node.acl, conn.auth_ids, Perm.ADMIN):
            acl = [ACL(a.perms, Id(a.id.scheme, a.id.id.split(":", 1)[0] + ":x")) if a.id.scheme == "digest" else a
                   for a in acl]
        return GetACLResponse.encode(GetACLResponse(acl, node.stat()))

    def get_all_children_number(self, conn: ServerConnection, r: PathRequest) -> bytes:
        self._readable(conn, r.path, Perm.READ)
        return INT.pack(self.tree.descendants_count(r.path or "/"))

    def get_ephemerals(self, conn: ServerConnection, r: PathRequest) -> bytes:
        prefix = r.path or "/"
        mine = self.tree.session_ephemerals(conn.session_id)
        paths = sorted(mine) if prefix == "/" else sorted(p for p in mine if p.startswith(prefix))
        return GetEphemeralsResponse.encode(GetEphemeralsResponse(paths))

    def check_watches(self, conn: ServerConnection, r: WatchTypeRequest) -> bytes:
        if not self.watches.contains(r.path or "/", r.type, conn):
            raise ZKError(Code.NOWATCHER)
        return b""

    def remove_watches(self, conn: ServerConnection, r: WatchTypeRequest) -> bytes:
        if not self.watches.remove(r.path or "/", r.type, conn):
            raise ZKError(Code.NOWATCHER)
        return b""

    def add_watch(self, conn: ServerConnection, r: AddWatchRequest) -> bytes:
        kind = RECURSIVE if r.mode == AddWatchMode.PERSISTENT_RECURSIVE else PERSISTENT
        self.watches.add(kind, r.path or "/", conn)
        return ErrorResponse.encode(ErrorResponse(0))

    def set_watches(self, conn: ServerConnection, r: SetWatches | SetWatches2) -> bytes:
        """Re-register a reconnecting client's watches, firing at once what it missed
        (DataTree.setWatches); those events carry zxid -1."""
        rel = r.relativeZxid
        tree = self.tree

        def fire(event_type: int, path: str) -> None:
            node = tree.get(path)
            acl = node.acl if node is not None else None
            self.watches.deliver(WatchEvent(event_type, KeeperState.SyncConnected, path, -1), [conn], acl)

        for path in r.dataWatches or ():
            node = tree.get(path)
            if node is None:
                fire(EventType.NodeDeleted, path)
            elif node.mzxid > rel:
                fire(EventType.NodeDataChanged, path)
            else:
                self.watches.add(DATA, path, conn)
        for path in r.existWatches or ():
            if tree.get(path) is not None:
                fire(EventType.NodeCreated, path)
            else:
                self.watches.add(DATA, path, conn)
        for path in r.childWatches or ():
            node = tree.get(path)
            if node is None:
                fire(EventType.NodeDeleted, path)
            elif node.pzxid > rel:
                fire(EventType.NodeChildrenChanged, path)
            else:
                self.watches.add(CHILD, path, conn)
        if isinstance(r, SetWatches2):
            for path in r.persistentWatches or ():
                self.watches.add(PERSISTENT, path, conn)
            for path in r.persistentRecursiveWatches or ():
                self.watches.add(RECURSIVE, path, conn)
        return b""

    def who_am_i(self, conn: ServerConnection, _: Any) -> bytes:
        # AuthUtil.getClientInfos: the scheme's user name for each id (digest: the part before
        # ':'), else the id itself; observed 3.8.0
        infos = []
        for i in conn.auth_ids:
            user_name = getattr(self.access.providers.get(i.scheme), "user_name", None)
            infos.append(ClientInfo(i.scheme, user_name(i.id) if user_name is not None else i.id))
        return WhoAmIResponse.encode(WhoAmIResponse(infos))

    def _multi_read(self, conn: ServerConnection, xid: int, reads: list[tuple[int, Any]]) -> bytes:
        parts: list[bytes] = []
        for op, rec in reads:
            handler = self.get_data if op == OpCode.getData else self.get_children
            try:
                body = handler(conn, rec.path, False)  # multiRead sets no watches
            except ZKError as e:
                parts.append(MultiHeader.encode(MultiHeader(-1, False, e.code)))
                parts.append(ErrorResponse.encode(ErrorResponse(e.code)))
                continue
            parts.append(MultiHeader.encode(MultiHeader(op, False, 0)))
            parts.append(body)
        parts.append(_MULTI_END)
        return reply_frame(xid, self.tree.last_zxid, 0, b"".join(parts))

    # -- auth -----------------------------------------------------------------------------

    def authenticate(self, conn: ServerConnection, packet: AuthPacket) -> None:
        """An AuthPacket (xid -4): add the ids the scheme grants, or AUTHFAILED and close."""
        provider = self.access.providers.get(packet.scheme or "")
        ids = provider.authenticate(conn.peer, packet.auth or b"") if provider is not None else None
        if not ids:
            log.info("auth failed for scheme {scheme} from {host}", scheme=packet.scheme, host=conn.peer.host)
            self.stats.auth_failed += 1
            conn.send(reply_frame(-4, 0, Code.AUTHFAILED))  # and no event: observed 3.8.0
            conn.close()
            return
        conn.add_auth_ids(ids)
        conn.send(reply_frame(-4, 0, 0))


def write_reply(op: int, txn: Txn, result: TxnResult) -> bytes:
    """The reply frame of a write request of type `op` whose txn was applied with `result`."""
    if result.err:  # a failed multi reports per op (its own err is 0); a rejected one errs here
        return reply_frame(txn.cxid, txn.zxid, result.err)
    if op == _MULTI:
        return reply_frame(txn.cxid, txn.zxid, 0, _multi_body(result.multi or []))
    return reply_frame(txn.cxid, txn.zxid, 0, _response_body(op, result))


def _response_body(op: int, r: TxnResult) -> bytes:
    """The response record of a write that succeeded (empty for delete and check)."""
    kind = RESPONSE_BODIES.get(op)
    if kind is None:
        return b""
    if kind == BODY_STAT:
        assert r.stat_bytes is not None
        return r.stat_bytes
    path = CreateResponse(r.path).encode()
    if kind == BODY_PATH:
        return path
    assert r.stat_bytes is not None
    return path + r.stat_bytes


def _multi_body(results: list[TxnResult]) -> bytes:
    """A multi's response: one (MultiHeader, result) per op, then the end marker. When any op
    failed, every entry is an error entry (0 for the rolled-back ones before it)."""
    parts: list[bytes] = []
    failed = any([r.err for r in results])  # a list: no generator per multi
    for r in results:
        if failed:
            parts.append(MultiHeader(-1, False, r.err).encode())
            parts.append(ErrorResponse(r.err).encode())
        else:
            parts.append(_MULTI_OK_HEADERS[r.type])
            parts.append(_response_body(r.type, r))
    parts.append(_MULTI_END)
    return b"".join(parts)


# With the C accelerator, a write request's intake (decoded, owed, submitted), a getData or
# exists without a watch of a node world:anyone may read, a txn's commit (but for session txns
# and the txns whose digest is logged) and a write's completion run in C (core.native), reading
# the server's and the connection's slots; the Python methods stay for the rest (other reads,
# watches, read-only sessions...), and for the tests.
PY_REQUEST = ZKServer.request
PY_SUBMIT = ZKServer.submit
PY_COMMIT = ZKServer.commit
PY_COMPLETE = ServerConnection.complete
if native.MODULE is not None and NODE_VIEW is not None:
    ZKServer.request = native.method(native.MODULE.requester(  # type: ignore[method-assign]
        WRITE_REQUESTS, RECORD_ERRORS, PY_REQUEST, int(OpCode.multi), decode_multi, MULTI_OPS, NODE_VIEW, ZKServer,
        ServerConnection, DataTree, int(OpCode.getData), int(OpCode.exists), int(_READ)))
    ZKServer.submit = native.method(native.MODULE.submitter(  # type: ignore[method-assign]
        OwedWrite, ServerConnection, ZKServer, PY_SUBMIT))
    ZKServer.commit = native.method(native.MODULE.committer(  # type: ignore[method-assign]
        Txn, OwedWrite, TxnResult, ZKServer, Snapshotter, PY_COMMIT, write_reply, _SESSION_TXNS,
        DIGEST_LOG_INTERVAL, RESPONSE_BODIES, _MULTI_OK_HEADERS, int(_MULTI), _MULTI_END))
    ServerConnection.complete = native.method(  # type: ignore[method-assign]
        native.MODULE.completer(OwedWrite, ServerConnection, ZKServer, PY_COMPLETE))
