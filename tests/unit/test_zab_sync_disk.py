"""The leader's sync choice from the on-disk log (quorum.md 2.4 case 4): a learner whose last
zxid is below the in-memory committed log gets a DIFF made from the logged txns when they are
at most snapshotSizeFactor x the snapshot's size, else a SNAP."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from plugins.consensus_zab.leader import DIFF, SNAP, TRUNC, sync_from_log, with_disk_log
from plugins.consensus_zab.packets import PacketType
from tests.unit.test_zab_leader import DIFF_HOSTS, Member, ackepoch, establish, followerinfo, session_txn
from tests.unit.test_zab_packets import packets

pytestmark = pytest.mark.timeout(30)



def _big_create(zxid: int) -> tuple[int, bytes]:
    """A create of /big with 20 KB of data: the snapshot is large beside the later txns."""
    from core.opcodes import OpCode
    from core.records import ACL, CreateTxn, Id
    from core.txn import Txn, encode_txn
    txn = Txn(0x100000000000001, 1, zxid, 1_700_000_000_000, OpCode.create,
              CreateTxn("/big", b"x" * 20000, [ACL(31, Id("world", "anyone"))], False, 1))
    return zxid, encode_txn(txn)


# 0x100000001 (a big create) .. 0x10000000a
LOGGED = [_big_create(0x100000001)] + [session_txn(0x100000000 + i) for i in range(2, 11)]


def test_with_disk_log_joins_or_refuses() -> None:
    committed = LOGGED[7:]
    disk = LOGGED[3:9]  # from the peer's last (0x100000004), overlapping the committed log
    merged = with_disk_log(0x100000004, disk, committed)
    assert merged is not None and [z for z, _ in merged] == [z for z, _ in LOGGED[3:]]
    plan = sync_from_log(0x100000004, 0x10000000a, merged)
    assert (plan.kind, plan.zxid, [z for z, _ in plan.txns]) == (DIFF, 0x10000000a, [z for z, _ in LOGGED[4:]])
    assert with_disk_log(0x100000004, None, committed) is None  # over the size limit
    assert with_disk_log(0x100000004, [], committed) is None
    assert with_disk_log(0x100000004, LOGGED[4:9], committed) is None  # the peer's last is not in the log
    assert with_disk_log(0x100000004, LOGGED[3:5], committed) is None  # a gap before the committed log
    # a new-epoch zxid: the log from that epoch's first txn on
    p = sync_from_log(0x100000000, 0x10000000a, with_disk_log(0x100000000, LOGGED, committed))
    assert (p.kind, len(p.txns)) == (DIFF, 10)
    assert p.txns[0] == LOGGED[0]
    assert TRUNC != DIFF


def _lagging_learner(tmp_path: Path, factor: str | None) -> list:
    m = Member(tmp_path, 2, DIFF_HOSTS, preload=LOGGED, epochs=(1, 1))
    if factor is not None:
        import dataclasses
        from types import MappingProxyType
        cfg = m.server.config
        cfg = dataclasses.replace(cfg, raw=MappingProxyType({**cfg.raw, "snapshotSizeFactor": factor}))
        m.server.config = m.zab.config = cfg
    f1 = establish(m, 1, accepted=1, last_zxid=0x10000000a, current=1)
    f1.take()
    # the committed log has moved on: only its last three txns are in memory
    m.zab.committed.entries = deque(list(m.zab.committed.entries)[-3:], maxlen=m.zab.committed.entries.maxlen)
    f3 = m.learner(40003)
    f3.feed(followerinfo(3, 1))
    f3.feed(ackepoch(0x100000004, 1))
    return packets(f3.take())


def test_learner_behind_the_committed_log_is_synced_from_the_disk_log(tmp_path: Path) -> None:
    out = _lagging_learner(tmp_path, None)
    assert [p.type for p in out[:2]] == [PacketType.LEADERINFO, PacketType.DIFF]
    assert out[1].zxid == 0x10000000a
    pairs = out[2:-1]
    assert [(p.type, p.zxid) for p in pairs] == [
        (t, z) for z, _ in LOGGED[4:] for t in (PacketType.PROPOSAL, PacketType.COMMIT)]
    assert pairs[0].data == LOGGED[4][1]
    assert out[-1].type == PacketType.NEWLEADER


@pytest.mark.parametrize("factor", ["0", "-1"])
def test_disk_log_over_the_size_limit_or_disabled_means_snap(tmp_path: Path, factor: str) -> None:
    out = _lagging_learner(tmp_path, factor)
    assert [p.type for p in out[:2]] == [PacketType.LEADERINFO, PacketType.SNAP]
    assert SNAP == PacketType.SNAP
