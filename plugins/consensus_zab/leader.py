"""The ZAB leader (Leader.lead + LearnerHandler, quorum.md 2.3-2.8).

Discovery: learners connect to the quorum port and send FOLLOWERINFO (OBSERVERINFO); once the
leader and a quorum of voters have, the new epoch is max(acceptedEpochs) + 1, persisted as
acceptedEpoch, and announced with LEADERINFO. After a quorum of ACKEPOCHs currentEpoch is
persisted and each learner is synchronized (DIFF, TRUNC or SNAP, chosen as
LearnerHandler.syncFollower does), then sent NEWLEADER; a quorum of NEWLEADER ACKs establishes
the leader, which starts serving and sends UPTODATE. Learners that come later go through the
same steps at once.

Broadcast: each write is prepped into a txn (core.prep), sent as PROPOSAL to the followers and
logged with group commit; it commits when the leader's log holds it and a quorum of voters
acked it, strictly in zxid order: COMMIT to followers, INFORM to observers, then the server
applies it. The leader alone expires sessions (touched by its own clients and by the
followers' PING replies), cleans up containers, answers SYNC and REVALIDATE. It pings every
learner each half tick and steps down when a quorum of voters has not been heard from within
syncLimit ticks, or a phase of the start-up takes longer than initLimit ticks.

Everything runs on the reactor; a sync decision, the packets it queues and the start of
forwarding happen in one go, so no commit can slip between them.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from core.connection import no_delay
from core import containers
from core.interfaces import Request
from core.jute import INT
from core.opcodes import OpCode
from core.prep import Prep
from core.records import PathRequest
from core.requests import decode_write
from core.snapshot import serialize_stream
from core.txn import Txn, encode_txn
from plugins.consensus_zab.common import (
    COUNTER_MASK, SNAP_SIGNATURE, QuorumStream, config_text, epoch_of, has_quorum, is_new_epoch_zxid,
    packet,
)
from plugins.consensus_zab.packets import (
    LEARNER_PROTOCOL_VERSION, LearnerInfo, PacketType, QuorumPacket,
)

log = Logger()

DEFAULT_CONTAINER_CHECK_MS = 60000
_REQUEST_HEAD = struct.Struct(">qii")
_SESSION_TOUCH = struct.Struct(">qi")
_REVALIDATE_ANSWER = struct.Struct(">q?")
# compared with or sent per txn, bound once (see core.opcodes)
_SYNC, _PROPOSAL, _ACK, _COMMIT = OpCode.sync, PacketType.PROPOSAL, PacketType.ACK, PacketType.COMMIT
_REQUEST = PacketType.REQUEST
_SNAP_END = INT.pack(len(SNAP_SIGNATURE)) + SNAP_SIGNATURE.encode()

DIFF, TRUNC, SNAP = PacketType.DIFF, PacketType.TRUNC, PacketType.SNAP


# -- the sync choice --------------------------------------------------------------------------

@dataclass
class SyncPlan:
    """What a learner is sent: DIFF/TRUNC/SNAP with its zxid, then the committed txns it lacks
    (each as PROPOSAL + COMMIT); `last_seen` is where forwarding of outstanding proposals starts."""

    kind: int
    zxid: int
    txns: list[tuple[int, bytes]] = field(default_factory=list)
    last_seen: int = 0


def choose_sync(peer_last: int, last_processed: int, committed: Sequence[tuple[int, bytes]]) -> SyncPlan:
    """LearnerHandler.syncFollower over the in-memory committed log (quorum.md 2.4, cases 1-3
    and 5; the on-disk log of case 4 is not read: such a learner gets a SNAP)."""
    if committed:
        min_log, max_log = committed[0][0], committed[-1][0]
    else:
        min_log = max_log = last_processed
    if peer_last == last_processed:
        return SyncPlan(DIFF, peer_last, [], peer_last)
    if peer_last > max_log and not is_new_epoch_zxid(peer_last):
        return SyncPlan(TRUNC, max_log, [], max_log)
    if min_log <= peer_last <= max_log:
        plan = _walk(peer_last, committed, max_log)
        if plan is not None:
            return plan
    return SyncPlan(SNAP, last_processed, [], last_processed)


DEFAULT_SNAPSHOT_SIZE_FACTOR = 0.33  # zookeeper.snapshotSizeFactor


def with_disk_log(peer_last: int, disk: Sequence[tuple[int, bytes]] | None,
                  committed: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]] | None:
    """quorum.md 2.4 case 4: the txns read from the on-disk log from `peer_last` on (`disk`,
    None when over the size limit) joined with the committed log, for the same walk; None when
    they cannot serve (nothing read, the first txn read is not the peer's last one, or a gap
    between the two: then SNAP)."""
    if not disk:
        return None
    if disk[0][0] != peer_last and not (is_new_epoch_zxid(peer_last) and disk[0][0] > peer_last
                                        and epoch_of(disk[0][0]) == epoch_of(peer_last)):
        return None
    last = disk[-1][0]
    if committed and committed[0][0] > last:
        return None  # txns may be missing between what was read and the committed log
    return list(disk) + [(z, p) for z, p in committed if z > last]


def sync_from_log(peer_last: int, last_processed: int, merged: Sequence[tuple[int, bytes]]) -> SyncPlan:
    """Case 4's decision: the walk over the on-disk log joined with the committed log
    (`with_disk_log`), else SNAP."""
    plan = _walk(peer_last, merged, merged[-1][0]) if merged else None
    return plan if plan is not None else SyncPlan(SNAP, last_processed, [], last_processed)


def _walk(peer_last: int, committed: Sequence[tuple[int, bytes]], max_log: int) -> SyncPlan | None:
    """LearnerHandler.queueCommittedProposals: None when only a SNAP will do."""
    new_epoch_peer = is_new_epoch_zxid(peer_last)
    plan: SyncPlan | None = None
    prev = -1
    for zxid, payload in committed:
        if zxid < peer_last:
            prev = zxid
            continue
        if plan is None:
            if zxid == peer_last:
                plan = SyncPlan(DIFF, max_log, [], peer_last)
                continue
            if new_epoch_peer:
                plan = SyncPlan(DIFF, max_log, [], peer_last)
            elif epoch_of(zxid) != epoch_of(peer_last):
                return None  # the txns after the peer's are of another epoch: SNAP
            else:
                plan = SyncPlan(TRUNC, prev, [], prev)
        if zxid <= plan.last_seen:
            continue
        plan.txns.append((zxid, payload))
        plan.last_seen = zxid
    if plan is None and new_epoch_peer:
        plan = SyncPlan(DIFF, max_log, [], peer_last)
    return plan


# -- the leader -------------------------------------------------------------------------------

@dataclass
class Proposal:
    """A txn proposed and not yet committed. `acks` holds the voters that logged it (ACKs of
    observers and non-voters are not added; the leader is a voter), `durable` whether this
    member has logged it."""

    txn: Txn
    payload: bytes
    acks: set[int] = field(default_factory=set)
    durable: bool = False


class Leader:
    """LEADING: one instance per term; `stop` ends it for good."""

    name = "leader"

    def __init__(self, zab: Any) -> None:
        self.zab = zab
        self.server = zab.server
        self.reactor = zab.reactor
        cfg = zab.config
        self.config = cfg
        self.sid: int = zab.my_sid
        self.voting: frozenset[int] = zab.voting
        self.tick_ms: int = cfg.tick_time
        self.init_ms: int = (cfg.init_limit or 10) * cfg.tick_time
        self.sync_ms: int = (cfg.sync_limit or 5) * cfg.tick_time
        self.handlers: list[LearnerHandler] = []
        self.port: Any = None
        self.stopped = False
        self.serving = False
        self.timer: Any = None
        # discovery and synchronization
        self.epoch: int | None = None
        self.fixing = False
        self.max_accepted: int = zab.accepted_epoch
        self.connecting: set[int] = {self.sid}
        self.electing: set[int] = {self.sid}
        self.epoch_acked = False
        self.acking = False
        self.start_summary = (zab.current_epoch, zab.last_zxid())
        self.newleader_acks: set[int] = {self.sid}
        # broadcast
        self.prep: Prep | None = None
        self.outstanding: OrderedDict[int, Proposal] = OrderedDict()
        self.last_proposed = 0
        self.last_committed = 0
        self.syncs: deque[tuple[int, Callable[[], None]]] = deque()
        self.half_ticks = 0
        self.ticker = LoopingCall(self.tick)
        self.ticker.clock = self.reactor
        self.container_check = LoopingCall(self.check_containers)
        self.container_check.clock = self.reactor
        self.config_bytes = config_text(cfg.servers)
        self.established_ms: int | None = None  # for mntr's zk_leader_uptime
        self.proposal_sizes = (-1, -1, -1)  # last, min, max PROPOSAL packet bytes (mntr)

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        spec = self.config.servers[self.sid]
        interface = spec.host
        if self.config.raw.get("quorumListenOnAllIPs", "").strip().lower() == "true":
            interface = "::" if ":" in spec.host else "0.0.0.0"
        try:
            self.port = self.reactor.listenTCP(spec.quorum_port, LeaderFactory(self), interface=interface)
        except CannotListenError as e:
            self.reactor.callLater(0, self.fail, f"cannot listen on the quorum port: {e}")
            return
        self._arm(self.init_ms, "no quorum of learners sent FOLLOWERINFO within initLimit")
        self._check_epoch_quorum()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.serving = False
        self._disarm()
        for loop in (self.ticker, self.container_check):
            if loop.running:
                loop.stop()
        if self.port is not None:
            self.port.stopListening()
            self.port = None
        for h in list(self.handlers):
            h.close()
        self.handlers.clear()

    def fail(self, reason: str) -> None:
        if not self.stopped:
            self.zab.role_ended(self, reason)

    def _arm(self, ms: int, reason: str) -> None:
        self._disarm()
        self.timer = self.reactor.callLater(ms / 1000.0, self.fail, reason)

    def _disarm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def last_processed(self) -> int:
        """lastProcessedZxid: once established, at least newEpoch << 32 (quorum.md 2.4)."""
        last = self.server.tree.last_zxid
        if self.serving and self.epoch is not None:
            return max(last, self.epoch << 32)
        return last

    # -- discovery --------------------------------------------------------------------------

    def learner_info(self, h: LearnerHandler, accepted_epoch: int) -> None:
        """FOLLOWERINFO/OBSERVERINFO arrived (Leader.getEpochToPropose)."""
        if self.epoch is not None:
            h.send_leader_info(self.epoch)
            return
        if not self.fixing:
            self.max_accepted = max(self.max_accepted, accepted_epoch)
            if h.voter:
                self.connecting.add(h.sid)
        self._check_epoch_quorum()

    def _check_epoch_quorum(self) -> None:
        if self.epoch is not None or self.fixing or not has_quorum(self.connecting, self.voting):
            return
        self.fixing = True
        epoch = self.max_accepted + 1
        d = self.zab.set_accepted_epoch(epoch)
        d.addCallbacks(lambda _: self._epoch_fixed(epoch), self._store_error)

    def _epoch_fixed(self, epoch: int) -> None:
        if self.stopped:
            return
        self.epoch = epoch
        self.last_proposed = self.last_committed = epoch << 32
        self._arm(self.init_ms, "no quorum of learners acknowledged the new epoch within initLimit")
        for h in list(self.handlers):
            if h.state == "epoch":
                h.send_leader_info(epoch)
        self._check_ack_quorum()

    def epoch_ack(self, h: LearnerHandler, peer_epoch: int, peer_last: int) -> None:
        """ACKEPOCH arrived (Leader.waitForEpochAck)."""
        if not self.epoch_acked and peer_epoch != -1:
            if (peer_epoch, peer_last) > self.start_summary:
                h.refuse(f"it is ahead of the leader: epoch {peer_epoch}, zxid 0x{peer_last:x} > "
                         f"epoch {self.start_summary[0]}, zxid 0x{self.start_summary[1]:x}")
                return
            if peer_last != -1 and h.voter:
                self.electing.add(h.sid)
        if self.epoch_acked:
            self.sync(h)
        else:
            self._check_ack_quorum()

    def _check_ack_quorum(self) -> None:
        if self.epoch is None or self.epoch_acked or self.acking or not has_quorum(self.electing, self.voting):
            return
        self.acking = True
        epoch = self.epoch
        d = self.zab.set_current_epoch(epoch)
        d.addCallbacks(lambda _: self._epoch_acked(), self._store_error)

    def _epoch_acked(self) -> None:
        if self.stopped:
            return
        self.epoch_acked = True
        self.zab.zab_state = "synchronization"
        self._arm(self.init_ms, "no quorum of learners acknowledged NEWLEADER within initLimit")
        for h in list(self.handlers):
            if h.state == "wait_sync":
                self.sync(h)
        self._check_newleader_quorum()

    # -- synchronization --------------------------------------------------------------------

    def sync(self, h: LearnerHandler) -> None:
        """Send the learner what it lacks, then forward it every later proposal, then
        NEWLEADER (LearnerHandler.syncFollower + Leader.startForwarding). A learner behind
        the committed log is first offered the on-disk log (quorum.md 2.4 case 4)."""
        assert self.epoch is not None
        committed = self.zab.committed.entries
        plan = choose_sync(h.peer_last, self.last_processed(), committed)
        if plan.kind == SNAP and not h.log_read and self._may_read_log(h.peer_last):
            self._sync_from_disk(h)
            return
        self._send_sync(h, plan, "")

    def _may_read_log(self, peer_last: int) -> bool:
        factor = float(self.config.raw.get("snapshotSizeFactor", DEFAULT_SNAPSHOT_SIZE_FACTOR))
        committed = self.zab.committed.entries
        low = committed[0][0] if committed else self.server.tree.last_zxid
        return factor >= 0 and 0 < peer_last < low

    def _sync_from_disk(self, h: LearnerHandler) -> None:
        """Read the logged txns from the learner's last zxid up to what this leader applied
        (all committed), at most snapshotSizeFactor x the snapshot's size of them, on the
        storage thread; then decide again with them (in one reactor turn, as `sync`)."""
        h.log_read = True
        h.state = "reading_log"
        store = self.zab.store
        peer_last = h.peer_last
        upto = self.server.tree.last_zxid
        factor = float(self.config.raw.get("snapshotSizeFactor", DEFAULT_SNAPSHOT_SIZE_FACTOR))
        tree_bytes = sum(len(path) + len(node.data or b"") + 60 for path, node in self.server.tree.nodes.items())

        def read() -> list[tuple[int, bytes]] | None:
            info = store.describe()
            newest = (info.snapshot_bytes // len(info.snapshot_zxids)) if info.snapshot_zxids else 0
            limit = factor * max(newest, tree_bytes)
            if info.first_zxid is None or info.first_zxid > peer_last and not is_new_epoch_zxid(peer_last):
                return None
            out: list[tuple[int, bytes]] = []
            size = 0
            for zxid, payload in store.read_from(max(peer_last - 1, 0)):
                if zxid > upto:
                    break
                out.append((zxid, payload))
                size += len(payload) + 21  # + the log entry's checksum, length and 'B'
                if size > limit:
                    return None
            return out

        def decided(disk: list[tuple[int, bytes]] | None) -> None:
            if self.stopped or h.closed or h.state != "reading_log":
                return
            h.state = "wait_sync"
            merged = with_disk_log(peer_last, disk, self.zab.committed.entries)
            if merged is None:
                self.sync(h)  # the in-memory choice again (log_read is set): SNAP
                return
            self._send_sync(h, sync_from_log(peer_last, self.last_processed(), merged), " (from the on-disk log)")

        def unreadable(failure: Failure) -> None:
            log.info("reading the log for sid {sid}: {err}", sid=h.sid, err=failure.getErrorMessage())
            decided(None)

        d = self.server.storage.run(read)
        d.addCallbacks(decided, unreadable)

    def _send_sync(self, h: LearnerHandler, plan: SyncPlan, source: str) -> None:
        assert self.epoch is not None
        log.info("synchronizing {kind} sid {sid}: {how} 0x{zxid:x} (its last zxid 0x{peer:x}), {n} txns{source}",
                 kind=h.kind, sid=h.sid, how=PacketType(plan.kind).name, zxid=plan.zxid, peer=h.peer_last,
                 n=len(plan.txns), source=source)
        h.send(plan.kind, plan.zxid)
        if plan.kind == SNAP:
            tree = self.server.tree
            sessions = {sid: s.timeout for sid, s in self.server.sessions.sessions.items()}
            h.send_raw([*serialize_stream(tree, sessions, tree.last_zxid), _SNAP_END])
        for zxid, payload in plan.txns:
            h.send(PacketType.PROPOSAL, zxid, payload)
            h.send(PacketType.COMMIT, zxid)
        if not h.observer:
            now = self.server.now_ms()
            for zxid, p in self.outstanding.items():
                if zxid > plan.last_seen:
                    h.proposal_sent(zxid, packet(_PROPOSAL, zxid, p.payload), now)
        h.forwarding = True
        h.state = "newleader"
        h.send(PacketType.NEWLEADER, self.epoch << 32, self.config_bytes)

    def newleader_ack(self, h: LearnerHandler, zxid: int) -> None:
        """The learner's first packet after NEWLEADER (Leader.waitForNewLeaderAck)."""
        assert self.epoch is not None
        if zxid != self.epoch << 32:
            log.info("sid {sid} acked NEWLEADER with 0x{zxid:x}, not 0x{want:x}; not counted",
                     sid=h.sid, zxid=zxid, want=self.epoch << 32)
        elif h.voter:
            self.newleader_acks.add(h.sid)
        h.state = "acked"
        if self.serving:
            h.uptodate()
        else:
            self._check_newleader_quorum()

    def _check_newleader_quorum(self) -> None:
        if self.serving or not self.epoch_acked or not has_quorum(self.newleader_acks, self.voting):
            return
        self._establish()

    def _establish(self) -> None:
        """A quorum has acked NEWLEADER: serve (Leader.startZkServer), send UPTODATE."""
        assert self.epoch is not None
        self._disarm()
        server = self.server
        self.prep = Prep(server.tree, server.access, server.sessions, self.config.extended_types_enabled, server.now_ms)
        now = server.now_ms()
        for session in list(server.sessions.sessions.values()):
            session.closing = False
            server.sessions.touch(session.session_id, now)
        self.serving = True
        self.established_ms = server.now_ms()
        self.zab.serving_as(self, "leader", self.epoch)
        for h in list(self.handlers):
            if h.state == "acked":
                h.uptodate()
        self.ticker.start(self.tick_ms / 2000.0, now=False)
        interval = int(self.config.raw.get("znode.container.checkIntervalMs", DEFAULT_CONTAINER_CHECK_MS))
        self.container_check.start(interval / 1000.0, now=False)

    # -- broadcast --------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """A write of this member's client, or a sync."""
        if request.type == _SYNC:
            self.after_outstanding(lambda: self.server.synced(request))
        else:
            self.propose(request)

    def propose(self, request: Request) -> None:
        """Prep the request into the next txn, send it to the followers, log it."""
        assert self.prep is not None
        zxid = self.last_proposed + 1
        if zxid & COUNTER_MASK == COUNTER_MASK:
            self.fail("zxid counter rollover: a new election starts a new epoch")
            return
        try:
            txn = self.prep.prep(request, zxid)
        except ValueError as e:
            log.warn("request type {t} of session 0x{sid:x} makes no txn: {err}", t=request.type,
                     sid=request.session_id & (2**64 - 1), err=str(e))
            return
        payload = encode_txn(txn)
        self.last_proposed = zxid
        size = len(payload) + 20  # the PROPOSAL QuorumPacket's bytes
        _, smallest, largest = self.proposal_sizes
        self.proposal_sizes = (size, size if smallest < 0 else min(smallest, size), max(largest, size))
        self.outstanding[zxid] = Proposal(txn, payload)
        now = self.server.now_ms()
        proposal = packet(_PROPOSAL, zxid, payload)  # the same bytes for every follower
        for h in self.handlers:
            if h.forwarding and not h.observer:
                h.proposal_sent(zxid, proposal, now)
        self.zab.log.append(zxid, payload, self._durable)

    def flush_quorum(self) -> None:
        """Send every learner the packets queued for it this turn."""
        for h in self.handlers:
            h.flush()

    def _durable(self, zxid: int) -> None:
        p = self.outstanding.get(zxid)
        if p is not None and not self.stopped:
            p.durable = True
            p.acks.add(self.sid)
            if self._committable(p):
                self.try_commit()

    def ack(self, h: LearnerHandler, zxid: int) -> None:
        """Leader.processAck: ACKs of new-epoch zxids or of committed txns are ignored."""
        h.acked(zxid)
        if is_new_epoch_zxid(zxid) or zxid <= self.last_committed or not h.voter:
            return
        p = self.outstanding.get(zxid)
        if p is not None:
            p.acks.add(h.sid)
            if self._committable(p):
                self.try_commit()

    def _committable(self, p: Proposal) -> bool:
        """Durable here and logged by a quorum of voters (its acks hold voters only)."""
        return p.durable and len(p.acks) * 2 > len(self.voting)

    def try_commit(self) -> None:
        """Commit, in zxid order, every head proposal that is durable here and quorum-acked."""
        committed = False
        server = self.server
        assert self.prep is not None
        while self.outstanding:
            zxid, p = next(iter(self.outstanding.items()))
            if not self._committable(p):
                break
            del self.outstanding[zxid]
            self.last_committed = zxid
            commit = packet(_COMMIT, zxid)  # the same bytes for every follower
            for h in self.handlers:
                if h.forwarding:
                    if h.observer:
                        h.send(PacketType.INFORM, zxid, p.payload)
                    else:
                        h.send_packet(commit)
            server.commit(p.txn)
            self.zab.committed.add(zxid, p.payload)
            committed = True
        if committed:
            self.prep.applied(self.last_committed)  # nothing is prepped while a pass commits
            while self.syncs and self.syncs[0][0] <= self.last_committed:
                self.syncs.popleft()[1]()
            server.flush_soon()

    def after_outstanding(self, action: Callable[[], None]) -> None:
        """Run `action` once every proposal made so far is committed (Leader.processSync)."""
        if self.last_proposed <= self.last_committed:
            action()
            self.server.flush()
        else:
            self.syncs.append((self.last_proposed, action))

    def learner_request(self, h: LearnerHandler, data: bytes, authinfo: list[Any] | None) -> None:
        """A REQUEST forwarded by a learner: its session id and cxid are kept."""
        if self.prep is None or len(data) < _REQUEST_HEAD.size:
            return
        session_id, cxid, op = _REQUEST_HEAD.unpack_from(data, 0)
        body = data[_REQUEST_HEAD.size:]
        self.server.sessions.touch(session_id, self.server.now_ms())
        if op == OpCode.sync:
            self.after_outstanding(lambda: h.send(PacketType.SYNC, 0))
            return
        self.propose(Request(session_id, cxid, op, decode_write(op, body), body, authinfo or []))

    def revalidate(self, session_id: int, timeout: int) -> Deferred[bool]:
        """A client of ours reconnects: our own session table answers."""
        session = self.server.sessions.sessions.get(session_id)
        return succeed(session is not None and not session.closing)

    def learner_revalidate(self, h: LearnerHandler, data: bytes) -> None:
        session_id, timeout = _SESSION_TOUCH.unpack_from(data, 0)
        sessions = self.server.sessions
        valid = sessions.touch(session_id, self.server.now_ms())
        log.debug("revalidated session 0x{sid:x} for sid {peer}: {valid}", sid=session_id & (2**64 - 1),
                  peer=h.sid, valid=valid)
        h.send(PacketType.REVALIDATE, -1, _REVALIDATE_ANSWER.pack(session_id, valid))

    def touches(self, data: bytes | None) -> None:
        """A PING reply's session touches."""
        if not data:
            return
        now = self.server.now_ms()
        touch = self.server.sessions.touch
        for off in range(0, len(data) - _SESSION_TOUCH.size + 1, _SESSION_TOUCH.size):
            touch(_SESSION_TOUCH.unpack_from(data, off)[0], now)

    # -- liveness ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Every half tick: ping the learners; every tick: check the synced quorum and expire
        sessions (Leader.lead's loop)."""
        now = self.server.now_ms()
        for h in list(self.handlers):
            if h.forwarding:
                stale = h.oldest_unacked(now, self.sync_ms)
                if stale is not None:
                    h.refuse(f"proposal 0x{stale:x} not acked within syncLimit")
                    continue
                h.send(PacketType.PING, self.last_proposed)
        self.half_ticks += 1
        if self.half_ticks % 2:
            return
        synced = {self.sid} | {h.sid for h in self.handlers if h.voter and now <= h.deadline}
        if not has_quorum(synced, self.voting):
            self.fail(f"only {sorted(synced)} of voters {sorted(self.voting)} heard within syncLimit")
            return
        for session in self.server.sessions.expired(now):
            log.info("expiring session 0x{sid:x}, timeout {t} ms", sid=session.session_id & (2**64 - 1),
                     t=session.timeout)
            self.propose(Request(session.session_id, 0, OpCode.closeSession, None, b"", []))

    def check_containers(self) -> None:
        for path in containers.candidates(self.server.tree, self.server.now_ms()):
            self.propose(Request(0, 0, OpCode.deleteContainer, PathRequest(path), b"", []))

    def heard(self, h: LearnerHandler) -> None:
        if h.state in ("acked", "serving"):
            h.deadline = self.server.now_ms() + self.sync_ms

    def handler_lost(self, h: LearnerHandler) -> None:
        if h in self.handlers:
            self.handlers.remove(h)
            if h.state != "info" and not self.stopped:
                log.info("{kind} sid {sid} disconnected", kind=h.kind, sid=h.sid)

    def _store_error(self, failure: Failure) -> None:
        self.zab._store_failed(failure)

    @property
    def observers(self) -> list[int]:
        return [h.sid for h in self.handlers if h.observer and h.state == "serving"]


class LearnerHandler(QuorumStream):
    """One learner's connection to the leader (LearnerHandler.run)."""

    def __init__(self, leader: Leader) -> None:
        super().__init__(leader.server.reactor)
        self.leader = leader
        self.sid = -1  # known once FOLLOWERINFO arrives
        self.observer = False
        self.voter = False
        self.state = "info"
        self.peer_last = 0
        self.forwarding = False
        self.log_read = False  # the on-disk log was already tried for this learner's sync
        self.deadline = 0
        self.unacked: deque[tuple[int, int]] = deque()  # (zxid, sent at ms)

    @property
    def kind(self) -> str:
        return "observer" if self.observer else "follower"

    def connectionMade(self) -> None:
        no_delay(self.transport)
        leader = self.leader
        if leader.stopped:
            assert self.transport is not None
            self.transport.loseConnection()
            return
        leader.handlers.append(self)
        self.deadline = leader.server.now_ms() + leader.init_ms + leader.sync_ms

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.leader.handler_lost(self)

    def stream_failed(self, why: str) -> None:
        self.refuse(why)

    def refuse(self, why: str) -> None:
        """Drop this learner, with one log line."""
        if not self.closed:
            peer = self.transport.getPeer() if self.transport is not None else None
            log.info("dropping {kind} sid {sid} at {host}:{port}: {why}", kind=self.kind, sid=self.sid,
                     host=getattr(peer, "host", "?"), port=getattr(peer, "port", "?"), why=why)
            self.close()

    # -- output -------------------------------------------------------------------------------

    def send_leader_info(self, epoch: int) -> None:
        self.state = "ackepoch"
        self.send(PacketType.LEADERINFO, epoch << 32, INT.pack(LEARNER_PROTOCOL_VERSION))

    def proposal_sent(self, zxid: int, proposal: bytes, now_ms: int) -> None:
        """Send the PROPOSAL packet of `zxid` and wait for its ACK."""
        self.send_packet(proposal)
        self.unacked.append((zxid, now_ms))

    def acked(self, zxid: int) -> None:
        while self.unacked and self.unacked[0][0] <= zxid:
            self.unacked.popleft()

    def oldest_unacked(self, now: int, limit_ms: int) -> int | None:
        if self.unacked and now - self.unacked[0][1] > limit_ms:
            return self.unacked[0][0]
        return None

    def uptodate(self) -> None:
        self.state = "serving"
        self.deadline = self.leader.server.now_ms() + self.leader.sync_ms
        self.send(PacketType.UPTODATE, -1)

    # -- input --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.leader.heard(self)  # once per read: its packets all arrived now
        super().dataReceived(data)

    def packet_received(self, pkt: QuorumPacket) -> None:
        leader = self.leader
        if leader.stopped:
            self.close()
            return None
        t = pkt.type
        state = self.state
        if state == "serving" or state == "acked":  # the steady state, tested first
            if t == _ACK:
                if not self.observer:
                    leader.ack(self, pkt.zxid)
            elif t == _REQUEST:
                leader.learner_request(self, pkt.data or b"", pkt.authinfo)
            elif t == PacketType.PING:
                leader.touches(pkt.data)
            elif t == PacketType.REVALIDATE:
                leader.learner_revalidate(self, pkt.data or b"")
            else:
                log.debug("ignoring packet type {t} from sid {sid}", t=t, sid=self.sid)
        elif state == "info":
            self._learner_info(pkt)
        elif state == "ackepoch":
            if t != PacketType.ACKEPOCH:
                self.refuse(f"expected ACKEPOCH, got packet type {t}")
                return None
            self.state = "wait_sync"
            self.peer_last = pkt.zxid
            peer_epoch = INT.unpack_from(pkt.data or b"\xff\xff\xff\xff", 0)[0]
            leader.epoch_ack(self, peer_epoch, pkt.zxid)
        elif state == "newleader":
            if t != PacketType.ACK:
                self.refuse(f"expected the NEWLEADER ACK, got packet type {t}")
                return None
            leader.newleader_ack(self, pkt.zxid)
        return None

    def _learner_info(self, pkt: QuorumPacket) -> None:
        leader = self.leader
        if pkt.type not in (PacketType.FOLLOWERINFO, PacketType.OBSERVERINFO):
            self.refuse(f"expected FOLLOWERINFO or OBSERVERINFO, got packet type {pkt.type}")
            return
        info = LearnerInfo.decode(pkt.data or b"")[0] if pkt.data and len(pkt.data) >= 20 else None
        sid = info.serverid if info is not None else -1
        self.sid = sid
        spec = leader.config.servers.get(sid)
        self.observer = pkt.type == PacketType.OBSERVERINFO or (spec is not None and spec.role == "observer")
        self.voter = not self.observer and sid in leader.voting
        if info is None:
            self.refuse("FOLLOWERINFO without a LearnerInfo")
            return
        if info.configVersion > 0:
            self.refuse(f"its config version {info.configVersion:#x} is above ours (0)")
            return
        if sid == leader.sid:
            self.refuse("it claims the leader's own server id")
            return
        if spec is None:
            peer = self.transport.getPeer() if self.transport is not None else None
            log.info("learner sid {sid} at {host}:{port} is not in our configuration", sid=sid,
                     host=getattr(peer, "host", "?"), port=getattr(peer, "port", "?"))
        for other in list(leader.handlers):
            if other is not self and other.sid == sid:
                other.refuse("the same server connected again")
        self.state = "epoch"
        leader.learner_info(self, epoch_of(pkt.zxid))


class LeaderFactory(Factory):
    """The quorum port while leading."""

    noisy = False

    def __init__(self, leader: Leader) -> None:
        self.leader = leader

    def buildProtocol(self, addr: Any) -> LearnerHandler:
        return LearnerHandler(self.leader)
