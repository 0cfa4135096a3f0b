"""ZooKeeper 3.8's server-to-server messages (quorum.md sections 1 and 2).

The quorum port carries QuorumPackets back to back with no length prefix; the election port
carries an InitialMessage, then int-length frames each holding one Notification.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from core.jute import INT, Int, JuteError, Long, Record, record
from core.records import Id

PROTOCOL_VERSION_V1 = -65536  # 0xffffffffffff0000, election InitialMessage
LEARNER_PROTOCOL_VERSION = 0x10000
NOTIFICATION_VERSION = 2
MAX_ELECTION_FRAME = 524288
MAX_ADDRESS_LENGTH = 2048


class PacketType(enum.IntEnum):
    """Leader's packet constants (quorum.md 2.2)."""

    REQUEST = 1
    PROPOSAL = 2
    ACK = 3
    COMMIT = 4
    PING = 5
    REVALIDATE = 6
    SYNC = 7
    INFORM = 8
    COMMITANDACTIVATE = 9
    NEWLEADER = 10
    FOLLOWERINFO = 11
    UPTODATE = 12
    DIFF = 13
    TRUNC = 14
    SNAP = 15
    OBSERVERINFO = 16
    LEADERINFO = 17
    ACKEPOCH = 18
    INFORMANDACTIVATE = 19


class ServerState(enum.IntEnum):
    """QuorumPeer.ServerState as sent in notifications."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


@record
class QuorumPacket(Record):
    type: Int
    zxid: Long
    data: bytes | None
    authinfo: list[Id] | None


@record
class LearnerInfo(Record):
    serverid: Long
    protocolVersion: Int
    configVersion: Long


_INITIAL = struct.Struct(">qqi")
_NOTIFICATION = struct.Struct(">iqqqq")  # state, leader, zxid, electionEpoch, peerEpoch


@dataclass(frozen=True, slots=True)
class InitialMessage:
    """First bytes on an election connection: who is calling, and where to call it back."""

    sid: int
    address: str
    protocol_version: int = PROTOCOL_VERSION_V1

    def encode(self) -> bytes:
        addr = self.address.encode()
        return _INITIAL.pack(self.protocol_version, self.sid, len(addr)) + addr

    @classmethod
    def decode(cls, buf: bytes) -> tuple[InitialMessage | None, int]:
        """(message, bytes used), or (None, 0) while more bytes are needed. A first long >= 0
        is an old peer's bare sid. Raises JuteError on a bad version or address length."""
        if len(buf) < 8:
            return None, 0
        version = struct.unpack_from(">q", buf, 0)[0]
        if version >= 0:
            return cls(version, "", version), 8
        if version != PROTOCOL_VERSION_V1:
            raise JuteError(f"unsupported election protocol version {version}")
        if len(buf) < _INITIAL.size:
            return None, 0
        _, sid, n = _INITIAL.unpack_from(buf, 0)
        if not 0 < n <= MAX_ADDRESS_LENGTH:
            raise JuteError(f"bad address length {n}")
        if len(buf) < _INITIAL.size + n:
            return None, 0
        return cls(sid, buf[_INITIAL.size:_INITIAL.size + n].decode("utf-8", "replace"), version), _INITIAL.size + n


@dataclass(frozen=True, slots=True)
class Notification:
    """A Fast Leader Election vote (FastLeaderElection.buildMsg)."""

    state: int
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    version: int = NOTIFICATION_VERSION
    config: bytes = b""

    def encode(self) -> bytes:
        """The frame body (the int length in front is the connection's)."""
        return (_NOTIFICATION.pack(self.state, self.leader, self.zxid, self.election_epoch, self.peer_epoch)
                + INT.pack(self.version) + INT.pack(len(self.config)) + self.config)

    @classmethod
    def decode(cls, body: bytes) -> Notification:
        """Accepts the 28-, 40- and full-length forms (quorum.md 1.2); raises JuteError on others."""
        n = len(body)
        if n < 28:
            raise JuteError(f"notification of {n} bytes")
        state, leader, zxid, epoch = struct.unpack_from(">iqqq", body, 0)
        if state not in ServerState._value2member_map_:
            raise JuteError(f"unknown server state {state}")
        if n < 36:
            return cls(state, leader, zxid, epoch, zxid >> 32, 0)
        peer_epoch = struct.unpack_from(">q", body, 28)[0]
        if n < 40:
            return cls(state, leader, zxid, epoch, peer_epoch, 0)
        version = INT.unpack_from(body, 36)[0]
        config = b""
        if version > 1 and n >= 44:
            length = INT.unpack_from(body, 40)[0]
            if length < 0 or 44 + length > n:
                raise JuteError(f"bad config length {length}")
            config = body[44:44 + length]
        return cls(state, leader, zxid, epoch, peer_epoch, version, config)
