"""The ``rocksdb`` store: log, snapshots and metadata as keys of one RocksDB database
(through rocksdict) under dataDir/rocksdb/.
"""

from plugins.storage_rocks.store import RocksStore

__all__ = ["RocksStore"]
