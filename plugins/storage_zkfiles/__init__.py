"""The ``zkfiles`` store: Apache ZooKeeper's own data directory (``dataDir/version-2/``
snapshots and epoch files, ``dataLogDir/version-2/`` transaction logs), so that zkserver and
Apache ZooKeeper 3.8 can start on each other's data directories.
"""

from plugins.storage_zkfiles.store import ZkFilesStore

__all__ = ["ZkFilesStore"]
