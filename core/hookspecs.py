"""Every hook a zkserver plugin can implement, grouped by family.

A plugin is a module of functions decorated with ``core.hookimpl`` whose names are the hooks
below, registered under the ``zkserver.plugins`` entry-point group::

    [project.entry-points."zkserver.plugins"]
    mystore = "mypackage.hooks"

pluggy assembles the plugins at start-up; the request path never calls a hook (a hook call costs
microseconds), it calls the plain objects the hooks returned. All hooks are called with keyword
arguments and on the reactor thread during start-up unless a hook says otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from core.config import Config
    from core.interfaces import AuthProvider, BackendSpec, WatchDelivery

PROJECT = "zkserver"
hookspec = pluggy.HookspecMarker(PROJECT)

# -- lifecycle --------------------------------------------------------------------------------


@hookspec
def zk_configure(config: Config) -> None:
    """Called once, after zoo.cfg is read and before any backend is built.

    :param config: the parsed configuration; a plugin reads its own keys from
        ``config.plugin_options(<name>)`` (zoo.cfg keys ``<name>.<key>``). Raise
        ``core.config.ConfigError`` to stop start-up with a message for the operator.
    """


@hookspec
def zk_server_started(server: Any) -> None:
    """Called once the server listens for clients.

    :param server: the ``core.server.ZKServer``: its ``tree``, ``sessions``, ``config``.
    """


@hookspec
def zk_server_stopping(server: Any) -> None:
    """Called when the server begins to shut down, before the store is closed.

    :param server: the ``core.server.ZKServer`` that is stopping.
    """


# -- persistence ------------------------------------------------------------------------------


@hookspec
def zk_storage_backends() -> list[BackendSpec]:
    """Offer stores. Every plugin's answers are collected; zoo.cfg's ``storage=<name>`` picks one.

    :return: ``BackendSpec(name, description, factory)`` entries, where
        ``factory(config: Config) -> core.interfaces.Store``. The store keeps its files under
        ``dataDir/<name>/`` and must satisfy the Store contract (``core.testing.store_suite``
        checks it).
    """


# -- consensus --------------------------------------------------------------------------------


@hookspec
def zk_consensus_backends() -> list[BackendSpec]:
    """Offer consensus backends; zoo.cfg's ``consensus=<name>`` picks one (default
    ``standalone`` without ``server.N`` lines, ``zab`` with them).

    :return: ``BackendSpec`` entries whose ``factory(config, store, server)`` returns a
        ``core.interfaces.Consensus``; ``server`` is the ``CommitSink`` receiving committed txns
        and also gives the ``tree`` and ``sessions`` a backend that makes txns needs.
    """


# -- auth -------------------------------------------------------------------------------------


@hookspec
def zk_auth_providers(config: Config) -> list[AuthProvider]:
    """Offer ACL schemes. Every plugin's answers are collected; a scheme named twice stops
    start-up.

    :param config: the parsed configuration (a scheme that needs settings, such as super
        digest or SASL users, reads them here and returns [] when it is not configured).
    :return: ``core.interfaces.AuthProvider`` objects, one per scheme.
    """


# -- watch delivery ---------------------------------------------------------------------------


@hookspec
def zk_watch_delivery(config: Config, server: Any) -> WatchDelivery | None:
    """Offer a stage of watch delivery. Every plugin's answer is collected and the stages are
    chained in pluggy's call order; the built-in stage that writes to client connections is
    registered ``trylast`` and so comes last.

    :param config: the parsed configuration.
    :param server: the ``core.server.ZKServer``.
    :return: a ``core.interfaces.WatchDelivery``, or None to take no part.
    """
