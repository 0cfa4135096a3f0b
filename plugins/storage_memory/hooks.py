"""Hook implementations of the memory store plugin."""

from __future__ import annotations

from core import BackendSpec, hookimpl
from plugins.storage_memory.store import create_store


@hookimpl
def zk_storage_backends() -> list[BackendSpec]:
    """Offer the ``memory`` store."""
    return [BackendSpec("memory", "in process memory, nothing kept across restarts",
                        create_store)]
