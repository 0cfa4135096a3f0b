"""A 5-member ensemble of ours: it loses two members (the leader among them) and goes on with
three, a linearizable history throughout; the two come back and catch up; all five end with
the same tree. Bounded (pytest-timeout 60; ~20-30 s on 2 cores), seeded, every process stopped
by PID (the ensemble_factory fixture)."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient

from tests.ensemble.conftest import wait_for
from tests.ensemble.test_faults import Workload, assert_same_trees

pytestmark = pytest.mark.timeout(60)


def test_five_members_lose_two_and_continue(ensemble_factory) -> None:
    e = ensemble_factory(5, storage="memory").start(timeout=40)
    leader = e.leader()
    assert len(e.followers()) == 4
    # clients homed on three members that survive, so the history stays busy
    follower_a, follower_b = e.followers()[:2]
    survivors = [m for m in e.members if m not in (leader, follower_a)]
    w = Workload(e, survivors, seed=7).start()
    try:
        w.progress(30, 15, "writes with five")
        follower_a.kill()
        w.progress(20, 20, "writes with four")
        leader.kill()  # two down: three of five are still a quorum
        new = e.wait_serving(survivors, timeout=30)
        assert new not in (leader, follower_a)
        w.progress(30, 20, "writes with three of five")
        leader.start()
        follower_a.start()
        e.wait_serving(timeout=30)
        w.progress(20, 20, "writes with five again")
    finally:
        w.stop()
    w.check()
    assert_same_trees(e)
    assert follower_b in e.members


def _mntr(m) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in m.four_letter("mntr").splitlines() if "\t" in line)


def test_ensemble_fields_of_srvr_and_mntr(ensemble_factory) -> None:
    """srvr Mode, mntr zk_server_state / zk_peer_state / zk_quorum_size on every member and the
    leader's zk_learners / zk_synced_followers ..., with the keys Apache 3.8's 3-member
    ensemble shows (captured from Debian's 3.8.0; zk_followers is 3.4's, 3.8 has zk_learners)."""
    e = ensemble_factory(3, storage="memory").start()
    leader = e.leader()
    for m in e.members:
        mode = "leader" if m is leader else "follower"
        assert f"Mode: {mode}\n" in m.four_letter("srvr")
        v = _mntr(m)
        assert v["zk_server_state"] == mode
        assert v["zk_peer_state"] == ("leading" if m is leader else "following") + " - broadcast"
        assert v["zk_quorum_size"] == "3"
        leader_keys = {"zk_learners", "zk_synced_followers", "zk_synced_non_voting_followers",
                       "zk_synced_observers", "zk_pending_syncs", "zk_leader_uptime",
                       "zk_last_proposal_size", "zk_max_proposal_size", "zk_min_proposal_size"}
        if m is leader:
            assert leader_keys <= v.keys()
            assert (v["zk_learners"], v["zk_synced_followers"], v["zk_synced_observers"]) == ("2", "2", "0")
            assert int(v["zk_leader_uptime"]) >= 0
        else:
            assert not leader_keys & v.keys()
    zk = KazooClient(hosts=leader.hosts, timeout=4.0)
    zk.start(timeout=10)
    try:
        zk.create("/sized", b"x" * 100)
    finally:
        zk.stop()
        zk.close()
    v = _mntr(leader)
    assert int(v["zk_max_proposal_size"]) > 100 and 0 < int(v["zk_min_proposal_size"]) <= int(v["zk_last_proposal_size"])
    follower = e.followers()[0]
    follower.kill()
    wait_for(lambda: _mntr(leader)["zk_synced_followers"] == "1", timeout=10, what="one synced follower")
