"""Bad input on the quorum and election ports, and configuration problems, against a running
3-member ensemble of ours: each bad connection is closed with one log line naming the peer
(its address, and its sid when it said one), and the ensemble goes on serving with the same
leader and epoch.

Covered: garbage bytes and an unknown protocol version on both ports, a bad election frame
length, an undecodable notification, a stale-epoch LOOKING notification, a learner sid missing
from the config (logged, as ZooKeeper does), a learner breaking the handshake order, an
election peer claiming the receiver's own sid (a duplicate myid), a member whose myid is not in
its server list (refuses to start, one line), and a member whose zoo.cfg lists an extra server.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest
from kazoo.client import KazooClient

from plugins.consensus_zab.common import packet
from plugins.consensus_zab.packets import InitialMessage, LearnerInfo, Notification, PacketType
from tests.ensemble.conftest import Ensemble, Member, wait_for

pytestmark = pytest.mark.timeout(60)


def lines_with(m: Member, needle: str) -> list[str]:
    return [line for line in m.log_text().splitlines() if needle in line]


def send_and_wait_closed(host: str, port: int, data: bytes, timeout: float = 10.0) -> int:
    """Connect, send `data`, wait for the peer to close; our local port (to find the log line)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        local = s.getsockname()[1]
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not s.recv(65536):
                    return local
            except ConnectionResetError:
                return local
            except socket.timeout:
                break
        raise AssertionError(f"{host}:{port} did not close the connection after {data[:16]!r}")


def one_line(m: Member, needle: str, what: str) -> str:
    found = wait_for(lambda: lines_with(m, needle), timeout=5, what=what)
    assert len(found) == 1, found
    return found[0]


def current_epoch(e: Ensemble) -> int:
    """The epoch of the ensemble's zxids, after one write."""
    zk = KazooClient(hosts=e.hosts, timeout=4.0)
    zk.start(timeout=10)
    try:
        path = zk.create("/epoch-", b"", sequence=True)
        return zk.exists(path).czxid >> 32
    finally:
        zk.stop()
        zk.close()


def serving_unchanged(e: Ensemble, leader: Member, epoch: int) -> None:
    assert e.wait_serving(timeout=10) is leader
    zk = KazooClient(hosts=e.hosts, timeout=4.0)
    zk.start(timeout=10)
    try:
        zk.create("/still-serving-", b"", sequence=True)
    finally:
        zk.stop()
        zk.close()
    epochs = {m.sid: (m.zxid() or 0) >> 32 for m in e.members}
    assert set(epochs.values()) == {epoch}, (epoch, epochs, leader.log_tail(12))


