"""Fast Leader Election (plugins/consensus_zab/election.py) against quorum.md section 1.

Most tests run whole ensembles over an in-memory network on a `Clock` (`FakeNet`): every write
arrives, in order, on the next ``clock.advance``; time moves only when a test says so, so the
timers (finalizeWait, the re-send backoff) are checked to the millisecond. The wire bytes are
compared with the captures of Apache ZooKeeper 3.8.0 in tests/fixtures/zk38. One test runs three
members over real loopback TCP.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError, ConnectionDone, ConnectionRefusedError, UserError
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure

from core.config import Config, parse
from plugins.consensus_zab import election as election_module
from plugins.consensus_zab.election import (
    FINALIZE_WAIT, FastLeaderElection, Vote, beats, config_text,
)
from plugins.consensus_zab.packets import InitialMessage, Notification, ServerState
from tests.fixtures.hexfile import read_hex
from tests.harness import free_port

LOOKING, FOLLOWING, LEADING, OBSERVING = (ServerState.LOOKING, ServerState.FOLLOWING,
                                          ServerState.LEADING, ServerState.OBSERVING)


# -- an in-memory network on a Clock --------------------------------------------------------

class FakeTransport:
    """One end of an in-memory connection: writes arrive at the other end on the next tick."""

    def __init__(self, net: FakeNet, host: IPv4Address, peer: IPv4Address) -> None:
        self.net = net
        self.host = host
        self.peer = peer
        self.protocol: Protocol | None = None
        self.other: FakeTransport | None = None
        self.written = bytearray()
        self.disconnecting = False
        self.closed = False
        self.closed_by_me = False

    def write(self, data: bytes) -> None:
        if self.disconnecting or self.closed:
            return
        self.written += data
        self.net.callLater(0, self.other._receive, bytes(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def _receive(self, data: bytes) -> None:
        if not self.closed:
            self.protocol.dataReceived(data)

    def loseConnection(self) -> None:
        if not self.disconnecting and not self.closed:
            self.disconnecting = True
            self.closed_by_me = not self.other.closed_by_me
            self.net.callLater(0, self._close)

    abortConnection = loseConnection

    def _close(self) -> None:
        for t in (self, self.other):
            if not t.closed:
                t.closed = True
                t.protocol.connectionLost(Failure(ConnectionDone()))

    def getPeer(self) -> IPv4Address:
        return self.peer

    def getHost(self) -> IPv4Address:
        return self.host


class FakeConnector:
    def __init__(self, net: FakeNet, host: str, port: int, factory: ClientFactory) -> None:
        self.net, self.host, self.port, self.factory = net, host, port, factory
        self.cancelled = False

    def stopConnecting(self) -> None:
        self.cancelled = True

    def disconnect(self) -> None:
        self.cancelled = True

    def getDestination(self) -> IPv4Address:
        return IPv4Address("TCP", self.host, self.port)


class FakePort:
    def __init__(self, net: FakeNet, key: tuple[str, int]) -> None:
        self.net, self.key = net, key

    def stopListening(self) -> None:
        self.net.listeners.pop(self.key, None)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", *self.key)


class Connection:
    """What the test can inspect about one connection."""

    def __init__(self, caller: FakeTransport, callee: FakeTransport, client: Any, server: Any) -> None:
        self.caller, self.callee, self.client, self.server = caller, callee, client, server

    @property
    def open(self) -> bool:
        return not self.caller.closed


class FakeNet(task.Clock):
    """IReactorTCP + IReactorTime in memory: listenTCP/connectTCP by (host, port)."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: dict[tuple[str, int], Factory] = {}
        self.connections: list[Connection] = []
        self.attempts: list[tuple[float, str, int]] = []
        self._next_port = 40000

    def listenTCP(self, port: int, factory: Factory, backlog: int = 50, interface: str = "") -> FakePort:
        key = (interface, port)
        if key in self.listeners:
            raise CannotListenError(interface, port, OSError("in use"))
        self.listeners[key] = factory
        return FakePort(self, key)

    def connectTCP(self, host: str, port: int, factory: ClientFactory, timeout: float = 30,
                   bindAddress: Any = None) -> FakeConnector:
        assert timeout == 5
        connector = FakeConnector(self, host, port, factory)
        self.attempts.append((self.seconds(), host, port))
        factory.startedConnecting(connector)
        self.callLater(0, self._complete, connector)
        return connector

    def _complete(self, connector: FakeConnector) -> None:
        factory = connector.factory
        if connector.cancelled:
            factory.clientConnectionFailed(connector, Failure(UserError()))
            return
        server = self.listeners.get((connector.host, connector.port))
        self._next_port += 1
        caller_addr = IPv4Address("TCP", "127.0.0.250", self._next_port)
        callee_addr = IPv4Address("TCP", connector.host, connector.port)
        server_proto = server.buildProtocol(caller_addr) if server is not None else None
        if server_proto is None:
            factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
            return
        client_proto = factory.buildProtocol(callee_addr)
        caller = FakeTransport(self, caller_addr, callee_addr)
        callee = FakeTransport(self, callee_addr, caller_addr)
        caller.other, callee.other = callee, caller
        caller.protocol, callee.protocol = client_proto, server_proto
        self.connections.append(Connection(caller, callee, factory, server))
        server_proto.makeConnection(callee)
        client_proto.makeConnection(caller)

    def run(self, seconds: float, step: float = 0.001) -> None:
        """Advance time by `seconds` in small steps (every zero-delay cascade runs each step)."""
        end = self.seconds() + seconds
        self.advance(0)
        while self.seconds() < end - 1e-9:
            self.advance(min(step, end - self.seconds()))

    def run_events(self, seconds: float) -> None:
        """Advance by `seconds`, stopping at each pending call's exact time (no drift)."""
        end = self.seconds() + seconds
        self.advance(0)
        while self.calls and self.calls[0].getTime() <= end:
            self.advance(max(0.0, self.calls[0].getTime() - self.seconds()))
        self.advance(max(0.0, end - self.seconds()))

    def run_until(self, deferreds: list[defer.Deferred], limit: float = 30.0, step: float = 0.01) -> float:
        """Advance until every deferred fired; the simulated time it took."""
        start = self.seconds()
        self.advance(0)
        while not all(d.called for d in deferreds):
            assert self.seconds() - start < limit, "election did not finish"
            self.advance(step)
        return self.seconds() - start


