"""Hook implementations of the sqlite store plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import BackendSpec, hookimpl

if TYPE_CHECKING:
    from core.config import Config


@hookimpl
def zk_storage_backends() -> list[BackendSpec]:
    """Offer the ``sqlite`` store."""
    return [BackendSpec("sqlite", "SQLite file dataDir/sqlite/zk.db, or the database at "
                        "sqlite.url=<SQLAlchemy URL>", _create_store)]


def _create_store(config: Config) -> Any:
    """The store's factory, imported only when this store is picked (start-up loads no
    database library it does not use)."""
    from plugins.storage_sqlite.store import create_store
    return create_store(config)
