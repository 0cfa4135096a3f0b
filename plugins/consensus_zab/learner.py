"""ZAB learners: follower and observer (Learner, Follower, Observer; quorum.md 2.3-2.8).

The learner connects to the elected leader's quorum port and registers (FOLLOWERINFO, or
OBSERVERINFO), answers LEADERINFO with ACKEPOCH after persisting a newer acceptedEpoch, and takes
the leader's DIFF, TRUNC or SNAP:

- DIFF: the tree already holds every txn this member logged (the consensus replays the log
  before each election), and the PROPOSAL/COMMIT pairs that follow add the rest;
- TRUNC: every logged txn above the target is removed from the store (all of them: quorum.md
  2.4's 3.8.0 defect is not reproduced), and the tree is rebuilt from the store;
- SNAP: the snapshot stream is read, becomes the tree, and is saved as a snapshot at the
  leader's zxid, after removing any logged txn above it.

Proposals and commits received before NEWLEADER are held; at NEWLEADER currentEpoch is
persisted, then those proposals are logged, the commits among them applied, and NEWLEADER is
acked. UPTODATE starts serving: the learner acks it, then acks every proposal logged so far.
Later proposals are logged with group commit and acked once durable (observers ack nothing
but NEWLEADER and UPTODATE); a COMMIT (INFORM for observers) is applied once its proposal is
durable, in order. Client writes go to the leader as REQUEST with the client's auth ids;
syncs complete when the leader's SYNC comes back; reconnecting sessions are REVALIDATEd.
PINGs are answered with the sessions of this member's clients touched since the last ping.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from core.connection import no_delay
from core.interfaces import Request
from core.jute import INT
from core.opcodes import OpCode
from core.records import CreateSessionTxn, Id
from core.snapshot import deserialize_stream, serialize
from core.txn import Txn, decode_txn
from plugins.consensus_zab.common import QuorumStream, SnapScanner
from plugins.consensus_zab.packets import (
    LEARNER_PROTOCOL_VERSION, LearnerInfo, PacketType, QuorumPacket,
)

log = Logger()

_REQUEST_HEAD = struct.Struct(">qii")
_SESSION_TOUCH = struct.Struct(">qi")
_REVALIDATE_ANSWER = struct.Struct(">q?")
# compared with or sent per txn, bound once (see core.opcodes)
_SYNC, _CREATE_SESSION = OpCode.sync, OpCode.createSession
_PROPOSAL, _ACK, _COMMIT, _REQUEST = PacketType.PROPOSAL, PacketType.ACK, PacketType.COMMIT, PacketType.REQUEST
# Learner.connectToLeader's pause between attempts (leaderConnectDelayDuringRetryMs, 100 ms):
# right after an election the new leader may not listen yet
CONNECT_RETRY_SECONDS = 0.1


class Learner:
    """FOLLOWING or OBSERVING one leader; one instance per term; `stop` ends it for good."""

    def __init__(self, zab: Any, leader_sid: int) -> None:
        self.zab = zab
        self.server = zab.server
        self.reactor = zab.reactor
        cfg = zab.config
        self.config = cfg
        self.leader_sid = leader_sid
        self.observer: bool = zab.observer
        self.name = "observer" if self.observer else "follower"
        self.init_ms: int = (cfg.init_limit or 10) * cfg.tick_time
        self.sync_ms: int = (cfg.sync_limit or 5) * cfg.tick_time
        self.conn: LearnerConnection | None = None
        self.connector: Any = None
        self.retry: Any = None
        self.connect_deadline = 0.0
        self.stopped = False
        self.serving = False
        self.phase = "connecting"
        self.epoch = 0
        # synchronization: held until NEWLEADER
        self.held_proposals: list[tuple[int, bytes, Txn]] = []
        self.held_commits: list[int] = []
        self.snap: SnapScanner | None = None
        self.snap_zxid = 0
        # broadcast
        self.pending: OrderedDict[int, tuple[Txn, bytes]] = OrderedDict()  # logged or being logged
        self.durable_upto = 0
        self.commits: deque[tuple[str, int]] = deque()  # ("commit", zxid) or ("sync", 0)
        self.deferred_acks: list[int] = []
        self.syncs: deque[Request] = deque()
        self.revalidations: dict[int, list[Deferred[bool]]] = {}
        self.reported: dict[int, int] = {}  # session id -> expiry reported in the last PING

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.connect_deadline = self.reactor.seconds() + self.init_ms / 1000.0
        self._connect()

    def _connect(self) -> None:
        self.retry = None
        if self.stopped:
            return
        spec = self.config.servers.get(self.leader_sid)
        if spec is None:
            self.fail(f"leader {self.leader_sid} is not in the configuration")
            return
        timeout = max(1.0, self.connect_deadline - self.reactor.seconds())
        self.connector = self.reactor.connectTCP(spec.host, spec.quorum_port, _LearnerFactory(self),
                                                 timeout=timeout)

    def connect_failed(self, reason: Failure) -> None:
        self.connector = None
        if self.stopped:
            return
        if self.reactor.seconds() >= self.connect_deadline:
            self.fail(f"cannot connect to leader {self.leader_sid}: {reason.getErrorMessage()}")
        else:
            self.retry = self.reactor.callLater(CONNECT_RETRY_SECONDS, self._connect)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.serving = False
        if self.retry is not None and self.retry.active():
            self.retry.cancel()
        if self.connector is not None:
            self.connector.disconnect()
            self.connector = None
        if self.conn is not None:
            self.conn.close()
        # A REVALIDATE the leader never answered says nothing about the session: its client is
        # not told "expired" (that would end a live session) but loses its connection, as
        # ZooKeeper's follower closes every client when it stops, and reconnects elsewhere.
        # Closing first makes the server ignore the False given to the waiters below.
        revalidations, self.revalidations = self.revalidations, {}
        if revalidations:
            for client in list(self.server.all_connections):
                client.close()
        for waiters in revalidations.values():
            for d in waiters:
                d.callback(False)

    def fail(self, reason: str) -> None:
        if not self.stopped:
            self.zab.role_ended(self, reason)

    # -- the connection ---------------------------------------------------------------------

    def connected(self, conn: LearnerConnection) -> None:
        """Register with the leader (Learner.registerWithLeader)."""
        if self.stopped:
            conn.close()
            return
        self.conn = conn
        self.phase = "leaderinfo"
        conn.arm(self.init_ms)
        ptype = PacketType.OBSERVERINFO if self.observer else PacketType.FOLLOWERINFO
        info = LearnerInfo(self.zab.my_sid, LEARNER_PROTOCOL_VERSION, 0)
        conn.send(ptype, self.zab.accepted_epoch << 32, info.encode())

    def lost(self, conn: LearnerConnection, why: str) -> None:
        if conn is self.conn:
            self.fail(why)

    def packet(self, pkt: QuorumPacket) -> Deferred[Any] | None:
        t = pkt.type
        phase = self.phase
        if phase == "serving":
            self._broadcast(pkt)
            return None
        if phase == "leaderinfo":
            if t != PacketType.LEADERINFO:
                raise ValueError(f"expected LEADERINFO, got packet type {t}")
            return self._leader_info(pkt.zxid >> 32)
        if phase == "choice":
            if t == PacketType.DIFF:
                self.phase = "sync"
                return None
            if t == PacketType.TRUNC:
                self.phase = "sync"
                return self._truncate(pkt.zxid)
            if t == PacketType.SNAP:
                assert self.conn is not None
                self.phase = "sync"
                self.snap = SnapScanner(self.conn.off)
                self.snap_zxid = pkt.zxid
                self.conn.raw = self._snap_bytes
                return None
            raise ValueError(f"expected DIFF, TRUNC or SNAP, got packet type {t}")
        # phase "sync" (before NEWLEADER) or "newleader" (after it, before UPTODATE)
        if t in (PacketType.PROPOSAL, PacketType.INFORM):
            txn = decode_txn(pkt.data or b"")
            if phase == "sync":
                self.held_proposals.append((pkt.zxid, pkt.data or b"", txn))
                if t == PacketType.INFORM:
                    self.held_commits.append(pkt.zxid)
            else:
                self._log(pkt.zxid, pkt.data or b"", txn)
                if t == PacketType.INFORM:
                    self._commit(pkt.zxid)
        elif t == PacketType.COMMIT:
            if phase == "sync":
                self.held_commits.append(pkt.zxid)
            else:
                self._commit(pkt.zxid)
        elif t == PacketType.NEWLEADER:
            if phase != "sync":
                raise ValueError("a second NEWLEADER")
            return self._newleader(pkt.zxid)
        elif t == PacketType.UPTODATE:
            if phase != "newleader":
                raise ValueError("UPTODATE before NEWLEADER")
            self._uptodate()
        # PINGs during synchronization go unanswered, as a Java learner's do
        return None

    # -- registration and synchronization -----------------------------------------------------

    def _leader_info(self, epoch: int) -> Deferred[Any] | None:
        """ACKEPOCH, after persisting a newer acceptedEpoch (quorum.md 2.3 step 3)."""
        zab = self.zab
        self.epoch = epoch
        self.phase = "choice"
        zab.zab_state = "synchronization"
        last = zab.last_zxid()
        if epoch > zab.accepted_epoch:
            d = zab.set_accepted_epoch(epoch)
            d.addCallback(lambda _: self._send(PacketType.ACKEPOCH, last, INT.pack(zab.current_epoch)))
            return d
        if epoch == zab.accepted_epoch:
            self._send(PacketType.ACKEPOCH, last, INT.pack(-1))
            return None
        raise ValueError(f"leader's epoch {epoch} is below our accepted epoch {zab.accepted_epoch}")

    @inlineCallbacks
    def _truncate(self, zxid: int) -> Any:
        """TRUNC: drop every logged txn above `zxid`, rebuild the tree from the store."""
        server = self.server
        log.info("truncating the log after 0x{zxid:x} (was at 0x{last:x})", zxid=zxid, last=self.zab.last_zxid())
        yield server.storage.run(server.store.truncate_after, zxid)
        yield server.recover()
        self.zab.committed.truncate_after(zxid)
        self.zab.log.last_durable = min(self.zab.log.last_durable, zxid)

    def _snap_bytes(self, buf: bytearray, off: int) -> tuple[int, Deferred[Any]] | None:
        """The raw SNAP payload: once whole, install it (packets wait until it is saved)."""
        assert self.snap is not None and self.conn is not None
        end = self.snap.feed(buf)
        if end is None:
            return None
        tree, sessions, _ = deserialize_stream(bytes(buf[self.snap.start:self.snap.nodes_end]))
        self.conn.raw = None
        self.snap = None
        return end, self._install_snapshot(tree, sessions, self.snap_zxid)

    @inlineCallbacks
    def _install_snapshot(self, tree: Any, sessions: dict[int, int], zxid: int) -> Any:
        """The leader's tree at `zxid` replaces ours, durably: a snapshot at `zxid`, and no
        logged txn above it."""
        server = self.server
        log.info("loading the leader's snapshot at 0x{zxid:x} ({n} nodes, {s} sessions)", zxid=zxid,
                 n=len(tree.nodes) - 1, s=len(sessions))
        server.reset(tree, sessions)
        tree.last_zxid = zxid
        chunks = list(serialize(tree, sessions, zxid))
        store = server.store

        def persist() -> None:
            store.truncate_after(zxid)
            store.save_snapshot(zxid, chunks)

        yield server.storage.run(persist)
        self.zab.committed.clear()
        self.zab.log.last_durable = min(self.zab.log.last_durable, zxid)

    @inlineCallbacks
    def _newleader(self, zxid: int) -> Any:
        """NEWLEADER: persist currentEpoch, log the proposals held so far, apply the commits
        among them, then ACK (quorum.md 2.3 step 6)."""
        zab = self.zab
        server = self.server
        epoch = zxid >> 32
        yield zab.set_current_epoch(epoch)
        held, self.held_proposals = self.held_proposals, []
        fresh = [(z, p, t) for z, p, t in held if z > zab.last_zxid()]
        if fresh:
            yield server.storage.run(server.store.append, [(z, p) for z, p, _ in fresh])
            zab.log.last_durable = max(zab.log.last_durable, fresh[-1][0])
        for z, p, t in fresh:
            self.pending[z] = (t, p)
            if not self.observer:
                self.deferred_acks.append(z)
        self.durable_upto = max(self.durable_upto, zab.log.last_durable)
        commits, self.held_commits = self.held_commits, []
        for z in commits:
            self.commits.append(("commit", z))
        self._run_commits()
        self.phase = "newleader"
        assert self.conn is not None
        self.conn.arm(self.sync_ms)
        self._send(PacketType.ACK, zxid)

    def _uptodate(self) -> None:
        """UPTODATE: ack it, ack what was logged during synchronization, serve."""
        self._send(PacketType.ACK, self.epoch << 32)
        acks, self.deferred_acks = self.deferred_acks, []
        for z in acks:
            self._send(PacketType.ACK, z)
        self.phase = "serving"
        self.serving = True
        self.zab.serving_as(self, self.name, self.epoch)

    # -- broadcast ----------------------------------------------------------------------------

    def _broadcast(self, pkt: QuorumPacket) -> None:
        t = pkt.type
        if t == _PROPOSAL:
            self._log(pkt.zxid, pkt.data or b"", decode_txn(pkt.data or b""))
        elif t == _COMMIT:
            self._commit(pkt.zxid)
        elif t == PacketType.INFORM:
            self._log(pkt.zxid, pkt.data or b"", decode_txn(pkt.data or b""))
            self._commit(pkt.zxid)
        elif t == PacketType.PING:
            self._send(PacketType.PING, pkt.zxid, self._touches())
        elif t == PacketType.SYNC:
            self.commits.append(("sync", 0))
            self._run_commits()
        elif t == PacketType.REVALIDATE:
            self._revalidated(pkt.data or b"")
        elif t in (PacketType.COMMITANDACTIVATE, PacketType.INFORMANDACTIVATE):
            raise ValueError("reconfiguration is not supported (reconfigEnabled=false)")
        else:
            log.debug("ignoring packet type {t} from the leader", t=t)

    def _log(self, zxid: int, payload: bytes, txn: Txn) -> None:
        if zxid <= self.durable_upto or zxid in self.pending:
            return  # already logged (sent again during synchronization)
        self.pending[zxid] = (txn, payload)
        self.zab.log.append(zxid, payload, self._durable)

    def _durable(self, zxid: int) -> None:
        if self.stopped:
            return
        self.durable_upto = max(self.durable_upto, zxid)
        if not self.observer:
            if self.serving:
                self._send(_ACK, zxid)
            else:
                self.deferred_acks.append(zxid)
        self._run_commits()

    def _commit(self, zxid: int) -> None:
        self.commits.append(("commit", zxid))
        self._run_commits()

    def _run_commits(self) -> None:
        """Apply queued commits whose proposals are durable, in order; complete syncs."""
        server = self.server
        done = False
        while self.commits:
            kind, zxid = self.commits[0]
            if kind == "commit":
                if zxid <= server.tree.last_zxid:
                    self.commits.popleft()
                    continue
                first = next(iter(self.pending), None)
                if first == zxid and zxid > self.durable_upto:
                    break  # applied once durable here
                if first != zxid:
                    self.commits.clear()
                    self.reactor.callLater(0, self.fail, f"COMMIT 0x{zxid:x} but the next pending proposal is "
                                           + (f"0x{first:x}" if first is not None else "none"))
                    return
                txn, payload = self.pending.pop(zxid)
                self.commits.popleft()
                server.commit(txn)
                self._check_digest(zxid, txn)
                self.zab.committed.add(zxid, payload)
            else:
                self.commits.popleft()
                if self.syncs:
                    server.synced(self.syncs.popleft())
            done = True
        if done:
            server.flush_soon()

    def _check_digest(self, zxid: int, txn: Txn) -> None:
        """DataTree.compareDigest (quorum.md 3.2): the leader's TxnDigest (version 2) against our
        tree's digest after applying the txn. A mismatch is counted on the consensus
        (`digest_mismatches`, mntr zk_digest_mismatches_count) and logged; nothing stops."""
        digest = txn.digest
        if digest is None or digest.version != 2 or not self.server.config.digest_enabled:
            return
        ours = self.server.tree.digest
        if digest.treeDigest != ours:
            self.zab.digest_mismatches = getattr(self.zab, "digest_mismatches", 0) + 1
            log.warn("Digests are not matching at zxid 0x{zxid:x}: leader {theirs}, ours {ours}",
                     zxid=zxid, theirs=digest.treeDigest, ours=ours)

    def _touches(self) -> bytes:
        """The sessions of this member's clients touched since the last PING."""
        sessions = self.server.sessions.sessions
        reported = self.reported
        parts = []
        live: dict[int, int] = {}
        for sid in list(self.server.connections):
            s = sessions.get(sid)
            if s is None:
                continue
            live[sid] = s.expires_at
            if reported.get(sid) != s.expires_at:
                parts.append(_SESSION_TOUCH.pack(sid, s.timeout))
        self.reported = live
        return b"".join(parts)

    # -- what the consensus forwards ----------------------------------------------------------

    def submit(self, request: Request) -> None:
        """A client write, session change or sync: to the leader as REQUEST."""
        if request.type == _SYNC:
            self.syncs.append(request)
        if request.type == _CREATE_SESSION:
            body = CreateSessionTxn.encode(request.record)
        else:
            body = request.raw
        data = _REQUEST_HEAD.pack(request.session_id, request.cxid, request.type) + body
        self._send(_REQUEST, -1, data, request.auth or None)

    def revalidate(self, session_id: int, timeout: int) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        waiters = self.revalidations.setdefault(session_id, [])
        waiters.append(d)
        if len(waiters) == 1:
            self._send(PacketType.REVALIDATE, -1, _SESSION_TOUCH.pack(session_id, timeout))
        return d

    def _revalidated(self, data: bytes) -> None:
        session_id, valid = _REVALIDATE_ANSWER.unpack_from(data, 0)
        for d in self.revalidations.pop(session_id, []):
            d.callback(bool(valid))

    def flush_quorum(self) -> None:
        """Send the leader the packets queued this turn."""
        if self.conn is not None:
            self.conn.flush()

    def _send(self, ptype: int, zxid: int, data: bytes | None = None, authinfo: Sequence[Id] | None = None) -> None:
        if self.conn is not None:
            self.conn.send(ptype, zxid, data, authinfo)