class Recorder(Protocol):
    """A raw peer: keeps what arrives (and when, on a FakeNet), writes what the test tells it to."""

    def __init__(self, net: FakeNet | None = None) -> None:
        self.net = net
        self.received = bytearray()
        self.times: list[float] = []
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.net is not None:
            self.times.append(self.net.seconds())

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = True

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


class RecorderFactory(ClientFactory):
    def __init__(self, net: FakeNet | None = None) -> None:
        self.net = net
        self.protocols: list[Recorder] = []
        self.failed = 0

    def buildProtocol(self, addr: Any) -> Recorder:
        p = Recorder(self.net)
        self.protocols.append(p)
        return p

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed += 1


# -- helpers ----------------------------------------------------------------------------------

def make_config(tmp_path: Path, servers: dict[int, str], extra: str = "") -> Config:
    """A parsed zoo.cfg with these server.N values (myid is the first sid; members pass their
    own sid to FastLeaderElection)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "myid").write_text(f"{min(servers)}\n")
    lines = ["tickTime=500", "initLimit=10", "syncLimit=5", f"dataDir={data}"]
    if not any(";" in value for value in servers.values()):
        lines.append("clientPort=0")
    lines += [f"server.{sid}={value}" for sid, value in servers.items()]
    return parse("\n".join(lines) + "\n" + extra)


def local_config(tmp_path: Path, n: int, observers: Iterable[int] = ()) -> Config:
    """n members on 127.0.0.<sid>:2888:3888 (observers as told)."""
    obs = set(observers)
    return make_config(tmp_path, {sid: f"127.0.0.{sid}:2888:3888" + (":observer" if sid in obs else "")
                                  for sid in range(1, n + 1)})


def frames(data: bytes) -> list[Notification]:
    """The notifications in an election stream (after any InitialMessage was cut off)."""
    out, off = [], 0
    while off + 4 <= len(data):
        (n,) = struct.unpack_from(">i", data, off)
        out.append(Notification.decode(data[off + 4:off + 4 + n]))
        off += 4 + n
    return out


def initial_message_bytes(data: bytes) -> tuple[InitialMessage, bytes]:
    msg, used = InitialMessage.decode(data)
    assert msg is not None
    return msg, data[used:]


class Ensemble:
    """Members of one config on one FakeNet."""

    def __init__(self, config: Config, net: FakeNet, sids: Iterable[int]) -> None:
        self.net = net
        self.config = config
        self.members = {sid: FastLeaderElection(config, net, sid) for sid in sids}
        for m in self.members.values():
            m.start()

    def look(self, state: dict[int, tuple[int, int]]) -> dict[int, defer.Deferred]:
        return {sid: self.members[sid].look(*state[sid]) for sid in state}


def results(ds: dict[int, defer.Deferred]) -> dict[int, Vote]:
    out: dict[int, Vote] = {}
    for sid, d in ds.items():
        d.addCallback(lambda v, sid=sid: out.__setitem__(sid, v))
    return out


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The election module's log events (warn and above are what an operator sees)."""
    events: list[dict] = []
    monkeypatch.setattr(election_module, "log", Logger(namespace="election", observer=events.append))
    return events


