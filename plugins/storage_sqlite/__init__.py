"""The ``sqlite`` store (the default): log, snapshots and metadata in one database through
SQLAlchemy Core; an SQLite file under dataDir, or any database named by ``sqlite.url``.
"""

from plugins.storage_sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
