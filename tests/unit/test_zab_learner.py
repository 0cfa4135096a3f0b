"""Our ZAB follower/observer against the bytes a Java ZooKeeper 3.8 leader sent (tests/fixtures/zk38).

The member is a real ZKServer on a MemoryReactorClock (see test_zab_leader's Member); the
leader is the fixture's byte stream fed into our learner's connection. Where the fixture's
situation is reproduced, our learner's answers must equal the Java follower's bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from core.connection import ServerConnection
from core.opcodes import OpCode
from core.records import ConnectRequest, ConnectResponse, ReplyHeader, RequestHeader
from core.sessions import session_password
from core.txn import decode_txn
from plugins.consensus_zab.packets import LearnerInfo, PacketType, QuorumPacket
from tests.fixtures.hexfile import read_hex
from tests.unit.test_zab_leader import DIFF_HOSTS, FRESH_HOSTS, TICK, Member, Peer, session_txn
from tests.unit.test_zab_packets import packets

_LEN = struct.Struct(">i")


def java_proposals(name: str) -> list[tuple[int, bytes]]:
    return [(p.zxid, p.data) for p in packets(read_hex(name)) if p.type == PacketType.PROPOSAL]


def follow(m: Member, leader: int) -> Peer:
    m.elect(leader)
    return m.leader_link()


def fresh_follower(tmp_path: Path) -> tuple[Member, Peer]:
    m = Member(tmp_path, 1, FRESH_HOSTS)
    link = follow(m, 3)
    link.feed(read_hex("learner-handshake-leader-to-follower-fresh.hex"))
    link.take()
    assert m.zab.role == "follower" and m.zab.is_serving()
    return m, link


class Client:
    """A client connection to our member (a ServerConnection on a StringTransport)."""

    def __init__(self, m: Member, port: int = 50001) -> None:
        self.m = m
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.conn = ServerConnection(m.server)
        self.conn.makeConnection(self.transport)
        self.xid = 0

    def send(self, payload: bytes) -> None:
        self.conn.dataReceived(_LEN.pack(len(payload)) + payload)
        self.m.reactor.advance(0)

    def frames(self) -> list[bytes]:
        data = self.transport.value()
        self.transport.clear()
        out, off = [], 0
        while off < len(data):
            (n,) = _LEN.unpack_from(data, off)
            out.append(data[off + 4:off + 4 + n])
            off += 4 + n
        return out

    def connect(self, timeout: int = 10000, session_id: int = 0) -> None:
        passwd = session_password(session_id) if session_id else bytes(16)
        self.send(ConnectRequest.encode(ConnectRequest(0, 0, timeout, session_id, passwd)))

    def request(self, op: int, body: bytes) -> None:
        self.xid += 1
        self.send(RequestHeader.encode(RequestHeader(self.xid, op)) + body)


# -- handshakes, byte for byte ----------------------------------------------------------------

def test_fresh_handshake(tmp_path: Path) -> None:
    m = Member(tmp_path, 1, FRESH_HOSTS)
    link = follow(m, 3)
    assert packets(link.take()) == [QuorumPacket(PacketType.FOLLOWERINFO, 0, LearnerInfo(1, 0x10000, 0).encode(), None)]
    link.feed(read_hex("learner-handshake-leader-to-follower-fresh.hex"))
    assert [(p.type, p.zxid, p.data) for p in packets(link.take())] == [
        (PacketType.ACKEPOCH, 0, struct.pack(">i", 0)),
        (PacketType.ACK, 0x100000000, None), (PacketType.ACK, 0x100000000, None)]
    assert m.zab.role == "follower" and m.zab.is_serving()
    store = m.server.store
    assert (store.get_meta("acceptedEpoch"), store.get_meta("currentEpoch")) == (b"1", b"1")


def test_diff_handshake_equals_the_java_follower(tmp_path: Path) -> None:
    """Restarted follower sid 3 at 0x100000019 with acceptedEpoch 2, behind by six txns."""
    m = Member(tmp_path, 3, DIFF_HOSTS, preload=[session_txn(0x100000019)], epochs=(2, 2))
    link = follow(m, 2)
    link.feed(read_hex("learner-handshake-leader-to-follower-diff.hex"))
    assert link.take() == read_hex("learner-handshake-follower-to-leader.hex")
    assert m.zab.role == "follower"
    assert m.server.tree.get("/d0").data == b"changed" and m.server.tree.last_zxid == 0x200000006
    assert [z for z, _ in m.server.store.read_from(0x100000019)] == list(range(0x200000001, 0x200000007))


def test_trunc_handshake_equals_the_java_follower(tmp_path: Path) -> None:
    logged = [session_txn(0x100000019), *java_proposals("learner-handshake-leader-to-follower-diff.hex"),
              session_txn(0x200000007, 0x300000000000009)]
    m = Member(tmp_path, 3, DIFF_HOSTS, preload=logged, epochs=(2, 2))
    assert 0x300000000000009 in m.server.sessions.sessions
    link = follow(m, 2)
    link.feed(read_hex("learner-handshake-leader-to-follower-trunc.hex"))
    assert link.take() == read_hex("learner-handshake-follower-to-leader-trunc.hex")
    assert m.server.store.last_zxid() == 0x200000006 and list(m.server.store.read_from(0x200000006)) == []
    assert m.server.tree.last_zxid == 0x200000006 and 0x300000000000009 not in m.server.sessions.sessions


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_trunc_drops_every_txn_above_the_target(tmp_path: Path, storage: str) -> None:
    """quorum.md 2.4's 3.8.0 defect is not ours: txns above the target in later batches go too."""
    m = Member(tmp_path, 3, DIFF_HOSTS, preload=[session_txn(0x100000019)], epochs=(2, 2))
    if storage == "sqlite":
        from plugins.storage_sqlite.store import SqliteStore
        store = SqliteStore(tmp_path / "sqlite")
        store.open()
        m.server.store = m.zab.store = m.zab.log.store = store
    store = m.server.store
    for zxid, payload in [*java_proposals("learner-handshake-leader-to-follower-diff.hex"),
                          session_txn(0x200000007), session_txn(0x200000008), session_txn(0x200000009)]:
        store.append([(zxid, payload)])  # one batch each (one row each in SQLite)
    link = follow(m, 2)
    trunc = [p for p in packets(read_hex("learner-handshake-leader-to-follower-trunc.hex")) if p.type != PacketType.PING]
    link.feed(b"".join(p.encode() for p in trunc))
    assert m.zab.role == "follower"
    assert store.last_zxid() == 0x200000006 and list(store.read_from(0x200000006)) == []
    assert m.server.tree.last_zxid == 0x200000006


