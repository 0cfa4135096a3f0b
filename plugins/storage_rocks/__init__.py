"""The ``rocksdb`` store: log, snapshots and metadata as keys of one RocksDB database
(through rocksdict) under dataDir/rocksdb/.
"""

from typing import Any

__all__ = ["RocksStore"]


def __getattr__(name: str) -> Any:
    """`RocksStore`, imported on first use: a server that picks another store never loads
    rocksdict (its import is a noticeable part of every start-up)."""
    if name == "RocksStore":
        from plugins.storage_rocks.store import RocksStore
        return RocksStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
