"""The ``memory`` store: the log, snapshots and metadata in process memory, gone on close.

For tests and throw-away servers; ``storage=memory`` in zoo.cfg.
"""

from plugins.storage_memory.store import MemoryStore

__all__ = ["MemoryStore"]