def test_snap_handshake_loads_the_java_leaders_tree(tmp_path: Path) -> None:
    m = Member(tmp_path, 3, DIFF_HOSTS, preload=[session_txn(0x100000019), session_txn(0x10000001a)],
               epochs=(2, 2))
    link = follow(m, 2)
    data = read_hex("learner-handshake-leader-to-follower-snap.hex")
    for i in range(0, len(data), 97):  # in small pieces: the payload has no framing
        link.feed(data[i:i + 97])
    out = packets(link.take())
    assert [(p.type, p.zxid) for p in out] == [
        (PacketType.FOLLOWERINFO, 0x200000000), (PacketType.ACKEPOCH, 0x10000001a),
        (PacketType.ACK, 0x200000000), (PacketType.ACK, 0x200000000)]
    tree = m.server.tree
    assert tree.last_zxid == 0x200000006
    assert {"/a", "/cont", "/cont/child", "/d0", "/d1"} <= set(tree.nodes)
    assert m.server.store.load_snapshot()[0] == 0x200000006
    assert list(m.server.store.read_from(0x200000006)) == []
    assert m.zab.last_zxid() == 0x200000006 and m.zab.is_serving()


# -- broadcast --------------------------------------------------------------------------------

def test_broadcast_acks_and_applies_like_the_java_follower(tmp_path: Path) -> None:
    m, link = fresh_follower(tmp_path)
    link.feed(read_hex("broadcast-leader-to-follower.hex"))
    ours = [(p.type, p.zxid) for p in packets(link.take())]
    java = [(p.type, p.zxid) for p in packets(read_hex("broadcast-follower-to-leader.hex"))
            if p.type == PacketType.ACK and p.zxid <= 0x10000000b]
    assert [x for x in ours if x[0] == PacketType.ACK] == java
    assert all(t in (PacketType.ACK, PacketType.PING) for t, _ in ours)
    assert m.server.tree.last_zxid == 0x10000000b
    assert not m.server.sessions.sessions


def test_commit_waits_for_the_proposal_to_be_durable_and_in_order(tmp_path: Path) -> None:
    m, link = fresh_follower(tmp_path)
    props = java_proposals("broadcast-leader-to-follower.hex")[:2]
    link.send(PacketType.COMMIT, props[0][0])  # a COMMIT for an unknown txn: we resync
    assert m.zab.role == "looking"