def warnings(events: list[dict]) -> list[dict]:
    return [e for e in events if e["log_level"].name in ("warn", "error", "critical")]


# -- vote order -------------------------------------------------------------------------------

def test_vote_order_epoch_then_zxid_then_sid() -> None:
    assert beats(Vote(1, 0, 1, 5), Vote(3, 0x500000009, 1, 4))  # epoch first
    assert beats(Vote(1, 0x400000002, 1, 4), Vote(3, 0x400000001, 1, 4))  # then zxid
    assert beats(Vote(3, 7, 1, 4), Vote(2, 7, 1, 4))  # then sid
    assert not beats(Vote(2, 7, 1, 4), Vote(2, 7, 1, 4))
    assert not beats(Vote(2, 7, 9, 4), Vote(3, 7, 1, 4))  # the round is not part of the order


def test_observer_never_wins(tmp_path: Path) -> None:
    config = local_config(tmp_path, 4, observers=[4])
    fle = FastLeaderElection(config, FakeNet(), 1)
    assert fle.voters == {1, 2, 3}
    assert not fle._total_order(4, 1 << 40, 1 << 20, Vote(1, 0, 1, 0))
    assert fle._total_order(3, 0, 0, Vote(1, 0, 1, 0))


# -- bytes against the captures ---------------------------------------------------------------

def test_config_text_is_zookeepers(tmp_path: Path) -> None:
    config = make_config(tmp_path, {1: "127.0.0.1:2888:3888", 2: "127.0.0.2:2888:3888",
                                    3: "127.0.0.13:2888:3888"})
    assert config_text(config.servers) == Notification.decode(read_hex("fle-reply-following.hex")[4:]).config
    config = make_config(tmp_path, {1: "127.0.0.1:2888:3888;127.0.0.1:2181", 2: "127.0.0.2:2888:3888",
                                    3: "[::1]:2889:3889:observer;2182"})
    assert config_text(config.servers) == (b"server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n"
                                           b"server.2=127.0.0.2:2888:3888:participant\n"
                                           b"server.3=[::1]:2889:3889:observer;0.0.0.0:2182\nversion=0")


def test_restarted_member_matches_capture_and_follows(tmp_path: Path) -> None:
    """Sid 3 restarted (zxid 0x100000019, epoch 2) calls sids 1 and 2, which answer FOLLOWING and
    LEADING (the captured frames): it sends exactly the captured bytes, and follows sid 2 via
    outofelection, taking their round."""
    config = make_config(tmp_path, {1: "127.0.0.11:2888:3888", 2: "127.0.0.12:2888:3888",
                                    3: "127.0.0.3:2888:3888"})
    net = FakeNet()
    peers = {sid: RecorderFactory() for sid in (1, 2)}
    net.listenTCP(3888, peers[1], interface="127.0.0.11")
    net.listenTCP(3888, peers[2], interface="127.0.0.12")
    fle = FastLeaderElection(config, net, 3)
    fle.start()
    d = fle.look(0x100000019, 2)
    net.advance(0)
    sent = {sid: bytes(f.protocols[0].received) for sid, f in peers.items()}
    assert sent[1] == read_hex("fle-initial-message-and-looking-notification.hex")
    assert sent[2] == sent[1]
    assert not d.called
    peers[1].protocols[0].write(read_hex("fle-reply-following.hex"))
    net.advance(0)
    assert not d.called  # one member is no quorum
    peers[2].protocols[0].write(read_hex("fle-reply-leading.hex"))
    net.advance(0)
    assert d.called and d.result == Vote(2, 0x100000019, 2, 2)
    assert fle.state == FOLLOWING and fle.logical_clock == 2


@pytest.mark.parametrize("sid,state,fixture", [(1, FOLLOWING, "fle-reply-following.hex"),
                                                (2, LEADING, "fle-reply-leading.hex")])
