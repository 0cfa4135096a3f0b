"""Build the plugin manager: hook specs, entry-point plugins, and backends picked by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

from core import hookspecs
from core.config import Config, ConfigError
from core.interfaces import AuthProvider, BackendSpec

ENTRY_POINT_GROUP = "zkserver.plugins"


class PluginError(Exception):
    """A plugin failed to load or offers something inconsistent; the message names it."""


def build_plugin_manager(extra_plugins: Iterable[Any] = ()) -> pluggy.PluginManager:
    """Register the hook specs, every `zkserver.plugins` entry point, and `extra_plugins`
    (modules or objects, e.g. from tests); unknown hook names are an error (check_pending)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as e:  # a plugin that raises on import: name it, stop start-up
        raise PluginError(f"a zkserver plugin failed to load: {e!r}") from e
    for plugin in extra_plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(str(e)) from e
    return pm


def _backends(answers: list[list[BackendSpec]], family: str) -> dict[str, BackendSpec]:
    found: dict[str, BackendSpec] = {}
    for specs in answers:
        for spec in specs:
            if spec.name in found:
                raise PluginError(f"two plugins offer the {family} backend {spec.name!r}")
            found[spec.name] = spec
    return found


def storage_backends(pm: pluggy.PluginManager) -> dict[str, BackendSpec]:
    """Every store offered by an installed plugin, by name."""
    return _backends(pm.hook.zk_storage_backends(), "storage")


def consensus_backends(pm: pluggy.PluginManager) -> dict[str, BackendSpec]:
    """Every consensus backend offered by an installed plugin, by name."""
    return _backends(pm.hook.zk_consensus_backends(), "consensus")


def pick(backends: dict[str, BackendSpec], name: str, key: str, config: Config) -> BackendSpec:
    """The backend zoo.cfg names under `key`, or a ConfigError naming the installed ones."""
    spec = backends.get(name)
    if spec is None:
        where = f"{config.source}:{config.lines[key]}: " if key in config.lines else ""
        installed = ", ".join(sorted(backends)) or "none"
        raise ConfigError(f"{where}{key}: no backend named {name!r} is installed (installed: {installed})")
    return spec


def auth_providers(pm: pluggy.PluginManager, config: Config) -> dict[str, AuthProvider]:
    """Every auth scheme offered by an installed plugin, by scheme."""
    found: dict[str, AuthProvider] = {}
    for providers in pm.hook.zk_auth_providers(config=config):
        for p in providers:
            if p.scheme in found:
                raise PluginError(f"two plugins offer the auth scheme {p.scheme!r}")
            found[p.scheme] = p
    return found