def test_pings_are_answered_with_touches_of_our_clients(tmp_path: Path) -> None:
    m, link = fresh_follower(tmp_path)
    c = Client(m)
    c.connect(timeout=10000)
    [req] = [p for p in packets(link.take()) if p.type == PacketType.REQUEST]
    sid, cxid, op, timeout = struct.unpack(">qiii", req.data)
    java_req = packets(read_hex("broadcast-follower-to-leader.hex"))[0]
    assert (req.type, req.zxid, req.authinfo) == (java_req.type, java_req.zxid, java_req.authinfo)
    assert req.data[8:] == java_req.data[8:]  # cxid 0, type -10, timeout 10000
    assert sid >> 56 == 1  # minted by member 1
    # the leader proposes and commits the session
    from tests.unit.test_zab_leader import Txn, CreateSessionTxn, encode_txn
    txn = Txn(sid, 0, 0x100000001, 1, OpCode.createSession, CreateSessionTxn(10000))
    link.send(PacketType.PROPOSAL, 0x100000001, encode_txn(txn))
    link.send(PacketType.COMMIT, 0x100000001)
    resp = ConnectResponse.decode(c.frames()[0], 0)[0]
    assert resp.sessionId == sid and resp.timeOut == 10000
    link.take()
    link.send(PacketType.PING, 0x100000001)
    assert packets(link.take()) == [QuorumPacket(PacketType.PING, 0x100000001, struct.pack(">qi", sid, 10000), None)]
    link.send(PacketType.PING, 0x100000001)  # not touched since
    assert packets(link.take()) == [QuorumPacket(PacketType.PING, 0x100000001, b"", None)]
    # a forwarded create is the client's request body, with its auth ids (as Java's)
    java_create = packets(read_hex("broadcast-follower-to-leader.hex"))[3]
    c.request(OpCode.create, java_create.data[16:])
    [fwd] = packets(link.take())
    assert fwd.data[8:] == java_create.data[8:] and fwd.authinfo == java_create.authinfo


def test_sync_completes_after_the_leaders_sync(tmp_path: Path) -> None:
    m, link = fresh_follower(tmp_path)
    c = Client(m)
    c.connect()
    req = packets(link.take())[0]
    sid = struct.unpack(">q", req.data[:8])[0]
    from tests.unit.test_zab_leader import Txn, CreateSessionTxn, encode_txn
    link.send(PacketType.PROPOSAL, 0x100000001, encode_txn(Txn(sid, 0, 0x100000001, 1, -10, CreateSessionTxn(10000))))
    link.send(PacketType.COMMIT, 0x100000001)
    c.frames()
    link.take()
    c.request(OpCode.sync, b"\x00\x00\x00\x02/x")
    [fwd] = packets(link.take())
    assert struct.unpack(">qii", fwd.data[:16])[1:] == (1, OpCode.sync) and fwd.data[16:] == b"\x00\x00\x00\x02/x"
    assert c.frames() == []
    link.send(PacketType.SYNC, 0)
    [frame] = c.frames()
    assert ReplyHeader.decode(frame, 0)[0].xid == 1


def test_revalidate_equals_the_java_follower(tmp_path: Path) -> None:
    m, link = fresh_follower(tmp_path)
    ask, answer = packets(read_hex("revalidate-pair.hex"))
    session, timeout = struct.unpack(">qi", ask.data)
    d = m.zab.revalidate(session, timeout)
    assert packets(link.take()) == [ask]
    results: list[bool] = []
    d.addCallback(results.append)
    link.feed(answer.encode())
    assert results == [True]


def test_learner_loses_its_leader_and_looks_again(tmp_path: Path) -> None:
    m, link = fresh_follower(tmp_path)
    c = Client(m)
    c.connect()
    m.reactor.advance(5 * TICK / 1000.0 + 0.01)  # nothing from the leader for syncLimit ticks
    assert m.zab.role == "looking" and not m.zab.is_serving()
    assert c.transport.disconnecting
    assert len(m.election.looks) == 2


def test_leader_epoch_below_ours_is_refused(tmp_path: Path) -> None:
    m = Member(tmp_path, 1, FRESH_HOSTS, epochs=(3, 3))
    link = follow(m, 3)
    link.take()
    link.send(PacketType.LEADERINFO, 2 << 32, struct.pack(">i", 0x10000))
    assert link.transport.disconnecting and m.zab.role == "looking"