def test_answer_to_looking_member_matches_capture(tmp_path: Path, sid: int, state: ServerState,
                                                  fixture: str) -> None:
    """A FOLLOWING/LEADING member answers the captured LOOKING stream (fed one byte at a time)
    with exactly the captured frame."""
    config = make_config(tmp_path, {1: "127.0.0.1:2888:3888", 2: "127.0.0.2:2888:3888",
                                    3: "127.0.0.13:2888:3888"})
    net = FakeNet()
    fle = FastLeaderElection(config, net, sid)
    fle.start()
    fle.announce(state, Vote(2, 0x100000019, 2, 2))
    raw = RecorderFactory()
    net.connectTCP(f"127.0.0.{sid}", 3888, raw, timeout=5)
    net.advance(0)
    peer = raw.protocols[0]
    for b in read_hex("fle-initial-message-and-looking-notification.hex"):
        peer.write(bytes([b]))
        net.advance(0)
    assert bytes(peer.received) == read_hex(fixture)
    assert not peer.lost  # 3 > sid: the connection survives


def test_lower_sid_sends_only_initial_message(tmp_path: Path) -> None:
    config = make_config(tmp_path, {1: "127.0.0.1:2888:3888", 2: "127.0.0.2:2888:3888",
                                    3: "127.0.0.3:2888:3888"})
    net = FakeNet()
    raw = RecorderFactory()
    net.listenTCP(3888, raw, interface="127.0.0.3")
    fle = FastLeaderElection(config, net, 1)
    fle.start()
    fle.look(0, 0)
    net.advance(0)
    peer = raw.protocols[0]
    assert bytes(peer.received) == read_hex("fle-initial-message-dropped.hex")
    assert peer.lost and net.connections[-1].caller.closed_by_me


def test_python_peer_vote_matches_capture(tmp_path: Path) -> None:
    config = make_config(tmp_path, {1: "127.0.0.1:2888:3888", 2: "127.0.0.2:2888:3888",
                                    3: "127.0.0.13:2888:3888"})
    net = FakeNet()
    raw = RecorderFactory()
    net.listenTCP(3888, raw, interface="127.0.0.1")
    fle = FastLeaderElection(config, net, 3)
    fle.start()
    fle.look(0x300000007, 4)
    net.advance(0)
    msg, rest = initial_message_bytes(bytes(raw.protocols[0].received))
    assert (msg.sid, msg.address) == (3, "127.0.0.13:3888")  # the capture's peer sent its real address
    _, captured = initial_message_bytes(read_hex("fle-python-peer-to-java.hex"))
    assert rest == captured


def test_fixture_notifications_decode() -> None:
    msg, rest = initial_message_bytes(read_hex("fle-initial-message-and-looking-notification.hex"))
    assert (msg.sid, msg.address) == (3, "127.0.0.3:3888")
    assert frames(rest) == [Notification(LOOKING, 3, 0x100000019, 1, 2, 2, frames(rest)[0].config)]
    (following,) = frames(read_hex("fle-reply-following.hex"))
    (leading,) = frames(read_hex("fle-reply-leading.hex"))
    assert (following.state, following.leader, following.zxid, following.election_epoch,
            following.peer_epoch) == (FOLLOWING, 2, 0x100000019, 2, 2)
    assert (leading.state, leading.leader) == (LEADING, 2)


# -- whole elections ------------------------------------------------------------------------------

@pytest.mark.parametrize("n,state,leader", [
    (3, {1: (0, 0), 2: (0, 0), 3: (0, 0)}, 3),  # fresh: the highest sid
    (3, {1: (0x100000005, 1), 2: (0x100000004, 1), 3: (0x100000004, 1)}, 1),  # the highest zxid
    (5, {1: (0x200000001, 2), 2: (0x300000000, 3), 3: (0x200000009, 2), 4: (0x200000009, 2),
         5: (0x200000001, 2)}, 2),  # the highest epoch, whatever the zxid
    (5, {sid: (0x100000003, 1) for sid in range(1, 6)}, 5),
])
def test_all_members_elect_the_best_vote(tmp_path: Path, n: int, state: dict, leader: int) -> None:
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, n), net, range(1, n + 1))
    ds = ens.look(state)
    votes = results(ds)
    took = net.run_until(list(ds.values()))
    assert took >= FINALIZE_WAIT - 1e-9  # nobody decides before finalizeWait
    zxid, epoch = state[leader]
    assert set(votes.values()) == {Vote(leader, zxid, 1, epoch)}
    for sid, m in ens.members.items():
        assert m.state == (LEADING if sid == leader else FOLLOWING)
        assert m.logical_clock == 1
    # one connection per pair survives, opened by the higher sid
    alive = {(c.client.election.my_sid, c.server.election.my_sid) for c in net.connections if c.open}
    assert alive == {(a, b) for a in range(1, n + 1) for b in range(1, a)}


