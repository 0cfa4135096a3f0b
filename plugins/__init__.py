"""zkserver's built-in plugins, each a package with a ``hooks`` module of hook implementations.

Beside them, one rule the file-keeping stores share, :func:`claim_store_dir`: a store keeps its
files under ``dataDir/<backend name>/``, marks that directory as its own with a ``STORE`` file
holding the backend name, and refuses a dataDir that holds another store's marked directory or
ZooKeeper's own ``version-2/``. A third-party store that follows the convention is recognised
by ours, and ours by it.
"""

from __future__ import annotations

import os

from core.interfaces import StoreError

#: The file naming a store directory's owner: ``dataDir/<name>/STORE`` holds ``<name>``.
MARKER = "STORE"


def claim_store_dir(data_dir: str | os.PathLike[str] | None, name: str) -> str:
    """Return ``dataDir/<name>``, created and marked as the `name` store's.

    Creates dataDir when it is missing. Raises StoreError, and creates nothing, when dataDir is
    not set or unreadable, or holds ZooKeeper's ``version-2/`` or another store's directory.
    """
    if not data_dir:
        raise StoreError(f"the {name} store needs dataDir to be set")
    try:
        os.makedirs(data_dir, exist_ok=True)
        entries = sorted(os.scandir(data_dir), key=lambda e: e.name)
        for entry in entries:
            if entry.name == name or not entry.is_dir():
                continue
            owner = _owner(entry.path)
            if owner is not None:
                raise StoreError(f"dataDir {data_dir} holds {entry.path}, the files of {owner}; "
                                 f"the {name} store will not open there")
        path = os.path.join(data_dir, name)
        os.makedirs(path, exist_ok=True)
        marker = os.path.join(path, MARKER)
        if not os.path.exists(marker):
            with open(marker, "w", encoding="utf-8") as f:
                f.write(name + "\n")
    except OSError as e:
        raise StoreError(f"cannot use dataDir {data_dir} for the {name} store: {e}") from e
    return path


def separate_log_dir(data_dir: str | os.PathLike[str] | None,
                     log_dir: str | os.PathLike[str] | None) -> bool:
    """Whether dataLogDir names a directory other than dataDir (where a store then keeps the
    files it syncs on every write, as ZooKeeper keeps its transaction log there)."""
    if not log_dir or not data_dir:
        return False
    return os.path.abspath(log_dir) != os.path.abspath(data_dir)


def _owner(path: str) -> str | None:
    """Who a directory in dataDir belongs to, or None when it is not a store's."""
    if os.path.basename(path) == "version-2":
        return "Apache ZooKeeper"
    try:
        with open(os.path.join(path, MARKER), encoding="utf-8") as f:
            return f"the {f.read().strip()} store"
    except FileNotFoundError:
        return None