def test_garbage_and_bad_packets_on_quorum_and_election_ports(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="memory").start()
    leader = e.leader()
    follower = e.followers()[0]
    epoch = current_epoch(e)
    host = leader.host

    # quorum port: garbage (an HTTP request: an absurd packet length)
    p = send_and_wait_closed(host, leader.quorum_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\xff" * 64)
    assert "malformed quorum packet" in one_line(leader, f":{p}:", "the quorum garbage line")

    # quorum port: a well-formed FOLLOWERINFO with an unknown learner protocol version from a
    # sid not in the config (logged), then a packet out of order (dropped, one line)
    info = LearnerInfo(99, 0x7FFF0000, 0).encode()
    with socket.create_connection((host, leader.quorum_port), timeout=10) as s:
        local = s.getsockname()[1]
        s.sendall(packet(PacketType.FOLLOWERINFO, 1 << 32, info))
        wait_for(lambda: lines_with(leader, f"learner sid 99 at 127.0.0.1:{local} is not in our configuration")
                 or lines_with(leader, f":{local} is not in our configuration"), timeout=5, what="not in config line")
        s.sendall(packet(PacketType.ACK, 5 << 32))  # not an ACKEPOCH
        s.settimeout(10)
        while s.recv(65536):
            pass
    assert len(lines_with(leader, f":{local}:")) == 1, lines_with(leader, f":{local}")

    # election port of a follower: garbage, then an unknown protocol version
    for data, why in ((b"\x00\x00\x00\x07garbage-garbage-garbage", None),
                      (struct.pack(">qqi", -65530, 9, 4) + b"x:10", "unsupported election protocol version")):
        p = send_and_wait_closed(follower.host, follower.election_port, data) if why else None
        if why:
            line = one_line(follower, f":{p}", "the election line")
            assert why in line and "connection closed" in line, line
        else:
            # a positive first long is an old peer's bare sid (here 7...): then frame garbage
            with socket.create_connection((follower.host, follower.election_port), timeout=10) as s:
                local = s.getsockname()[1]
                s.sendall(struct.pack(">q", 99) + struct.pack(">i", 0))  # sid 99, then frame length 0
                s.settimeout(10)
                try:
                    while s.recv(65536):
                        pass
                except ConnectionResetError:
                    pass
            line = one_line(follower, f":{local}", "the bad frame line")
            assert "frame length 0" in line and "sid 99" in line, line

    # election port: an undecodable notification, then a stale-epoch LOOKING vote (answered,
    # changes nothing), from a non-voter sid higher than every member's (so kept)
    with socket.create_connection((leader.host, leader.election_port), timeout=10) as s:
        local = s.getsockname()[1]
        s.sendall(InitialMessage(99, "127.0.0.1:1").encode())
        s.sendall(struct.pack(">i", 3) + b"\x00\x00\x00")
        stale = Notification(0, 99, 0, 1, 0).encode()  # LOOKING, round 1, epoch 0: far behind
        s.sendall(struct.pack(">i", len(stale)) + stale)
        s.settimeout(5)
        answer = s.recv(65536)
        assert answer, "a non-voter's notification is answered with the current vote"
        (length,) = struct.unpack_from(">i", answer, 0)
        vote = Notification.decode(answer[4:4 + length])
        assert vote.state == 2 and vote.leader == leader.sid, vote  # LEADING, itself
    line = one_line(leader, f":{local}", "the undecodable notification line")
    assert "undecodable notification" in line, line

    serving_unchanged(e, leader, epoch)


def test_duplicate_myid_wrong_myid_and_a_disagreeing_config(ensemble_factory) -> None:
    e = ensemble_factory(3, storage="memory").start()
    leader = e.leader()
    epoch = current_epoch(e)

    # an election connection claiming the receiver's own sid (a second member with its myid)
    target = e.followers()[0]
    p = send_and_wait_closed(target.host, target.election_port,
                             InitialMessage(target.sid, "127.0.0.1:1").encode())
    line = one_line(target, f":{p}", "the duplicate sid line")
    assert f"claims our own server id {target.sid}" in line, line

    # a member whose myid is not in its server list refuses to start, with one line
    stray = Member(e, 7, "127.0.0.250", java=False)
    stray.config = lambda: "".join(  # type: ignore[method-assign]
        line + "\n" for line in type(stray).config(stray).splitlines() if not line.startswith("server.7"))
    stray.start()
    try:
        assert stray.proc is not None
        rc = stray.proc.wait(30)
        assert rc != 0
        bad = [line for line in stray.log_text().splitlines() if "server id 7 has no server.7 line" in line]
        assert len(bad) == 1, stray.log_tail()
    finally:
        stray.stop()

    # a member whose zoo.cfg disagrees (an extra voter server.4 that does not exist): with
    # reconfig off each member counts with its own list, so it finds no quorum (2 of 4) and
    # stays LOOKING, as ZooKeeper's would; the others go on; with the list fixed it joins
    m3 = e.followers()[-1]
    m3.stop()
    original = type(m3).config
    m3.config = lambda: original(m3) + f"server.4=127.0.0.251:{m3.quorum_port + 1}:{m3.quorum_port + 2}\n"  # type: ignore[method-assign]
    m3.start()
    others = [m for m in e.members if m is not m3]
    time.sleep(3)
    assert m3.alive() and m3.mode() is None
    assert e.wait_serving(others, timeout=10) is leader
    m3.stop()
    m3.config = lambda: original(m3)  # type: ignore[method-assign]
    m3.start()
    e.wait_serving(timeout=30)
    assert m3.mode() == "follower"
    serving_unchanged(e, leader, epoch)