def test_connection_rule(tmp_path: Path) -> None:
    """Calls from a lower sid carry only the InitialMessage and are closed by the caller; calls
    from the higher sid carry frames and survive."""
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 3), net, [1, 2, 3])
    ds = ens.look({1: (0, 0), 2: (0, 0), 3: (0, 0)})
    net.run_until(list(ds.values()))
    lower_calls = 0
    for c in net.connections:
        caller, callee = c.client.election.my_sid, c.server.election.my_sid
        msg, rest = initial_message_bytes(bytes(c.caller.written))
        assert (msg.sid, msg.address) == (caller, f"127.0.0.{caller}:3888")
        if caller < callee:
            lower_calls += 1
            assert rest == b"" and c.caller.closed_by_me
        else:
            assert frames(rest)  # (an older one is closed when the pair's lower sid calls again)
    assert lower_calls >= 1  # everyone called everyone at first


def test_late_higher_vote_during_finalize_wait_reopens(tmp_path: Path) -> None:
    """Sids 1 and 2 agree on 2 at once, but sid 3 (better) speaks within finalizeWait: all elect 3."""
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 3), net, [1, 2, 3])
    ds = ens.look({1: (5, 1), 2: (5, 1)})
    net.run(0.1)
    assert not any(d.called for d in ds.values())
    ds[3] = ens.members[3].look(5, 1)
    votes = results(ds)
    net.run_until(list(ds.values()))
    assert {v.leader for v in votes.values()} == {3}


def test_quorum_with_two_members_down(tmp_path: Path) -> None:
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 5), net, [1, 3, 4])
    ds = ens.look({1: (9, 0), 3: (9, 0), 4: (9, 0)})
    votes = results(ds)
    net.run_until(list(ds.values()))
    assert set(votes.values()) == {Vote(4, 9, 1, 0)}


def test_no_quorum_no_decision(tmp_path: Path) -> None:
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 5), net, [1, 2])
    ds = ens.look({1: (0, 0), 2: (0, 0)})
    net.run(120, step=0.05)
    assert not any(d.called for d in ds.values())
    for m in ens.members.values():
        m.stop()
    for d in ds.values():
        d.addErrback(lambda f: f.trap(defer.CancelledError))
    assert all(d.called for d in ds.values())


def test_restarted_member_joins_established_ensemble(tmp_path: Path) -> None:
    """After an election and the leader's new epoch, a restarted follower (round 1 again) learns
    the leader from FOLLOWING/LEADING answers and takes their round."""
    net = FakeNet()
    config = local_config(tmp_path, 3)
    ens = Ensemble(config, net, [1, 2, 3])
    ds = ens.look({1: (0x100000004, 1), 2: (0x100000007, 1), 3: (0x100000004, 1)})
    net.run_until(list(ds.values()))
    # a second election bumps the rounds to 2, as in the capture
    for m in ens.members.values():
        assert m.logical_clock == 1
    ds = ens.look({1: (0x100000004, 1), 2: (0x100000007, 1), 3: (0x100000004, 1)})
    votes = results(ds)
    net.run_until(list(ds.values()))
    assert set(votes.values()) == {Vote(2, 0x100000007, 2, 1)}
    won = votes[2]
    new_epoch = Vote(won.leader, won.zxid, won.election_epoch, 2)  # the leader established epoch 2
    ens.members[2].announce(LEADING, new_epoch)
    ens.members[1].announce(FOLLOWING, new_epoch)
    ens.members[3].stop()
    net.run(1)
    restarted = FastLeaderElection(config, net, 3)
    restarted.start()
    d = restarted.look(0x100000004, 1)
    assert restarted.logical_clock == 1
    net.run_until([d])
    assert d.result == Vote(2, 0x100000007, 2, 2)
    assert restarted.state == FOLLOWING and restarted.logical_clock == 2