def test_proposals_during_sync_are_held_until_newleader(tmp_path: Path) -> None:
    """The ACK of NEWLEADER is the first packet after ACKEPOCH (a Java leader counts only it)."""
    m = Member(tmp_path, 1, FRESH_HOSTS)
    link = follow(m, 3)
    link.take()
    link.send(PacketType.LEADERINFO, 1 << 32, struct.pack(">i", 0x10000))
    link.send(PacketType.DIFF, 0)
    from tests.unit.test_zab_leader import Txn, CreateSessionTxn, encode_txn
    payload = encode_txn(Txn(7, 0, 0x100000001, 1, -10, CreateSessionTxn(10000)))
    link.send(PacketType.PROPOSAL, 0x100000001, payload)  # outstanding at the leader
    assert [p.type for p in packets(link.take())] == [PacketType.ACKEPOCH]
    assert m.server.store.last_zxid() == 0
    link.send(PacketType.NEWLEADER, 1 << 32, b"version=0")
    assert [(p.type, p.zxid) for p in packets(link.take())] == [(PacketType.ACK, 1 << 32)]
    assert m.server.store.last_zxid() == 0x100000001 and m.server.tree.last_zxid == 0
    link.send(PacketType.PING, 1 << 32)  # unanswered during synchronization
    link.send(PacketType.UPTODATE, -1)
    assert [(p.type, p.zxid) for p in packets(link.take())] == [(PacketType.ACK, 1 << 32), (PacketType.ACK, 0x100000001)]
    link.send(PacketType.COMMIT, 0x100000001)
    assert 7 in m.server.sessions.sessions


def test_observer_registers_and_applies_informs(tmp_path: Path) -> None:
    m = Member(tmp_path, 4, {**FRESH_HOSTS, 4: "127.0.0.14"}, observers=[4])
    link = follow(m, 3)
    [info] = packets(link.take())
    assert info.type == PacketType.OBSERVERINFO
    link.send(PacketType.LEADERINFO, 1 << 32, struct.pack(">i", 0x10000))
    link.send(PacketType.DIFF, 0)
    link.send(PacketType.NEWLEADER, 1 << 32, b"version=0")
    link.send(PacketType.UPTODATE, -1)
    assert m.zab.role == "observer"
    from tests.unit.test_zab_leader import Txn, CreateSessionTxn, encode_txn
    payload = encode_txn(Txn(7, 0, 0x100000001, 1, -10, CreateSessionTxn(10000)))
    link.take()
    link.send(PacketType.INFORM, 0x100000001, payload)
    assert 7 in m.server.sessions.sessions and link.take() == b""  # no ACK from an observer
    assert decode_txn(m.server.store.read_from(0).__next__()[1]).zxid == 0x100000001


def test_revalidation_cut_short_by_losing_the_leader_is_no_expiry(tmp_path: Path) -> None:
    """A client reconnects while its REVALIDATE is unanswered and the leader goes away: its
    connection is closed (it tries another member), never answered "expired" (timeout 0), which
    would end a session the quorum still holds (found by tests/ensemble/test_rolling_replacement)."""
    m, link = fresh_follower(tmp_path)
    session = (2 << 56) | 0x5DF2A40000
    m.server.sessions.add(session, 10000, m.server.now_ms())
    c = Client(m)
    c.connect(session_id=session)
    assert [p.type for p in packets(link.take())] == [PacketType.REVALIDATE]
    m.reactor.advance(5 * TICK / 1000.0 + 0.01)  # nothing from the leader for syncLimit ticks
    assert m.zab.role == "looking"
    assert c.frames() == [] and c.transport.disconnecting


def _mntr(m: Member) -> dict[str, str]:
    from core.ops.fourletter import mntr
    return dict(line.split("\t", 1) for line in mntr(m.server).splitlines())


def test_java_leaders_txn_digests_match_our_tree(tmp_path: Path) -> None:
    """The Java leader's PROPOSALs carry TxnDigests (quorum.md 3.2); each equals our tree's digest
    after applying the txn, so mntr zk_digest_mismatches_count stays 0."""
    assert any(decode_txn(data).digest is not None for _, data in java_proposals("broadcast-leader-to-follower.hex"))
    m, link = fresh_follower(tmp_path)
    link.feed(read_hex("broadcast-leader-to-follower.hex"))
    assert m.server.tree.last_zxid == 0x10000000b
    assert _mntr(m)["zk_digest_mismatches_count"] == "0"


def test_a_wrong_txn_digest_is_counted_and_applied(tmp_path: Path) -> None:
    """A TxnDigest that disagrees with our tree is counted (and logged), as DataTree.compareDigest
    does; the txn is applied all the same."""
    m, link = fresh_follower(tmp_path)
    zxid, data = next((z, d) for z, d in java_proposals("broadcast-leader-to-follower.hex")
                      if decode_txn(d).digest is not None)
    link.send(PacketType.PROPOSAL, zxid, data[:-8] + struct.pack(">q", struct.unpack(">q", data[-8:])[0] ^ 1))
    link.send(PacketType.COMMIT, zxid)
    m.reactor.advance(0)
    assert m.server.tree.last_zxid == zxid
    assert _mntr(m)["zk_digest_mismatches_count"] == "1"
