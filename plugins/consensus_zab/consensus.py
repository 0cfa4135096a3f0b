"""ZAB consensus: the role state machine of one ensemble member (QuorumPeer.run).

LOOKING -> (Fast Leader Election) -> LEADING, FOLLOWING or OBSERVING -> back to LOOKING when
the role fails (the leader loses its quorum, the learner loses its leader). Only a leader that
has established its epoch, or a learner that received UPTODATE, serves clients; on leaving a
serving role every client connection is closed, as ZooKeeper shuts its server down.

What survives role changes lives here: the epochs (acceptedEpoch, currentEpoch, persisted in
the store's metadata before they are acted on), the committed log the leader's DIFFs are made
from, and the group-commit log writer. Before every election the tree is brought up to the
last logged txn (ZooKeeper replays its whole log on load, so it votes with, and a new leader
commits, everything it logged); a TRUNC from the next leader undoes what it must.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from core.config import Config
from core.interfaces import Request, Store, StoreError
from core.txn import decode_txn
from plugins.consensus_zab.common import (
    ACCEPTED_EPOCH, COMMIT_LOG_COUNT, CURRENT_EPOCH, CommittedLog, GroupLog, epoch_of, voters,
)
from plugins.consensus_zab.packets import ServerState

log = Logger()

RETRY_LOOK_SECONDS = 1.0


def _default_election(config: Config, reactor: Any, my_sid: int) -> Any:
    from plugins.consensus_zab.election import FastLeaderElection
    return FastLeaderElection(config, reactor, my_sid)


class ZabConsensus:
    """core.interfaces.Consensus for a member of a ZAB ensemble (see the module doc)."""

    def __init__(self, config: Config, store: Store, server: Any,
                 election_factory: Callable[[Config, Any, int], Any] | None = None) -> None:
        self.config = config
        self.store = store
        self.server = server
        self.reactor = server.reactor
        self.my_sid = config.server_id
        self.observer = config.peer_type == "observer"
        self.voting = voters(config.servers)
        self.role = "looking"
        self.zab_state = "election"
        self.leader_id: int | None = None
        self.accepted_epoch = 0
        self.current_epoch = 0
        self.committed = CommittedLog(int(config.raw.get("commitLogCount", COMMIT_LOG_COUNT)))
        self.log = GroupLog(server.reactor, server.storage, store, self._store_failed, self._flush_quorum)
        self.election_factory = election_factory or _default_election
        self.election: Any = None
        self.active: Any = None  # the Leader or Learner of the current role
        self.vote: Any = None
        self.running = False
        self.broken = False
        self.looking = False

    # -- Consensus --------------------------------------------------------------------------

    @inlineCallbacks
    def start(self) -> Any:
        """Load the epochs and the committed log, start the election port, and look for a
        leader (in the background: the client port opens while LOOKING, not serving)."""
        yield self._load_epochs()
        yield self._load_committed_log()
        self.election = self.election_factory(self.config, self.reactor, self.my_sid)
        self.election.start()
        self.running = True
        self.reactor.callLater(0, self.look)

    def stop(self) -> None:
        self.running = False
        active, self.active = self.active, None
        if active is not None:
            active.stop()
        self.log.reset()
        if self.election is not None:
            self.election.stop()
        self.role = "looking"

    def is_serving(self) -> bool:
        return self.role in ("leader", "follower", "observer") and not self.broken

    def submit(self, request: Request) -> None:
        active = self.active
        if active is not None and active.serving:
            active.submit(request)
            return
        # a write raced with leaving the serving state: the client gets no answer here and
        # reconnects elsewhere (its connection is closed like every other one)
        conn = self.server.connections.get(request.session_id) or self.server.handshakes.get(request.session_id)
        if conn is not None:
            conn.close()

    def revalidate(self, session_id: int, timeout: int) -> Deferred[bool]:
        """Whether a reconnecting client's session is still valid: a learner asks its leader
        (REVALIDATE); the leader's own session table is the answer on the leader."""
        active = self.active
        if active is not None and active.serving:
            return active.revalidate(session_id, timeout)
        return succeed(False)

    @property
    def observers(self) -> list[int]:
        """The sids of the observers synced with this leader (for the AdminServer)."""
        return list(getattr(self.active, "observers", None) or [])

    # -- what the roles use -------------------------------------------------------------------

    def last_zxid(self) -> int:
        """The last logged zxid (lastLoggedZxid): the vote's and ACKEPOCH's zxid."""
        return max(self.server.tree.last_zxid, self.log.last_durable)

    def set_accepted_epoch(self, epoch: int) -> Deferred[None]:
        d: Deferred[None] = self.server.storage.run(self.store.put_meta, ACCEPTED_EPOCH, str(epoch).encode())

        def done(_: Any) -> None:
            self.accepted_epoch = epoch
        return d.addCallback(done)

    def set_current_epoch(self, epoch: int) -> Deferred[None]:
        d: Deferred[None] = self.server.storage.run(self.store.put_meta, CURRENT_EPOCH, str(epoch).encode())

        def done(_: Any) -> None:
            self.current_epoch = epoch
        return d.addCallback(done)

    def serving_as(self, role_obj: Any, role: str, epoch: int) -> None:
        """A role starts serving clients (leader established, or learner UPTODATE)."""
        if role_obj is not self.active:
            return
        self.role = role
        self.zab_state = "broadcast"
        log.info("serving as {role} of epoch {epoch} (leader {leader}), last zxid 0x{zxid:x}",
                 role=role, epoch=epoch, leader=self.leader_id, zxid=self.server.tree.last_zxid)
        if self.vote is not None and self.election is not None:
            state = {"leader": ServerState.LEADING, "follower": ServerState.FOLLOWING}.get(role, ServerState.OBSERVING)
            v = self.vote
            try:
                self.election.announce(state, type(v)(v.leader, v.zxid, v.election_epoch, epoch))
            except RuntimeError:
                pass

    def role_ended(self, role_obj: Any, reason: str) -> None:
        """The leader or learner `role_obj` gave up (`reason`): stop serving, look again."""
        if role_obj is not self.active:
            return
        log.info("leaving {role} role (leader {leader}): {reason}", role=role_obj.name, leader=self.leader_id,
                 reason=reason)
        self.active = None
        role_obj.stop()
        self._stop_serving()
        if self.running and not self.broken:
            self.reactor.callLater(0, self.look)

    # -- the state machine ------------------------------------------------------------------

    @inlineCallbacks
    def look(self) -> Any:
        """LOOKING: catch the tree up to the log, run one election, take the role it gives."""
        if not self.running or self.looking or self.active is not None:
            return
        self.looking = True
        self.role = "looking"
        self.zab_state = "election"
        self.leader_id = None
        read_only = None
        if getattr(self.config, "readonly_mode", False) and not self.observer:
            # QuorumPeer: while LOOKING, a ReadOnlyZooKeeperServer starts after max(2 s, tickTime)
            read_only = self.reactor.callLater(max(2.0, self.config.tick_time / 1000.0), self._read_only)
        try:
            yield self._catch_up()
            vote = yield self.election.look(self.last_zxid(), self.current_epoch)
        except Exception as e:  # noqa: BLE001 - an election that failed is retried
            self.looking = False
            self._leave_read_only(read_only)
            if self.running and not self.broken:
                log.warn("election failed ({err}); retrying", err=str(e) or type(e).__name__)
                self.reactor.callLater(RETRY_LOOK_SECONDS, self.look)
            return
        self.looking = False
        self._leave_read_only(read_only)
        if not self.running:
            return
        self.vote = vote
        self.leader_id = vote.leader
        self.zab_state = "discovery"
        try:
            if vote.leader == self.my_sid and not self.observer:
                from plugins.consensus_zab.leader import Leader
                log.info("elected leader of round {round} with zxid 0x{zxid:x}", round=vote.election_epoch,
                         zxid=vote.zxid)
                self.active = Leader(self)
            else:
                from plugins.consensus_zab.learner import Learner
                log.info("following leader {leader} (round {round})", leader=vote.leader, round=vote.election_epoch)
                self.active = Learner(self, vote.leader)
            self.active.start()
        except Exception:  # a bug: logged with its traceback; this member looks again
            log.failure("starting the role for leader {leader}", leader=vote.leader)
            active, self.active = self.active, None
            if active is not None:
                active.stop()
            self.reactor.callLater(RETRY_LOOK_SECONDS, self.look)

    def _read_only(self) -> None:
        """readonlymode.enabled: still LOOKING, serve reads to read-only clients."""
        if self.running and self.looking and self.active is None and not self.broken:
            log.info("no quorum yet: serving read-only clients")
            self.role = "read-only"

    def _leave_read_only(self, timer: Any) -> None:
        """The election is over: the read-only server shuts down (its clients reconnect)."""
        if timer is not None and timer.active():
            timer.cancel()
        if self.role == "read-only":
            log.info("leaving read-only mode")
            self._stop_serving()

    @inlineCallbacks
    def _catch_up(self) -> Any:
        """Apply every logged txn above the tree's last zxid (no clients are connected)."""
        server = self.server
        txns = yield server.storage.run(lambda: list(self.store.read_from(server.tree.last_zxid)))
        for zxid, payload in txns:
            if zxid > server.tree.last_zxid:
                server.replay(decode_txn(payload))
                self.committed.add(zxid, payload)
        self.log.last_durable = max(self.log.last_durable, server.tree.last_zxid)

    def _stop_serving(self) -> None:
        self.role = "looking"
        self.zab_state = "election"
        self.log.reset()
        server = self.server
        for conn in list(server.all_connections):
            conn.close()
        server.waiting.clear()
        server.handshakes.clear()

    def _flush_quorum(self) -> None:
        """Send the quorum packets the current role has queued this turn (GroupLog, before a
        sync on the reactor)."""
        if self.active is not None:
            self.active.flush_quorum()

    def _store_failed(self, failure: Failure) -> None:
        """The log cannot be written: nothing more is acknowledged; this member stops taking
        part, as ZooKeeper stops when its log cannot be written."""
        log.critical("cannot write the transaction log, leaving the ensemble: {err}", err=failure.getErrorMessage())
        self.broken = True
        active, self.active = self.active, None
        if active is not None:
            active.stop()
        self._stop_serving()
        self.running = False
        if self.election is not None:
            self.election.stop()

    # -- start-up -----------------------------------------------------------------------------

    @inlineCallbacks
    def _load_epochs(self) -> Any:
        """acceptedEpoch/currentEpoch from the store; missing ones start at the last zxid's
        epoch (QuorumPeer.loadDataBase)."""
        store = self.store

        def read() -> tuple[bytes | None, bytes | None, int]:
            return store.get_meta(ACCEPTED_EPOCH), store.get_meta(CURRENT_EPOCH), store.last_zxid()

        accepted, current, last = yield self.server.storage.run(read)
        last = max(last, self.server.tree.last_zxid)
        self.log.last_durable = last
        last_epoch = epoch_of(last)
        if current is None:
            self.current_epoch = last_epoch
            yield self.set_current_epoch(last_epoch)
        else:
            self.current_epoch = int(current)
        if accepted is None:
            self.accepted_epoch = last_epoch
            yield self.set_accepted_epoch(last_epoch)
        else:
            self.accepted_epoch = int(accepted)
        if last_epoch > self.current_epoch:
            raise StoreError(f"the last zxid 0x{last:x} is of epoch {last_epoch}, above currentEpoch "
                             f"{self.current_epoch}")
        if self.accepted_epoch < self.current_epoch:
            raise StoreError(f"acceptedEpoch {self.accepted_epoch} is below currentEpoch {self.current_epoch}")

    @inlineCallbacks
    def _load_committed_log(self) -> Any:
        """The committed log as ZooKeeper builds it on load: the txns replayed after the
        newest snapshot (the last commitLogCount of them)."""
        store = self.store
        size = self.committed.entries.maxlen

        def tail() -> list[tuple[int, bytes]]:
            snapshots = store.describe().snapshot_zxids
            from collections import deque
            return list(deque(store.read_from(max(snapshots, default=0)), maxlen=size))

        for zxid, payload in (yield self.server.storage.run(tail)):
            self.committed.add(zxid, payload)
