"""zkserver's protocol core: the public API for plugin authors.

A plugin is a module with hook implementations (see ``core.hookspecs`` for every hook)::

    from core import hookimpl, BackendSpec

    @hookimpl
    def zk_storage_backends():
        return [BackendSpec("mystore", "my store", MyStore)]

named under the ``zkserver.plugins`` entry-point group in the plugin's pyproject.toml::

    [project.entry-points."zkserver.plugins"]
    mystore = "mypackage.hooks"

``HOOK_API_VERSION`` numbers the hook API (the hooks of ``core.hookspecs``, their arguments and
the interfaces of ``core.interfaces``). It grows by one when a hook or an interface method is
removed or changes incompatibly; adding a hook, an optional argument or a method the core
only calls when present does not change it. A hook to be retired is first marked with pluggy's
``warn_on_impl`` for at least one release, so that a plugin implementing it gets a
DeprecationWarning in the server's log at start-up, and is removed with the next version.
A plugin that needs a given version checks it at import::

    import core
    if core.HOOK_API_VERSION != 1:
        raise ImportError(f"mystore needs hook API 1, this zkserver has {core.HOOK_API_VERSION}")

(which stops start-up with one line naming the plugin's distribution). Implementing a hook
name the server does not know, or a hook with argument names its specification lacks, stops
start-up too.
"""

import pluggy

from core.config import Config, ConfigError
from core.hookspecs import PROJECT
from core.interfaces import (
    AuthProvider, BackendSpec, CommitSink, Consensus, PeerInfo, Request, SaslAuthProvider,
    SaslServer, Store, StoreError, StoreInfo, WatchDelivery, WatchEvent, Watcher,
)
from core.records import Id

#: The version of the hook API (hooks, their arguments, the plugin interfaces); see above.
HOOK_API_VERSION = 1

#: The marker for hook implementations: ``@hookimpl`` (or ``@hookimpl(tryfirst=True)``, ...).
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "HOOK_API_VERSION", "AuthProvider", "BackendSpec", "CommitSink", "Config", "ConfigError",
    "Consensus", "Id", "PeerInfo", "Request", "SaslAuthProvider", "SaslServer", "Store", "StoreError", "StoreInfo", "WatchDelivery",
    "WatchEvent", "Watcher", "hookimpl",
]
