"""ZAB's packets decode from, and re-encode to, the bytes a live ZooKeeper 3.8 ensemble sent."""

from __future__ import annotations

import struct

import pytest

from core.jute import JuteError
from core.records import Id
from core.txn import decode_txn, encode_txn
from plugins.consensus_zab.common import packet, read_packet
from plugins.consensus_zab.packets import (
    InitialMessage, LearnerInfo, Notification, PacketType, QuorumPacket, ServerState,
)
from tests.fixtures.hexfile import read_hex

QUORUM_STREAMS = [
    "learner-handshake-leader-to-follower-diff.hex",
    "learner-handshake-leader-to-follower-fresh.hex",
    "learner-handshake-follower-to-leader.hex",
    "learner-handshake-leader-to-follower-trunc.hex",
    "learner-handshake-follower-to-leader-trunc.hex",
    "broadcast-leader-to-follower.hex",
    "broadcast-follower-to-leader.hex",
    "python-leader-to-java-follower.hex",
    "java-follower-to-python-leader.hex",
    "revalidate-pair.hex",
]


def packets(data: bytes) -> list[QuorumPacket]:
    out, off = [], 0
    while off < len(data):
        try:
            p, end = QuorumPacket.decode(data, off)
        except JuteError:
            break  # a capture may end mid-packet
        assert p.encode() == data[off:end]
        out.append(p)
        off = end
    return out


@pytest.mark.parametrize("name", QUORUM_STREAMS)
def test_quorum_streams_round_trip(name: str) -> None:
    found = packets(read_hex(name))
    assert found and all(p.type in PacketType._value2member_map_ for p in found)
    for p in found:
        if p.type in (PacketType.PROPOSAL, PacketType.INFORM) and p.data:
            txn = decode_txn(p.data)
            assert txn.zxid == p.zxid and encode_txn(txn) == p.data
        if p.type in (PacketType.FOLLOWERINFO, PacketType.OBSERVERINFO):
            info = LearnerInfo.decode(p.data or b"")[0]
            assert info.protocolVersion == 0x10000 and info.encode() == p.data


@pytest.mark.parametrize("name", QUORUM_STREAMS)
def test_read_packet_and_packet_agree_with_the_jute_codec(name: str) -> None:
    """The header shortcuts (no authinfo) read and write what the generated codec does, on a
    live ensemble's bytes, byte by byte as they arrive too."""
    data = read_hex(name)
    expected = packets(data)
    for p in expected:
        assert packet(p.type, p.zxid, p.data, p.authinfo) == p.encode()
    found, off = [], 0
    while (read := read_packet(data, off)) is not None:
        found.append(read[0])
        off = read[1]
    assert found == expected
    for end in range(len(data[:200])):  # a prefix: whole packets, then None
        off, count = 0, 0
        while (read := read_packet(data[:end], off)) is not None:
            off, count = read[1], count + 1
        assert found[:count] == expected[:count]


def test_read_packet_with_authinfo_and_bad_lengths() -> None:
    p = QuorumPacket(PacketType.REQUEST, -1, b"body", [Id("digest", "u:x"), Id("ip", "1.2.3.4")])
    assert read_packet(p.encode() + b"rest", 0) == (p, len(p.encode()))
    assert read_packet(QuorumPacket(PacketType.ACK, 5, b"", None).encode(), 0)[0].data == b""
    with pytest.raises(JuteError):
        read_packet(struct.pack(">iqi", 3, 1, -2) + b"\xff" * 4, 0)


def test_authinfo_from_a_remembered_tuple_or_a_changing_list_encodes_as_the_codec_does() -> None:
    ids = (Id("ip", "127.0.0.1"), Id("digest", "u:x"))
    first = packet(PacketType.REQUEST, -1, b"body", ids)
    assert first == QuorumPacket(PacketType.REQUEST, -1, b"body", list(ids)).encode()
    assert packet(PacketType.REQUEST, -1, b"other", ids) == QuorumPacket(
        PacketType.REQUEST, -1, b"other", list(ids)).encode()
    # a list may change between packets: never taken from the cache
    ids_list = [Id("ip", "10.0.0.1")]
    before = packet(PacketType.REQUEST, -1, b"", ids_list)
    ids_list.append(Id("digest", "v:y"))
    assert packet(PacketType.REQUEST, -1, b"", ids_list) == QuorumPacket(
        PacketType.REQUEST, -1, b"", ids_list).encode() != before


def test_diff_handshake_sequence() -> None:
    kinds = [p.type for p in packets(read_hex("learner-handshake-leader-to-follower-diff.hex"))]
    assert kinds[:2] == [PacketType.LEADERINFO, PacketType.DIFF]
    assert kinds[2:14] == [PacketType.PROPOSAL, PacketType.COMMIT] * 6
    assert kinds[14:16] == [PacketType.NEWLEADER, PacketType.UPTODATE]


def test_initial_message_and_notification() -> None:
    data = read_hex("fle-initial-message-and-looking-notification.hex")
    msg, used = InitialMessage.decode(data)
    assert msg == InitialMessage(3, "127.0.0.3:3888") and msg.encode() == data[:used]
    (length,) = struct.unpack_from(">i", data, used)
    body = data[used + 4:used + 4 + length]
    n = Notification.decode(body)
    assert (n.state, n.leader, n.zxid, n.election_epoch, n.peer_epoch, n.version) == (
        ServerState.LOOKING, 3, 0x100000019, 1, 2, 2)
    assert n.config.startswith(b"server.1=") and n.encode() == body


def test_initial_message_waits_for_more_bytes_and_refuses_garbage() -> None:
    data = InitialMessage(2, "127.0.0.2:3888").encode()
    assert InitialMessage.decode(data[:20]) == (None, 0)
    with pytest.raises(JuteError):
        InitialMessage.decode(struct.pack(">qqi", -65536, 1, 0))
    with pytest.raises(JuteError):
        InitialMessage.decode(struct.pack(">qqi", -7, 1, 5) + b"abcde")


def test_short_notification_forms() -> None:
    full = Notification(ServerState.FOLLOWING, 2, 0x200000003, 2, 2).encode()
    assert Notification.decode(full[:28]).peer_epoch == 2  # from the zxid
    assert Notification.decode(full[:36]).version == 0
    with pytest.raises(JuteError):
        Notification.decode(full[:20])
