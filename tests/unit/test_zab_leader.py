"""Our ZAB leader against the bytes of live ZooKeeper 3.8 ensembles (tests/fixtures/zk38).

A real core.server.ZKServer (storage=memory, consensus=zab) runs on a MemoryReactorClock with
inline store calls; the election is a stand-in that the test decides; learners are raw byte
streams on StringTransports. Where the fixture's situation is reproduced (same config, epochs,
logged zxids), our leader's bytes must equal the Java leader's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

from core.config import parse
from core.opcodes import OpCode
from core.records import CreateSessionTxn
from core.server import ZKServer
from core.storage_thread import StorageThread
from core.txn import Txn, decode_txn, encode_txn
from plugins.consensus_zab.common import packet
from plugins.consensus_zab.consensus import ZabConsensus
from plugins.consensus_zab.election import Vote
from plugins.consensus_zab.leader import DIFF, SNAP, TRUNC, Proposal, choose_sync
from plugins.consensus_zab.packets import LearnerInfo, PacketType, QuorumPacket
from tests.inprocess import started
from tests.fixtures.hexfile import read_hex
from tests.unit.test_zab_packets import packets

FRESH_HOSTS = {1: "127.0.0.11", 2: "127.0.0.12", 3: "127.0.0.3"}
DIFF_HOSTS = {1: "127.0.0.1", 2: "127.0.0.2", 3: "127.0.0.13"}
TICK = 1000


class FakeElection:
    """The election interface, decided by the test."""

    def __init__(self) -> None:
        self.looks: list[tuple[int, int, Deferred[Vote]]] = []
        self.announced: list[tuple[int, Vote]] = []
        self.stopped = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True

    def look(self, last_zxid: int, current_epoch: int) -> Deferred[Vote]:
        d: Deferred[Vote] = Deferred()
        self.looks.append((last_zxid, current_epoch, d))
        return d

    def announce(self, state: int, vote: Vote) -> None:
        self.announced.append((state, vote))


class Member:
    """One of our members on a fake reactor."""

    def __init__(self, tmp_path: Path, sid: int, hosts: dict[int, str], *,
                 preload: Sequence[tuple[int, bytes]] = (), epochs: tuple[int, int] | None = None,
                 observers: Sequence[int] = ()) -> None:
        data = tmp_path / f"member{sid}"
        data.mkdir()
        (data / "myid").write_text(str(sid))
        lines = [f"tickTime={TICK}", "initLimit=10", "syncLimit=5", f"dataDir={data}", "clientPort=12999",
                 "storage=memory"]
        for n, host in hosts.items():
            role = ":observer" if n in observers else ""
            lines.append(f"server.{n}={host}:2888:3888{role}")
        cfg = parse("\n".join(lines) + "\n")
        assert cfg.consensus == "zab"
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_000_000)
        self.server = server = ZKServer(cfg, reactor=self.reactor)
        server.storage = StorageThread(self.reactor, threaded=False)
        self.election = FakeElection()
        self.zab = ZabConsensus(cfg, server.store, server, election_factory=lambda c, r, s: self.election)
        server.consensus = self.zab
        if preload:
            server.store.append(list(preload))
        if epochs is not None:
            server.store.put_meta("acceptedEpoch", str(epochs[0]).encode())
            server.store.put_meta("currentEpoch", str(epochs[1]).encode())
        started(server, self.reactor)
        self.reactor.advance(0)  # look()

    def elect(self, leader: int, round_: int = 1) -> Vote:
        last, epoch, d = self.election.looks[-1]
        vote = Vote(leader, last, round_, epoch)
        d.callback(vote)
        self.reactor.advance(0)
        return vote

    def learner(self, port: int = 40001) -> Peer:
        """A raw learner connected to our leader's quorum port."""
        _, factory, _, _ = self.reactor.tcpServers[-1]
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        tr = StringTransport()
        proto.makeConnection(tr)
        return Peer(proto, tr, self.reactor)

    def leader_link(self) -> Peer:
        """A raw leader at the end of our learner's connection."""
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2888))
        tr = StringTransport()
        proto.makeConnection(tr)
        return Peer(proto, tr, self.reactor)