def test_followers_alone_do_not_make_a_leader(tmp_path: Path) -> None:
    """outofelection needs the leader's own LEADING (checkLeader): a FOLLOWING answer for a
    leader that is gone decides nothing."""
    net = FakeNet()
    config = local_config(tmp_path, 3)
    ens = Ensemble(config, net, [3])
    ens.members[3].announce(FOLLOWING, Vote(2, 7, 1, 1))
    fresh = FastLeaderElection(config, net, 1)
    fresh.start()
    d = fresh.look(7, 1)
    net.run(5, step=0.05)
    assert not d.called and fresh.state == LOOKING
    fresh.stop()
    d.addErrback(lambda f: f.trap(defer.CancelledError))


def test_untrusted_empty_database_votes_are_ignored(tmp_path: Path) -> None:
    """3.8.0: a member whose lastLoggedZxid is -1 ignores LOOKING votes and is ignored; the others
    elect without it and it follows from their FOLLOWING/LEADING answers."""
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 3), net, [1, 2, 3])
    ds = ens.look({1: (5, 1), 2: (5, 1), 3: (-1, 1)})
    votes = results(ds)
    net.run_until(list(ds.values()))
    assert set(votes.values()) == {Vote(2, 5, 1, 1)}
    assert ens.members[3].state == FOLLOWING


def test_observer_is_not_counted_and_observes(tmp_path: Path) -> None:
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 4, observers=[4]), net, [1, 2, 3, 4])
    ds = ens.look({1: (3, 1), 2: (3, 1), 3: (3, 1), 4: (1 << 40, 9)})
    votes = results(ds)
    net.run_until(list(ds.values()))
    assert {v.leader for v in votes.values()} == {3}
    assert ens.members[4].state == OBSERVING
    assert ens.members[3].state == LEADING


def test_non_voter_is_answered_at_once(tmp_path: Path) -> None:
    """A notification from a sid that is not a voter gets our current vote back at once."""
    net = FakeNet()
    config = local_config(tmp_path, 3)
    fle = FastLeaderElection(config, net, 2)
    fle.start()
    fle.announce(LEADING, Vote(2, 11, 3, 4))
    raw = RecorderFactory()
    net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
    net.advance(0)
    peer = raw.protocols[0]
    body = Notification(OBSERVING, 2, 11, 3, 4, config=b"").encode()
    peer.write(InitialMessage(9, "127.0.0.9:3888").encode() + struct.pack(">i", len(body)) + body)
    net.advance(0)
    (answer,) = frames(bytes(peer.received))
    assert (answer.state, answer.leader, answer.zxid, answer.election_epoch, answer.peer_epoch) == (
        LEADING, 2, 11, 0, 4)  # the round is our logical clock (never looked: 0), as ZooKeeper's receiver sends


def test_lagging_looking_member_is_answered(tmp_path: Path) -> None:
    """A LOOKING vote from an older round gets our proposal back (and is otherwise ignored)."""
    net = FakeNet()
    fle = FastLeaderElection(local_config(tmp_path, 3), net, 2)
    fle.start()
    for _ in range(5):  # five rounds that ended undecided
        d = fle.look(0, 0)
        d.addErrback(lambda f: f.trap(defer.CancelledError))
        d.cancel()
    assert fle.logical_clock == 5 and fle.state == LOOKING
    raw = RecorderFactory()
    net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
    net.advance(0)
    peer = raw.protocols[0]
    body = Notification(LOOKING, 3, 0, 1, 0, config=b"").encode()
    peer.write(InitialMessage(3, "127.0.0.3:3888").encode() + struct.pack(">i", len(body)) + body)
    net.advance(0)
    answers = frames(bytes(peer.received))
    assert any((a.state, a.election_epoch, a.leader) == (LOOKING, 5, 2) for a in answers)
    fle.stop()


# -- timers ------------------------------------------------------------------------------------------

def test_resend_backoff_doubles_and_caps(tmp_path: Path) -> None:
    """Silence: re-send after 200 ms, then 400, 800, ... capped at 60 s."""
    config = local_config(tmp_path, 3)
    net = FakeNet()
    peers = {sid: RecorderFactory(net) for sid in (1, 2)}
    for sid, f in peers.items():
        net.listenTCP(3888, f, interface=f"127.0.0.{sid}")
    fle = FastLeaderElection(config, net, 3)  # the highest sid: its calls survive
    fle.start()
    fle.look(0, 0)
    net.run_events(300)
    peer = peers[1].protocols[0]
    assert len(frames(initial_message_bytes(bytes(peer.received))[1])) == len(peer.times) - 1
    expected = [0.0]
    wait = 0.2
    while expected[-1] + wait <= 300:
        expected.append(expected[-1] + wait)
        wait = min(wait * 2, 60.0)
    assert expected[:5] == pytest.approx([0, 0.2, 0.6, 1.4, 3.0])
    assert expected[-3:] == pytest.approx([162.2, 222.2, 282.2])
    assert peer.times[1:] == pytest.approx(expected)  # times[0]: the InitialMessage
    fle.stop()


