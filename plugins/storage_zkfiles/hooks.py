"""Hook implementations of the zkfiles store plugin."""

from __future__ import annotations

from core import BackendSpec, hookimpl
from plugins.storage_zkfiles.store import create_store


@hookimpl
def zk_storage_backends() -> list[BackendSpec]:
    """Offer the ``zkfiles`` store."""
    return [BackendSpec("zkfiles", "Apache ZooKeeper's own files: dataDir/version-2/ snapshots "
                        "and epochs, dataLogDir/version-2/ logs (zkfiles.preAllocSize=<KiB>)",
                        create_store)]
