"""Hook implementations of the rocksdb store plugin."""

from __future__ import annotations

from core import BackendSpec, hookimpl
from plugins.storage_rocks.store import create_store


@hookimpl
def zk_storage_backends() -> list[BackendSpec]:
    """Offer the ``rocksdb`` store."""
    return [BackendSpec("rocksdb", "RocksDB database dataDir/rocksdb/", create_store)]