def test_silence_with_no_connection_reconnects(tmp_path: Path) -> None:
    """Nothing delivered (every peer down): the silence timer calls the peers again."""
    net = FakeNet()
    fle = FastLeaderElection(local_config(tmp_path, 3), net, 1)
    fle.start()
    fle.look(0, 0)
    net.run_events(1.5)
    times = sorted({t for t, _, _ in net.attempts})
    assert times == pytest.approx([0.0, 0.2, 0.6, 1.4])
    assert {(h, p) for _, h, p in net.attempts} == {("127.0.0.2", 3888), ("127.0.0.3", 3888)}
    fle.stop()


def test_new_connection_resends_last_message(tmp_path: Path) -> None:
    net = FakeNet()
    config = local_config(tmp_path, 3)
    raw = RecorderFactory()
    net.listenTCP(3888, raw, interface="127.0.0.1")
    fle = FastLeaderElection(config, net, 3)
    fle.start()
    fle.look(0x42, 1)
    net.advance(0)
    first = raw.protocols[0]
    first.close()
    net.advance(0)
    fle._connect(1)  # what the next send would do
    net.advance(0)
    second = raw.protocols[1]
    _, rest = initial_message_bytes(bytes(second.received))
    assert frames(rest) == frames(initial_message_bytes(bytes(first.received))[1])[:1]
    fle.stop()


# -- the connection rule, accepting side -----------------------------------------------------------

def test_accepting_side_calls_back_the_initial_message_address(tmp_path: Path) -> None:
    net = FakeNet()
    config = local_config(tmp_path, 3)
    fle = FastLeaderElection(config, net, 2)
    fle.start()
    callback = RecorderFactory()
    net.listenTCP(4000, callback, interface="127.0.0.99")
    raw = RecorderFactory()
    net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
    net.advance(0)
    raw.protocols[0].write(InitialMessage(1, "127.0.0.99:4000").encode())
    net.advance(0)
    assert raw.protocols[0].lost  # closed: 1 < 2
    assert ("127.0.0.1", 3888) not in {(h, p) for _, h, p in net.attempts}
    msg, rest = initial_message_bytes(bytes(callback.protocols[0].received))
    assert (msg.sid, msg.address, rest) == (2, "127.0.0.2:3888", b"")
    assert not callback.protocols[0].lost  # 2 > 1: our call survives
    fle.stop()


def test_own_sid_is_refused(tmp_path: Path, logged: list[dict]) -> None:
    net = FakeNet()
    fle = FastLeaderElection(local_config(tmp_path, 3), net, 2)
    fle.start()
    raw = RecorderFactory()
    net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
    net.advance(0)
    raw.protocols[0].write(InitialMessage(2, "127.0.0.5:3888").encode())
    net.advance(0)
    assert raw.protocols[0].lost and len(warnings(logged)) == 1
    fle.stop()


# -- garbage on the election port --------------------------------------------------------------------

def _hello(sid: int = 3) -> bytes:
    return InitialMessage(sid, f"127.0.0.{sid}:3888").encode()


@pytest.mark.parametrize("data", [
    struct.pack(">q", -2) + b"x" * 30,  # unknown protocol version
    struct.pack(">qqi", -65536, 3, 0),  # empty address
    struct.pack(">qqi", -65536, 3, 4096) + b"a" * 10,  # address too long
    struct.pack(">qqi", -65536, 1, 4) + b"nope",  # unparsable call-back address (lower sid)
    _hello() + struct.pack(">i", 0),  # empty frame
    _hello() + struct.pack(">i", -7),
    _hello() + struct.pack(">i", 524289),  # frame too long
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # a first long >= 0 is an old peer's sid, then a huge frame
], ids=["version", "addr-empty", "addr-long", "addr-bad", "frame-0", "frame-neg", "frame-big", "http"])
def test_garbage_closes_with_one_log_line(tmp_path: Path, logged: list[dict], data: bytes) -> None:
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 3), net, [1, 2])
    raw = RecorderFactory()
    net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
    net.advance(0)
    raw.protocols[0].write(data)
    net.advance(0)
    assert raw.protocols[0].lost
    (line,) = warnings(logged)
    assert "127.0.0.250" in formatEvent(line)  # names the peer
    # the election still works
    ds = ens.look({1: (0, 0), 2: (0, 0)})
    votes = results(ds)
    net.run_until(list(ds.values()))
    assert {v.leader for v in votes.values()} == {2}