class Peer:
    """The other end of a quorum connection: bytes in, bytes out."""

    def __init__(self, proto: Any, transport: StringTransport, reactor: MemoryReactorClock) -> None:
        self.proto = proto
        self.transport = transport
        self.reactor = reactor

    def feed(self, data: bytes) -> None:
        self.proto.dataReceived(data)
        self.reactor.advance(0)

    def send(self, ptype: int, zxid: int, data: bytes | None = None, authinfo: Any = None) -> None:
        self.feed(packet(ptype, zxid, data, authinfo))

    def take(self) -> bytes:
        self.reactor.advance(0)  # packets leave at the end of the reactor turn that sent them
        out = self.transport.value()
        self.transport.clear()
        return out


def followerinfo(sid: int, accepted_epoch: int) -> bytes:
    return packet(PacketType.FOLLOWERINFO, accepted_epoch << 32, LearnerInfo(sid, 0x10000, 0).encode())


def ackepoch(last_zxid: int, epoch: int) -> bytes:
    return packet(PacketType.ACKEPOCH, last_zxid, struct.pack(">i", epoch))


def session_txn(zxid: int, session: int = 0x100000000000001) -> tuple[int, bytes]:
    """A createSession txn to stand for any logged txn."""
    txn = Txn(session, 0, zxid, 1_700_000_000_000, OpCode.createSession, CreateSessionTxn(30000))
    return zxid, encode_txn(txn)


def kinds(data: bytes) -> list[int]:
    return [p.type for p in packets(data)]


def establish(m: Member, follower_sid: int = 1, accepted: int = 0, last_zxid: int = 0,
              current: int = 0) -> Peer:
    """Elect `m` and establish it with one follower (a quorum of three)."""
    m.elect(m.zab.my_sid)
    f = m.learner()
    f.feed(followerinfo(follower_sid, accepted))
    f.feed(ackepoch(last_zxid, current))
    epoch = m.zab.accepted_epoch
    f.send(PacketType.ACK, epoch << 32)
    assert m.zab.role == "leader" and m.zab.is_serving()
    return f


# -- the sync choice --------------------------------------------------------------------------

LOG = [(0x100000001, b"a"), (0x100000002, b"b"), (0x200000001, b"c"), (0x200000002, b"d")]


def test_sync_choice_cases() -> None:
    assert (choose_sync(0, 0, []).kind, choose_sync(0, 0, []).zxid) == (DIFF, 0)
    p = choose_sync(0x100000002, 0x200000002, LOG)
    assert (p.kind, p.zxid, [z for z, _ in p.txns]) == (DIFF, 0x200000002, [0x200000001, 0x200000002])
    p = choose_sync(0x200000003, 0x200000002, LOG)
    assert (p.kind, p.zxid, p.txns) == (TRUNC, 0x200000002, [])
    # the peer has a txn the leader never had, within the log: TRUNC to the one before, then the rest
    p = choose_sync(0x100000003, 0x200000002, LOG)
    assert p.kind == SNAP  # the next txn is of another epoch
    p = choose_sync(0x200000001, 0x200000002, [(0x200000001, b"c"), (0x200000002, b"d")])
    assert (p.kind, p.zxid, [z for z, _ in p.txns]) == (DIFF, 0x200000002, [0x200000002])
    p = choose_sync(0x200000002, 0x200000004, [(0x200000001, b"c"), (0x200000003, b"e"), (0x200000004, b"f")])
    assert (p.kind, p.zxid, [z for z, _ in p.txns]) == (TRUNC, 0x200000001, [0x200000003, 0x200000004])
    # a new-epoch zxid inside the log: DIFF anyway
    p = choose_sync(0x200000000, 0x200000002, LOG)
    assert (p.kind, p.zxid, [z for z, _ in p.txns]) == (DIFF, 0x200000002, [0x200000001, 0x200000002])
    # below the committed log (and an empty follower): SNAP at the leader's lastProcessedZxid
    assert (choose_sync(0, 0x200000002, LOG).kind, choose_sync(0, 0x200000002, LOG).zxid) == (SNAP, 0x200000002)
    # a new-epoch zxid above the log is no reason to truncate
    assert choose_sync(0x300000000, 0x200000002, LOG).kind == SNAP