class LearnerConnection(QuorumStream):
    """The learner's quorum-port connection, with a read timeout (initLimit ticks until
    NEWLEADER is acked, then syncLimit ticks)."""

    def __init__(self, learner: Learner) -> None:
        super().__init__(learner.reactor)
        self.learner = learner
        self.timer: Any = None
        self.limit_ms = learner.init_ms

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.learner.connected(self)

    def arm(self, limit_ms: int) -> None:
        self.limit_ms = limit_ms
        self._rearm()

    def _rearm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.reset(self.limit_ms / 1000.0)
        else:
            self.timer = self.learner.reactor.callLater(self.limit_ms / 1000.0, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        if not self.closed:
            self.learner.lost(self, f"nothing from leader {self.learner.leader_sid} for {self.limit_ms} ms")
            self.close()

    def packet_received(self, pkt: QuorumPacket) -> Deferred[Any] | None:
        return self.learner.packet(pkt)

    def dataReceived(self, data: bytes) -> None:
        self._rearm()  # any bytes from the leader are progress (a socket read timeout, as Java's)
        super().dataReceived(data)

    def stream_failed(self, why: str) -> None:
        self.learner.lost(self, why)
        self.close()

    def close(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        super().close()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        was_closed = self.closed
        super().connectionLost(reason)
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if not was_closed:
            self.learner.lost(self, f"connection to leader {self.learner.leader_sid} lost: {reason.getErrorMessage()}")


class _LearnerFactory(ClientFactory):
    noisy = False

    def __init__(self, learner: Learner) -> None:
        self.learner = learner

    def buildProtocol(self, addr: Any) -> LearnerConnection:
        return LearnerConnection(self.learner)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.learner.connect_failed(reason)

