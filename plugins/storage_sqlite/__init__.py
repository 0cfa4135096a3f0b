"""The ``sqlite`` store (the default): log, snapshots and metadata in one database through
SQLAlchemy Core; an SQLite file under dataDir, or any database named by ``sqlite.url``.
"""

from typing import Any

__all__ = ["SqliteStore"]


def __getattr__(name: str) -> Any:
    """`SqliteStore`, imported on first use: a server that picks another store never loads
    SQLAlchemy (its import is a noticeable part of every start-up)."""
    if name == "SqliteStore":
        from plugins.storage_sqlite.store import SqliteStore
        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