# -- handshakes, byte for byte ----------------------------------------------------------------

def test_fresh_handshake_equals_the_java_leader(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    m.elect(3)
    f = m.learner()
    f.feed(followerinfo(1, 0))
    assert m.server.store.get_meta("acceptedEpoch") == b"1"  # persisted before LEADERINFO
    f.feed(ackepoch(0, 0))
    assert m.server.store.get_meta("currentEpoch") == b"1"
    f.send(PacketType.ACK, 0x100000000)
    assert f.take() == read_hex("learner-handshake-leader-to-follower-fresh.hex")
    assert m.zab.role == "leader" and m.zab.is_serving()
    assert m.election.announced[-1][1].peer_epoch == 1


def diff_leader(tmp_path: Path) -> tuple[Member, Peer, list[QuorumPacket]]:
    """Leader sid 2 of epoch 2 holding zxid 0x100000019 and the fixture's six epoch-2 txns,
    committed with follower sid 1 (the situation of the diff/trunc fixtures)."""
    m = Member(tmp_path, 2, DIFF_HOSTS, preload=[session_txn(0x100000019)], epochs=(1, 1))
    f1 = establish(m, 1, accepted=1, last_zxid=0x100000019, current=1)
    f1.take()
    java = [p for p in packets(read_hex("learner-handshake-leader-to-follower-diff.hex"))
            if p.type == PacketType.PROPOSAL]
    leader = m.zab.active
    for p in java:  # through the real broadcast path, with the Java leader's txn bytes
        leader.last_proposed = p.zxid
        leader.outstanding[p.zxid] = Proposal(decode_txn(p.data), p.data)
        m.zab.log.append(p.zxid, p.data, leader._durable)
        f1.send(PacketType.ACK, p.zxid)
    assert m.server.tree.last_zxid == 0x200000006
    return m, f1, java


def test_diff_handshake_equals_the_java_leader(tmp_path: Path) -> None:
    m, _, _ = diff_leader(tmp_path)
    f3 = m.learner(40003)
    java_in = read_hex("learner-handshake-follower-to-leader.hex")
    first = packets(java_in)
    f3.feed(first[0].encode())  # FOLLOWERINFO(epoch 2)
    f3.feed(first[1].encode())  # ACKEPOCH(0x100000019, -1)
    f3.feed(first[2].encode())  # ACK(NEWLEADER)
    expected = read_hex("learner-handshake-leader-to-follower-diff.hex")
    assert f3.take() == expected
    for p in first[3:]:  # ACK(UPTODATE) and the ACKs of the synced proposals: ignored
        f3.feed(p.encode())
    assert f3.take() == b"" and m.zab.is_serving()


def test_a_joining_learner_gets_the_outstanding_proposals_after_its_sync(tmp_path: Path) -> None:
    m, _, _ = diff_leader(tmp_path)
    leader = m.zab.active
    zxid, payload = session_txn(leader.last_proposed + 1)
    leader.last_proposed = zxid  # proposed, not yet acked by a quorum
    leader.outstanding[zxid] = Proposal(decode_txn(payload), payload)
    f3 = m.learner(40003)
    for p in packets(read_hex("learner-handshake-follower-to-leader.hex"))[:3]:
        f3.feed(p.encode())
    sent = [(p.type, p.zxid) for p in packets(f3.take()) if p.zxid == zxid]
    assert sent == [(PacketType.PROPOSAL, zxid)]  # no COMMIT: it is not committed
    handler = next(h for h in leader.handlers if h.sid == 3)
    assert [z for z, _ in handler.unacked] == [zxid]  # its ACK is awaited (syncLimit)


def test_trunc_handshake_equals_the_java_leader(tmp_path: Path) -> None:
    m, _, _ = diff_leader(tmp_path)
    f3 = m.learner(40003)
    for p in packets(read_hex("learner-handshake-follower-to-leader-trunc.hex"))[:3]:
        f3.feed(p.encode())
    expected = [p for p in packets(read_hex("learner-handshake-leader-to-follower-trunc.hex"))
                if p.type != PacketType.PING]
    assert packets(f3.take()) == expected


def test_python_leader_fixture_handshake(tmp_path: Path) -> None:
    """The minimal Python leader's situation: our leader at 0x300000007, epochs 4; the Java
    follower's own bytes drive it."""
    m = Member(tmp_path, 3, DIFF_HOSTS, preload=[session_txn(0x300000007)], epochs=(4, 4))
    m.elect(3)
    f = m.learner()
    java_in = packets(read_hex("java-follower-to-python-leader.hex"))
    for p in java_in[:3]:  # FOLLOWERINFO, ACKEPOCH, ACK(NEWLEADER)
        f.feed(p.encode())
    ours = packets(f.take())
    java_out = packets(read_hex("python-leader-to-java-follower.hex"))
    assert ours == java_out[:4]  # LEADERINFO(5), DIFF(0x300000007), NEWLEADER, UPTODATE
    m.reactor.advance(TICK / 2000.0)
    assert packets(f.take()) == [QuorumPacket(PacketType.PING, 0x500000000, None, None)]


def test_snap_for_a_wiped_follower(tmp_path: Path) -> None:
    m, _, _ = diff_leader(tmp_path)
    f3 = m.learner(40003)
    f3.feed(followerinfo(3, 0))
    f3.feed(ackepoch(0, 0))
    out = f3.take()
    first, off = QuorumPacket.decode(out, 0)
    assert first.type == PacketType.LEADERINFO
    snap, off = QuorumPacket.decode(out, off)
    # established in epoch 2 with txns: lastProcessedZxid is the last txn
    assert (snap.type, snap.zxid) == (PacketType.SNAP, 0x200000006)
    from core.snapshot import deserialize_stream
    tree, sessions, end = deserialize_stream(out, off)
    assert out[end:end + 14] == b"\x00\x00\x00\x0aBenWasHere"
    assert tree.get("/d0").data == b"changed" and sessions == {
        sid: s.timeout for sid, s in m.server.sessions.sessions.items()}
    rest = packets(out[end + 14:])
    assert [p.type for p in rest] == [PacketType.NEWLEADER]


def test_established_leader_syncs_from_its_new_epoch_zxid(tmp_path: Path) -> None:
    """Once established, lastProcessedZxid is newEpoch << 32 (quorum.md 2.4): an empty learner
    gets SNAP(0x100000000), one ahead gets TRUNC to it, one at it an empty DIFF."""
    m = Member(tmp_path, 3, FRESH_HOSTS)
    establish(m)
    for port, (peer, kind) in enumerate([(0, SNAP), (0x100000005, TRUNC), (0x100000000, DIFF)]):
        f = m.learner(40010 + port)
        f.feed(followerinfo(2, 1))
        f.feed(ackepoch(peer, -1))
        out = f.take()
        leaderinfo, off = QuorumPacket.decode(out, 0)
        choice = QuorumPacket.decode(out, off)[0]
        assert (choice.type, choice.zxid) == (kind, 0x100000000)
        f.proto.close()


# -- broadcast --------------------------------------------------------------------------------

def _normal(data: bytes) -> bytes:
    txn = decode_txn(data)
    txn.time = 0
    txn.digest = None
    return encode_txn(txn)


def test_broadcast_proposals_equal_the_java_leaders(tmp_path: Path) -> None:
    """The Java follower's forwarded REQUESTs, ACKs and PINGs, fed to our leader: our
    PROPOSALs equal the Java leader's but for the time and the digest, and commit in order.
    (How PROPOSALs and COMMITs interleave depends on timing: the capture's arrived over time,
    ours all at once and are logged as one batch; each sequence on its own must be Java's.)"""
    m = Member(tmp_path, 3, FRESH_HOSTS)
    f = establish(m)
    f.take()
    f.feed(read_hex("broadcast-follower-to-leader.hex"))
    for _ in range(10):
        m.reactor.advance(0)  # the group commit of the leader's log
    ours = [p for p in packets(f.take()) if p.type != PacketType.PING]
    java = [p for p in packets(read_hex("broadcast-leader-to-follower.hex")) if p.type != PacketType.PING]
    for kind in {p.type for p in java}:
        assert [p.zxid for p in ours if p.type == kind] == [p.zxid for p in java if p.type == kind], kind
    ours = [p for p in ours if p.type == PacketType.PROPOSAL]
    java = [p for p in java if p.type == PacketType.PROPOSAL]
    for a, b in zip(ours, java):
        if a.type == PacketType.PROPOSAL:
            assert _normal(a.data) == _normal(b.data), hex(a.zxid)
    assert m.server.tree.last_zxid == 0x10000000b
    assert not m.server.sessions.sessions  # the session was closed


def test_commit_needs_a_quorum_and_goes_in_order(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    f = establish(m)
    f.take()
    sid = 0x100000000000042
    for cxid in range(3):
        req = struct.pack(">qii", sid if cxid else sid, cxid, OpCode.createSession if cxid == 0 else OpCode.setData)
        if cxid == 0:
            f.send(PacketType.REQUEST, -1, req + struct.pack(">i", 10000))
    props = packets(f.take())
    assert [p.type for p in props] == [PacketType.PROPOSAL]
    assert m.server.tree.last_zxid == 0  # the leader alone is no quorum
    f.send(PacketType.ACK, props[0].zxid)
    assert kinds(f.take()) == [PacketType.COMMIT] and sid in m.server.sessions.sessions
    f.send(PacketType.ACK, props[0].zxid)  # a second ACK of a committed txn is ignored
    assert f.take() == b""


def test_sync_request_is_answered_after_outstanding_commits(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    f = establish(m)
    f.take()
    f.send(PacketType.REQUEST, -1, struct.pack(">qii", 5, 0, OpCode.sync) + b"\x00\x00\x00\x01/")
    assert packets(f.take()) == [QuorumPacket(PacketType.SYNC, 0, None, None)]
    f.send(PacketType.REQUEST, -1, struct.pack(">qiii", 0x100000000000042, 0, OpCode.createSession, 10000))
    f.send(PacketType.REQUEST, -1, struct.pack(">qii", 5, 0, OpCode.sync) + b"\x00\x00\x00\x01/")
    assert kinds(f.take()) == [PacketType.PROPOSAL]
    f.send(PacketType.ACK, 0x100000001)
    assert kinds(f.take()) == [PacketType.COMMIT, PacketType.SYNC]


def test_revalidate_answer_equals_the_java_leaders(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    f = establish(m)
    ask, answer = packets(read_hex("revalidate-pair.hex"))
    session = struct.unpack(">q", ask.data[:8])[0]
    f.send(PacketType.REQUEST, -1, struct.pack(">qiii", session, 0, OpCode.createSession, 10000))
    f.send(PacketType.ACK, 0x100000001)
    f.take()
    f.feed(ask.encode())
    assert packets(f.take()) == [answer]
    f.feed(packet(PacketType.REVALIDATE, -1, struct.pack(">qi", 12345, 10000)))
    assert packets(f.take())[0].data == struct.pack(">q?", 12345, False)


def test_observer_gets_inform_and_does_not_count(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, {**FRESH_HOSTS, 4: "127.0.0.14"}, observers=[4])
    f = establish(m)
    f.take()
    o = m.learner(40004)
    o.send(PacketType.OBSERVERINFO, 1 << 32, LearnerInfo(4, 0x10000, 0).encode())
    o.feed(ackepoch(0x100000000, -1))  # synced earlier in this epoch: an empty DIFF
    o.send(PacketType.ACK, 0x100000000)
    assert kinds(o.take()) == [PacketType.LEADERINFO, PacketType.DIFF, PacketType.NEWLEADER, PacketType.UPTODATE]
    f.send(PacketType.REQUEST, -1, struct.pack(">qiii", 0x100000000000042, 0, OpCode.createSession, 10000))
    assert o.take() == b""  # observers get no PROPOSAL
    o.send(PacketType.ACK, 0x100000001)  # and their ACKs do not count
    assert m.server.tree.last_zxid == 0
    f.send(PacketType.ACK, 0x100000001)
    inform = packets(o.take())
    assert [(p.type, p.zxid) for p in inform] == [(PacketType.INFORM, 0x100000001)]
    assert decode_txn(inform[0].data).type == OpCode.createSession


# -- liveness ---------------------------------------------------------------------------------

def test_leader_pings_and_steps_down_without_a_synced_quorum(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    f = establish(m)
    f.take()
    m.reactor.advance(TICK / 2000.0)
    assert packets(f.take()) == [QuorumPacket(PacketType.PING, 0x100000000, None, None)]
    for _ in range(4):  # the follower answers: still leading after 2 s
        f.send(PacketType.PING, 0x100000000, b"")
        m.reactor.advance(TICK / 2000.0)
    assert m.zab.role == "leader"
    for _ in range(2 * 5 + 2):  # silence for more than syncLimit ticks
        m.reactor.advance(TICK / 2000.0)
    assert m.zab.role == "looking" and not m.zab.is_serving()
    assert len(m.election.looks) == 2  # looking again
    assert f.transport.disconnecting


def test_leader_without_followers_gives_up_after_init_limit(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    m.elect(3)
    m.reactor.advance(10 * TICK / 1000.0 + 0.01)
    assert m.zab.role == "looking" and len(m.election.looks) == 2
    assert m.server.store.get_meta("acceptedEpoch") is None or m.server.store.get_meta("acceptedEpoch") == b"0"


def test_follower_ahead_of_the_leader_is_refused(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    m.elect(3)
    f = m.learner()
    f.feed(followerinfo(1, 0))
    f.feed(ackepoch(0x100000003, 1))  # epoch 1 > the leader's 0
    assert f.transport.disconnecting


def test_session_touches_from_pings_keep_sessions_and_silence_expires_them(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    f = establish(m)
    sid = 0x100000000000042
    f.send(PacketType.REQUEST, -1, struct.pack(">qiii", sid, 0, OpCode.createSession, 4000))
    f.send(PacketType.ACK, 0x100000001)
    for _ in range(20):  # 10 s of follower pings carrying the touch
        m.reactor.advance(TICK / 2000.0)
        f.send(PacketType.PING, 0x100000001, struct.pack(">qi", sid, 4000))
        f.take()
    assert sid in m.server.sessions.sessions
    for _ in range(12):  # 6 s with empty pings: expired by the leader, a closeSession proposed
        m.reactor.advance(TICK / 2000.0)
        f.send(PacketType.PING, 0x100000001, b"")
    props = [p for p in packets(f.take()) if p.type == PacketType.PROPOSAL]
    assert [decode_txn(p.data).type for p in props] == [OpCode.closeSession]
    assert decode_txn(props[0].data).clientId == sid


@pytest.mark.parametrize("name", ["learner-handshake-follower-to-leader.hex", "java-follower-to-python-leader.hex"])
def test_java_followers_streams_never_break_our_leader(tmp_path: Path, name: str) -> None:
    m = Member(tmp_path, 3, FRESH_HOSTS)
    m.elect(3)
    f = m.learner()
    f.feed(read_hex(name))
    assert not f.transport.disconnecting or m.zab.role == "looking"
