"""Fast Leader Election over the election port, as ZooKeeper 3.8 runs it (quorum.md section 1).

Two layers, both on the reactor (no threads):

- the connections (QuorumCnxManager): a listener on this member's election address and client
  connections to peers. The connecting side sends an `InitialMessage`; only the connection opened
  by the higher sid survives (the lower-sid caller closes after its InitialMessage, and a
  higher-sid acceptor closes a lower-sid caller's connection and calls back the address the
  InitialMessage named). Then both ways carry int-length frames (1..524288 bytes) of one
  `Notification` each. Each peer has a send queue of one (the last message wins) and a new
  connection re-sends the last message. Bad input closes the connection with one log line naming
  the peer; nothing a peer sends raises.
- the election (FastLeaderElection.lookForLeader and its WorkerReceiver), event-driven: a
  notification is handled when it arrives, and ZooKeeper's blocking polls are timers on the given
  reactor (the silence timer: 200 ms doubling up to 60 s; finalizeWait: 200 ms), so that tests
  can drive everything with `twisted.internet.task.Clock`.

Notifications to this member itself go through ``reactor.callLater(0, ...)``, as ZooKeeper's
loopback goes through its receive queue.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConnector, IDelayedCall, IListeningPort
from twisted.internet.protocol import ClientFactory, Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from core.connection import no_delay
from core.config import Config, ServerSpec
from core.jute import JuteError
from plugins.consensus_zab.common import bracketed, config_text
from plugins.consensus_zab.packets import (
    MAX_ELECTION_FRAME, PROTOCOL_VERSION_V1, InitialMessage, Notification, ServerState,
)

__all__ = [
    "CONNECT_TIMEOUT", "FINALIZE_WAIT", "MAX_NOTIFICATION_INTERVAL", "FastLeaderElection", "Vote",
    "beats", "config_text", "election_address",
]

log = Logger()

FINALIZE_WAIT = 0.2  # seconds (FastLeaderElection.finalizeWait, 200 ms)
MAX_NOTIFICATION_INTERVAL = 60.0  # seconds (the silence timer's cap)
CONNECT_TIMEOUT = 5  # seconds (QuorumCnxManager's cnxTO)
PROTOCOL_VERSION_V2 = -65535  # multiAddress.enabled: addr may hold several host:port joined by '|'
MIN_LONG = -(1 << 63)  # Long.MIN_VALUE: what a non-voter proposes (getInitId and friends)
BACKLOG_LIMIT = 1000  # notifications kept while LOOKING before look() is called
_FRAME_LENGTH = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class Vote:
    """A vote for a leader: who, its last zxid, the election round it won, and its epoch."""

    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int


def beats(new: Vote, current: Vote) -> bool:
    """ZooKeeper's totalOrderPredicate for two voting members: `new` wins on a higher peer epoch,
    then a higher zxid, then a higher sid (the election rounds do not count)."""
    return (new.peer_epoch, new.zxid, new.leader) > (current.peer_epoch, current.zxid, current.leader)


def election_address(spec: ServerSpec) -> str:
    """The ``host:port`` an InitialMessage carries for `spec` (NetUtils.formatInetAddr)."""
    return f"{bracketed(spec.host)}:{spec.election_port}"




def _parse_address(text: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` -> (host, port); None when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif ":" in host:
        return None
    return host, int(port)


@dataclass(frozen=True, slots=True)
class _Ballot:
    """A vote as recorded in recvset/outofelection, with the sender's state and message version
    (ZooKeeper's Vote, whose equality depends on both)."""

    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: ServerState = ServerState.LOOKING
    version: int = 0

    def same(self, other: _Ballot) -> bool:
        """Vote.equals: everything when either side is LOOKING; else the leader and peer epoch,
        or only the leader when exactly one side has version 0."""
        if ServerState.LOOKING in (self.state, other.state):
            return (self.leader, self.zxid, self.election_epoch, self.peer_epoch) == \
                (other.leader, other.zxid, other.election_epoch, other.peer_epoch)
        if (self.version > 0) != (other.version > 0):
            return self.leader == other.leader
        return self.leader == other.leader and self.peer_epoch == other.peer_epoch


class ElectionProtocol(Protocol):
    """One election connection, accepted (`peer_sid` learned from the InitialMessage) or opened
    by us to `peer_sid`."""

    def __init__(self, election: FastLeaderElection, outgoing_to: int | None = None) -> None:
        self.election = election
        self.outgoing = outgoing_to is not None
        self.peer_sid: int | None = outgoing_to
        self.registered = False  # the pair's surviving connection
        self.closed = False
        self._buffer = bytearray()
        self._handshake_timer: IDelayedCall | None = None
        self._bad_logged = False

    # -- Twisted callbacks -----------------------------------------------------------------

    def connectionMade(self) -> None:
        no_delay(self.transport)
        if self.outgoing:
            self.election._outgoing_made(self)
        else:
            self._handshake_timer = self.election.reactor.callLater(
                self.election.handshake_timeout, self._handshake_expired)

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        self._buffer += data
        if self.peer_sid is None and not self._read_initial_message():
            return
        while not self.closed and len(self._buffer) >= 4:
            length = _FRAME_LENGTH.unpack_from(self._buffer, 0)[0]
            if not 0 < length <= MAX_ELECTION_FRAME:
                self.bad(f"frame length {length} outside 1..{MAX_ELECTION_FRAME}")
                return
            if len(self._buffer) < 4 + length:
                return
            body = bytes(self._buffer[4:4 + length])
            del self._buffer[:4 + length]
            if self.registered:
                self.election._frame_received(self, body)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        self._cancel_handshake_timer()
        self.election._connection_lost(self)

    # -- helpers ------------------------------------------------------------------------------

    def _read_initial_message(self) -> bool:
        """Parse the caller's InitialMessage; True once done (the bytes after it are frames)."""
        buf = bytes(self._buffer)
        v2 = len(buf) >= 8 and struct.unpack_from(">q", buf, 0)[0] == PROTOCOL_VERSION_V2
        try:
            msg, used = InitialMessage.decode(struct.pack(">q", PROTOCOL_VERSION_V1) + buf[8:] if v2 else buf)
        except JuteError as e:
            self.bad(f"bad InitialMessage: {e}")
            return False
        if msg is None:
            return False
        del self._buffer[:used]
        self._cancel_handshake_timer()
        address = msg.address.split("|")[0] if v2 else msg.address
        self.peer_sid = msg.sid
        self.election._incoming_identified(self, msg.sid, address if msg.protocol_version < 0 else None)
        return not self.closed

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        self.bad("no InitialMessage in time")

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None

    def describe(self) -> str:
        """The peer for log lines: its sid when known, and its address."""
        peer = self.transport.getPeer() if self.transport is not None else None
        where = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        return f"sid {self.peer_sid} at {where}" if self.peer_sid is not None else where

    def bad(self, what: str) -> None:
        """Close because of what the peer sent; one log line per connection."""
        if not self._bad_logged:
            self._bad_logged = True
            log.warn("election peer {peer}: {what}; connection closed", peer=self.describe(), what=what)
        self.close()

    def bad_message(self, what: str) -> None:
        """Drop one undecodable notification (ZooKeeper keeps the connection); logged once."""
        if not self._bad_logged:
            self._bad_logged = True
            log.warn("election peer {peer}: {what}; message dropped", peer=self.describe(), what=what)

    def send_frame(self, body: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(_FRAME_LENGTH.pack(len(body)) + body)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._cancel_handshake_timer()
            if self.transport is not None:
                self.transport.loseConnection()


class _ListenerFactory(Factory):
    """Accepted election connections."""

    def __init__(self, election: FastLeaderElection) -> None:
        self.election = election

    def buildProtocol(self, addr: Any) -> Protocol | None:
        if self.election.stopped:
            return None
        return ElectionProtocol(self.election)


class _ConnectFactory(ClientFactory):
    """One connection attempt to peer `sid`."""

    noisy = False

    def __init__(self, election: FastLeaderElection, sid: int) -> None:
        self.election = election
        self.sid = sid

    def buildProtocol(self, addr: Any) -> Protocol:
        return ElectionProtocol(self.election, self.sid)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.election._connect_failed(self.sid, connector, reason)


class FastLeaderElection:
    """ZooKeeper 3.8's Fast Leader Election for member `my_sid` of `config.servers`.

    Voters are the participants of ``config.servers``; observers (role ``observer``) take part
    but their votes are not counted and nobody votes for them. `start` listens, `look` runs one
    election, `announce` tells what to answer LOOKING peers afterwards, `stop` ends everything.
    """

    def __init__(self, config: Config, reactor: Any, my_sid: int) -> None:
        """`reactor` provides IReactorTCP and IReactorTime (a Clock-based fake in unit tests)."""
        if my_sid not in config.servers:
            raise ValueError(f"server id {my_sid} has no server.{my_sid} line")
        self.config = config
        self.reactor = reactor
        self.my_sid = my_sid
        self.servers: Mapping[int, ServerSpec] = config.servers
        self.voters: frozenset[int] = frozenset(
            sid for sid, s in config.servers.items() if s.role == "participant")
        self.is_voter = my_sid in self.voters
        self.config_bytes = config_text(config.servers)
        self.min_interval = _interval(config, "fastleader.minNotificationInterval", FINALIZE_WAIT)
        self.max_interval = _interval(config, "fastleader.maxNotificationInterval",
                                      MAX_NOTIFICATION_INTERVAL)
        # a caller must send its InitialMessage within tickTime x syncLimit (ZooKeeper's socket
        # timeout on election connections until the handshake is read)
        limit = config.sync_limit or config.init_limit or 5
        self.handshake_timeout = config.tick_time * limit / 1000.0
        self.stopped = False
        # connections
        self._listener: IListeningPort | None = None
        self._connections: dict[int, ElectionProtocol] = {}
        self._connecting: dict[int, IConnector] = {}
        self._pending: dict[int, bytes] = {}  # the send queue of one, per peer
        self._last_sent: dict[int, bytes] = {}
        # election state
        self._clock = 0
        self._state = ServerState.LOOKING
        self._current: Vote | None = None  # what we answer with when not LOOKING
        self._init = _Ballot(MIN_LONG, MIN_LONG, 0, MIN_LONG)
        self._proposal = Vote(MIN_LONG, MIN_LONG, 0, MIN_LONG)
        self._electing: Deferred[Vote] | None = None
        self._recvset: dict[int, _Ballot] = {}
        self._outofelection: dict[int, _Ballot] = {}
        self._backlog: deque[tuple[int, Notification]] = deque(maxlen=BACKLOG_LIMIT)
        self._not_timeout = self.min_interval
        self._poll_timer: IDelayedCall | None = None
        self._finalize_timer: IDelayedCall | None = None
        #: called with (sid, notification) for every notification a peer sends (tests, debugging)
        self.on_notification: Callable[[int, Notification], None] | None = None

    # -- the interface ---------------------------------------------------------------------

    @property
    def logical_clock(self) -> int:
        """The election round (in memory: a restarted member starts again at round 1)."""
        return self._clock

    @property
    def state(self) -> ServerState:
        """LOOKING until an election decides, then what `announce` last said."""
        return self._state

    @property
    def current_vote(self) -> Vote | None:
        """The vote answered to LOOKING peers when not LOOKING (None before any decision)."""
        return self._current

    def start(self) -> None:
        """Listen on this member's election address (its server.N line's host:electionPort, or
        every address with ``quorumListenOnAllIPs=true``). Peers are called when there is
        something to send to them."""
        spec = self.servers[self.my_sid]
        interface = spec.host
        if self.config.raw.get("quorumListenOnAllIPs", "").strip().lower() == "true":
            interface = "::" if ":" in spec.host else "0.0.0.0"
        self.stopped = False
        self._listener = self.reactor.listenTCP(spec.election_port, _ListenerFactory(self),
                                                interface=interface)

    def stop(self) -> None:
        """Close the listener and every connection, cancel the timers; a pending `look`
        fails with CancelledError."""
        self.stopped = True
        if self._electing is not None:
            self._electing.cancel()
        self._cancel_timers()
        if self._listener is not None:
            self._listener.stopListening()
            self._listener = None
        for connector in list(self._connecting.values()):
            connector.stopConnecting()
        self._connecting.clear()
        for proto in list(self._connections.values()):
            proto.close()
        self._connections.clear()
        self._pending.clear()
        self._backlog.clear()

    def look(self, last_zxid: int, current_epoch: int) -> Deferred[Vote]:
        """Run one election (state LOOKING) with this member's last logged zxid and current
        epoch; fires with the winning Vote. This member then is LEADING when the leader is
        itself, else FOLLOWING (OBSERVING for an observer), and answers LOOKING peers with that
        until `announce` says otherwise."""
        if self._electing is not None:
            raise RuntimeError("an election is already running")
        if self.stopped:
            raise RuntimeError("the election is stopped")
        d: Deferred[Vote] = Deferred(self._cancel_look)
        self._electing = d
        self._state = ServerState.LOOKING
        self._recvset = {}
        self._outofelection = {}
        if self.is_voter:
            self._init = _Ballot(self.my_sid, last_zxid, 0, current_epoch)
        else:
            self._init = _Ballot(MIN_LONG, MIN_LONG, 0, MIN_LONG)
        self._clock += 1
        self._proposal = Vote(self._init.leader, self._init.zxid, self._clock, self._init.peer_epoch)
        log.info("election round {round}: sid {sid} proposes itself with zxid {zxid:#x}, epoch {epoch}",
                 round=self._clock, sid=self.my_sid, zxid=last_zxid, epoch=current_epoch)
        self._not_timeout = self.min_interval
        self._send_notifications()
        self._restart_poll_timer()
        backlog = list(self._backlog)
        self._backlog.clear()
        for sid, n in backlog:
            if self._electing is not d:
                break
            self._process(sid, n)
        return d

    def announce(self, state: ServerState, vote: Vote) -> None:
        """After a decision: answer LOOKING peers with `state` (FOLLOWING, LEADING or OBSERVING)
        and `vote` (quorum.md 1.4: the elected sid, the zxid that won, that election's round,
        and the new epoch once the leader has established it)."""
        if self._electing is not None:
            raise RuntimeError("announce during an election")
        if state == ServerState.LOOKING:
            raise ValueError("LOOKING is entered by look()")
        self._state = ServerState(state)
        self._current = vote

    # -- sending ---------------------------------------------------------------------------

    def _notification(self, state: ServerState, vote: Vote, election_epoch: int) -> Notification:
        return Notification(int(state), vote.leader, vote.zxid, election_epoch, vote.peer_epoch,
                            config=self.config_bytes)

    def _send_notifications(self) -> None:
        """Our LOOKING proposal to every voter, ourselves included."""
        n = self._notification(ServerState.LOOKING, self._proposal, self._clock)
        for sid in sorted(self.voters):
            self._send(sid, n)

    def _send(self, sid: int, n: Notification) -> None:
        if self.stopped:
            return
        if sid == self.my_sid:
            self.reactor.callLater(0, self._deliver, sid, n)
            return
        body = n.encode()
        proto = self._connections.get(sid)
        if proto is not None and not proto.closed:
            proto.send_frame(body)
            self._last_sent[sid] = body
        else:
            self._pending[sid] = body
            self._connect(sid)

    def _have_delivered(self) -> bool:
        """QuorumCnxManager.haveDelivered: some peer's send queue is empty."""
        peers = [sid for sid in self.voters if sid != self.my_sid]
        return not peers or any(sid not in self._pending for sid in peers)

    def _connect_all(self) -> None:
        for sid in sorted(self.voters):
            if sid != self.my_sid:
                self._connect(sid)

    # -- connections -----------------------------------------------------------------------

    def _connect(self, sid: int, address: tuple[str, int] | None = None) -> None:
        """Call `sid` (at `address`, else its configured election address) unless connected or
        already calling."""
        if self.stopped or sid == self.my_sid or sid in self._connecting:
            return
        proto = self._connections.get(sid)
        if proto is not None and not proto.closed:
            return
        if address is None:
            spec = self.servers.get(sid)
            if spec is None:
                return
            address = (spec.host, spec.election_port)
        log.debug("election: calling sid {sid} at {host}:{port}", sid=sid, host=address[0], port=address[1])
        self._connecting[sid] = self.reactor.connectTCP(address[0], address[1], _ConnectFactory(self, sid),
                                                        timeout=CONNECT_TIMEOUT)

    def _connect_failed(self, sid: int, connector: IConnector, reason: Failure) -> None:
        if self._connecting.get(sid) is connector:
            del self._connecting[sid]
        log.debug("election: cannot reach sid {sid}: {reason}", sid=sid, reason=reason.getErrorMessage())

    def _outgoing_made(self, proto: ElectionProtocol) -> None:
        """Our call to `proto.peer_sid` connected: send the InitialMessage; keep the connection
        only when the peer's sid is lower than ours."""
        sid = proto.peer_sid
        assert sid is not None and proto.transport is not None
        self._connecting.pop(sid, None)
        me = self.servers[self.my_sid]
        proto.transport.write(InitialMessage(self.my_sid, election_address(me)).encode())
        if sid > self.my_sid:
            log.debug("election: sid {sid} is higher; dropping our connection", sid=sid)
            proto.close()
            return
        self._register(sid, proto)

    def _incoming_identified(self, proto: ElectionProtocol, sid: int, address: str | None) -> None:
        """An accepted connection said who it is: keep it if the caller's sid is higher, else
        close it and call back (the InitialMessage's address, else the configured one)."""
        if sid == self.my_sid:
            log.warn("election connection from {peer} claims our own server id {sid}: configuration "
                     "error; closing", peer=proto.describe(), sid=sid)
            proto.close()
            return
        if sid < self.my_sid:
            target: tuple[str, int] | None = None
            if address:
                target = _parse_address(address)
                if target is None:
                    proto.bad(f"bad election address {address!r} in InitialMessage")
                    return
            proto.close()
            old = self._connections.pop(sid, None)
            if old is not None:
                old.close()
            self._connect(sid, target)
            return
        self._register(sid, proto)

    def _register(self, sid: int, proto: ElectionProtocol) -> None:
        """`proto` becomes the connection to `sid` (replacing an older one), and carries the
        queued message, else the last one sent."""
        old = self._connections.get(sid)
        if old is not None and old is not proto:
            old.registered = False
            old.close()
        proto.registered = True
        self._connections[sid] = proto
        body = self._pending.pop(sid, None) or self._last_sent.get(sid)
        if body is not None:
            proto.send_frame(body)
            self._last_sent[sid] = body

    def _connection_lost(self, proto: ElectionProtocol) -> None:
        sid = proto.peer_sid
        if sid is not None and self._connections.get(sid) is proto:
            del self._connections[sid]

    def _frame_received(self, proto: ElectionProtocol, body: bytes) -> None:
        try:
            n = Notification.decode(body)
        except JuteError as e:
            proto.bad_message(f"undecodable notification ({e})")
            return
        assert proto.peer_sid is not None
        if self.on_notification is not None:
            self.on_notification(proto.peer_sid, n)
        self._deliver(proto.peer_sid, n)

    # -- receiving (WorkerReceiver) -----------------------------------------------------------

    def _deliver(self, sid: int, n: Notification) -> None:
        """A notification from `sid`: answer it where ZooKeeper's receiver does, and hand it to
        the running election (or keep it for the next look() while LOOKING)."""
        if self.stopped:
            return
        if sid not in self.voters:
            # a non-voter (observer) is answered at once with our current vote
            if self._state == ServerState.LOOKING or self._current is None:
                vote, state = self._proposal, ServerState.LOOKING
            else:
                vote, state = self._current, self._state
            self._send(sid, self._notification(state, vote, self._clock))
            return
        if self._state == ServerState.LOOKING:
            if n.state == ServerState.LOOKING and n.election_epoch < self._clock:
                self._send(sid, self._notification(ServerState.LOOKING, self._proposal, self._clock))
            if self._electing is not None:
                self._process(sid, n)
            else:
                self._backlog.append((sid, n))
        elif n.state == ServerState.LOOKING and self._current is not None:
            vote = self._current
            self._send(sid, self._notification(self._state, vote, vote.election_epoch))

    # -- the election (lookForLeader) ----------------------------------------------------------

    def _total_order(self, leader: int, zxid: int, peer_epoch: int, current: Vote) -> bool:
        """totalOrderPredicate: a non-voter never wins."""
        if leader not in self.voters:
            return False
        return beats(Vote(leader, zxid, 0, peer_epoch), current)

    def _process(self, sid: int, n: Notification) -> None:
        """One notification for the running election."""
        if self._finalize_timer is not None:
            # finalizeWait: only a better vote reopens the election; others are consumed
            if not self._total_order(n.leader, n.zxid, n.peer_epoch, self._proposal):
                self._finalize_timer.reset(FINALIZE_WAIT)
                return
            self._finalize_timer.cancel()
            self._finalize_timer = None
        if sid not in self.voters or n.leader not in self.voters:
            log.debug("election: ignoring notification from {sid} for {leader} (not voters)",
                      sid=sid, leader=n.leader)
        elif n.state == ServerState.LOOKING:
            self._process_looking(sid, n)
        elif n.state in (ServerState.FOLLOWING, ServerState.LEADING):
            self._process_established(sid, n)
        # OBSERVING notifications are ignored
        if self._electing is not None and self._finalize_timer is None:
            self._restart_poll_timer()

    def _process_looking(self, sid: int, n: Notification) -> None:
        if self._init.zxid == -1 or n.zxid == -1:
            log.debug("election: ignoring LOOKING notification from {sid} (zxid -1)", sid=sid)
            return
        if n.election_epoch > self._clock:
            self._clock = n.election_epoch
            self._recvset.clear()
            init = Vote(self._init.leader, self._init.zxid, 0, self._init.peer_epoch)
            if self._total_order(n.leader, n.zxid, n.peer_epoch, init):
                self._proposal = Vote(n.leader, n.zxid, self._clock, n.peer_epoch)
            else:
                self._proposal = Vote(init.leader, init.zxid, self._clock, init.peer_epoch)
            self._send_notifications()
        elif n.election_epoch < self._clock:
            return
        elif self._total_order(n.leader, n.zxid, n.peer_epoch, self._proposal):
            self._proposal = Vote(n.leader, n.zxid, self._clock, n.peer_epoch)
            self._send_notifications()
        self._recvset[sid] = _Ballot(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        p = self._proposal
        if self._has_quorum(self._recvset, _Ballot(p.leader, p.zxid, self._clock, p.peer_epoch)):
            self._cancel_poll_timer()
            self._finalize_timer = self.reactor.callLater(FINALIZE_WAIT, self._finalized)

    def _process_established(self, sid: int, n: Notification) -> None:
        state = ServerState(n.state)
        target = _Ballot(n.leader, n.zxid, n.election_epoch, n.peer_epoch, state, n.version)
        end = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
        if n.election_epoch == self._clock:
            self._recvset[sid] = _Ballot(n.leader, n.zxid, n.election_epoch, n.peer_epoch, state)
            if self._has_quorum(self._recvset, target) and self._check_leader(self._recvset, n.leader,
                                                                              n.election_epoch):
                self._decide(end)
                return
        self._outofelection[sid] = target
        if self._has_quorum(self._outofelection, target) and self._check_leader(
                self._outofelection, n.leader, n.election_epoch):
            self._clock = n.election_epoch
            self._decide(end)

    def _has_quorum(self, votes: dict[int, _Ballot], vote: _Ballot) -> bool:
        """A majority of the voters recorded a vote equal to `vote` (QuorumMaj)."""
        acks = sum(1 for sid, v in votes.items() if sid in self.voters and vote.same(v))
        return acks > len(self.voters) // 2

    def _check_leader(self, votes: dict[int, _Ballot], leader: int, election_epoch: int) -> bool:
        """checkLeader: another leader must itself have said LEADING; ourselves, in this round."""
        if leader != self.my_sid:
            v = votes.get(leader)
            return v is not None and v.state == ServerState.LEADING
        return self._clock == election_epoch

    def _finalized(self) -> None:
        """finalizeWait passed with no better vote: the proposal wins."""
        self._finalize_timer = None
        p = self._proposal
        self._decide(Vote(p.leader, p.zxid, self._clock, p.peer_epoch))

    def _decide(self, vote: Vote) -> None:
        d = self._electing
        assert d is not None
        self._electing = None
        self._cancel_timers()
        if vote.leader == self.my_sid:
            self._state = ServerState.LEADING
        else:
            self._state = ServerState.FOLLOWING if self.is_voter else ServerState.OBSERVING
        self._current = vote
        self._recvset = {}
        self._outofelection = {}
        log.info("election round {round} decided: sid {sid} is {state}, leader {leader}",
                 round=self._clock, sid=self.my_sid, state=self._state.name, leader=vote.leader)
        d.callback(vote)

    # -- timers --------------------------------------------------------------------------------

    def _restart_poll_timer(self) -> None:
        self._cancel_poll_timer()
        self._poll_timer = self.reactor.callLater(self._not_timeout, self._silence)

    def _silence(self) -> None:
        """No notification for a while: re-send (or reconnect), and wait twice as long."""
        self._poll_timer = None
        if self._electing is None:
            return
        if self._have_delivered():
            self._send_notifications()
        else:
            self._connect_all()
        self._not_timeout = min(self._not_timeout * 2, self.max_interval)
        self._restart_poll_timer()

    def _cancel_poll_timer(self) -> None:
        if self._poll_timer is not None and self._poll_timer.active():
            self._poll_timer.cancel()
        self._poll_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_poll_timer()
        if self._finalize_timer is not None and self._finalize_timer.active():
            self._finalize_timer.cancel()
        self._finalize_timer = None

    def _cancel_look(self, d: Deferred[Vote]) -> None:
        """Deferred canceller (and stop()): the election ends undecided, still LOOKING."""
        if self._electing is d:
            self._electing = None
            self._cancel_timers()


def _interval(config: Config, key: str, default: float) -> float:
    """A ``fastleader.*NotificationInterval`` zoo.cfg key (milliseconds) in seconds."""
    value = config.raw.get(key)
    if value is None:
        return default
    try:
        ms = int(value.strip())
    except ValueError:
        raise config.error(key, f"expected milliseconds, got {value!r}") from None
    if ms <= 0:
        raise config.error(key, f"expected a positive number of milliseconds, got {value!r}")
    return ms / 1000.0

