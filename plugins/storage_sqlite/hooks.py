"""Hook implementations of the sqlite store plugin."""

from __future__ import annotations

from core import BackendSpec, hookimpl
from plugins.storage_sqlite.store import create_store


@hookimpl
def zk_storage_backends() -> list[BackendSpec]:
    """Offer the ``sqlite`` store."""
    return [BackendSpec("sqlite", "SQLite file dataDir/sqlite/zk.db, or the database at "
                        "sqlite.url=<SQLAlchemy URL>", create_store)]
