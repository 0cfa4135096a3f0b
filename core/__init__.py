"""zkserver's protocol core: the public API for plugin authors.

A plugin is a module with hook implementations (see ``core.hookspecs`` for every hook)::

    from core import hookimpl, BackendSpec

    @hookimpl
    def zk_storage_backends():
        return [BackendSpec("mystore", "my store", MyStore)]

named under the ``zkserver.plugins`` entry-point group in the plugin's pyproject.toml.
"""

import pluggy

from core.hookspecs import PROJECT
from core.interfaces import (
    AuthProvider, BackendSpec, CommitSink, Consensus, PeerInfo, Request, SaslAuthProvider,
    SaslServer, Store, StoreError, StoreInfo, WatchDelivery, WatchEvent, Watcher,
)

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "AuthProvider", "BackendSpec", "CommitSink", "Consensus", "PeerInfo", "Request",
    "SaslAuthProvider", "SaslServer", "Store", "StoreError", "StoreInfo", "WatchDelivery",
    "WatchEvent", "Watcher", "hookimpl",
]
