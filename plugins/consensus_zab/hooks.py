"""Hook implementations of the ZAB consensus plugin."""

from __future__ import annotations

from core import BackendSpec, hookimpl
from plugins.consensus_zab.consensus import ZabConsensus


@hookimpl
def zk_consensus_backends() -> list[BackendSpec]:
    return [BackendSpec("zab", "a member of a ZooKeeper 3.8 ensemble (ZAB: Fast Leader Election, "
                        "learner protocol), Java members welcome", ZabConsensus)]