def test_short_notification_is_dropped_not_fatal(tmp_path: Path, logged: list[dict]) -> None:
    net = FakeNet()
    fle = FastLeaderElection(local_config(tmp_path, 3), net, 2)
    fle.start()
    fle.announce(FOLLOWING, Vote(1, 4, 1, 1))
    raw = RecorderFactory()
    net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
    net.advance(0)
    peer = raw.protocols[0]
    good = Notification(LOOKING, 3, 0, 1, 0, config=b"").encode()
    bad_state = struct.pack(">iqqqq", 7, 3, 0, 1, 0)
    peer.write(_hello() + struct.pack(">i", 10) + b"x" * 10
                         + struct.pack(">i", len(bad_state)) + bad_state
                         + struct.pack(">i", len(good)) + good)
    net.advance(0)
    assert not peer.lost
    (answer,) = frames(bytes(peer.received))
    assert (answer.state, answer.leader) == (FOLLOWING, 1)
    assert len(warnings(logged)) == 1


def test_silent_caller_is_closed_after_the_handshake_timeout(tmp_path: Path, logged: list[dict]) -> None:
    net = FakeNet()
    fle = FastLeaderElection(local_config(tmp_path, 3), net, 2)
    fle.start()
    raw = RecorderFactory()
    net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
    net.advance(0)
    net.run(2.4, step=0.1)
    assert not raw.protocols[0].lost
    net.run(0.2, step=0.1)  # tickTime 500 x syncLimit 5
    assert raw.protocols[0].lost and len(warnings(logged)) == 1
    fle.stop()


def test_random_bytes_never_raise(tmp_path: Path, logged: list[dict]) -> None:
    net = FakeNet()
    ens = Ensemble(local_config(tmp_path, 3), net, [1, 2])
    rng = random.Random(1234)
    for i in range(200):
        raw = RecorderFactory()
        net.connectTCP("127.0.0.2", 3888, raw, timeout=5)
        net.advance(0)
        prefix = _hello(rng.choice([1, 3, 7])) if i % 2 else b""
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        if i % 3 == 0:  # a frame with a plausible length and a random body
            body = struct.pack(">i", len(body)) + body
        raw.protocols[0].write(prefix + body)
        net.advance(0)
        raw.protocols[0].close()
        net.advance(0)
    ds = ens.look({1: (0, 0), 2: (0, 0)})
    net.run_until(list(ds.values()))
    assert all(d.called for d in ds.values())


def test_look_twice_and_announce_looking_are_errors(tmp_path: Path) -> None:
    fle = FastLeaderElection(local_config(tmp_path, 3), FakeNet(), 1)
    fle.look(0, 0)
    with pytest.raises(RuntimeError):
        fle.look(0, 0)
    with pytest.raises(RuntimeError):
        fle.announce(FOLLOWING, Vote(1, 0, 1, 0))
    fle.stop()
    with pytest.raises(ValueError):
        fle.announce(LOOKING, Vote(1, 0, 1, 0))


# -- real loopback TCP ----------------------------------------------------------------------------------

@pytest.mark.timeout(30)
@pytest_twisted.inlineCallbacks
def test_three_members_over_loopback_tcp(tmp_path: Path):
    from twisted.internet import reactor

    ports = [free_port() for _ in range(3)]
    config = make_config(tmp_path, {sid: f"127.0.0.1:{free_port()}:{ports[sid - 1]}" for sid in (1, 2, 3)})
    members = [FastLeaderElection(config, reactor, sid) for sid in (1, 2, 3)]
    try:
        for m in members:
            m.start()
        zxids = {1: 0x100000010, 2: 0x100000011, 3: 0x100000009}
        ds = [m.look(zxids[m.my_sid], 1) for m in members]
        for d in ds:
            d.addTimeout(10, reactor)
        votes = yield defer.gatherResults(ds, consumeErrors=True)
        assert set(votes) == {Vote(2, 0x100000011, 1, 1)}
        assert [m.state for m in members] == [FOLLOWING, LEADING, FOLLOWING]
    finally:
        for m in members:
            m.stop()
        yield task.deferLater(reactor, 0.05, lambda: None)
