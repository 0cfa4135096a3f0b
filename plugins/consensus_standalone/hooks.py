"""Hook implementations of the standalone consensus plugin."""

from __future__ import annotations

from core import BackendSpec, hookimpl
from plugins.consensus_standalone.standalone import StandaloneConsensus


@hookimpl
def zk_consensus_backends() -> list[BackendSpec]:
    return [BackendSpec("standalone", "one member, no replication (ZooKeeper's standalone mode)",
                        StandaloneConsensus)]
