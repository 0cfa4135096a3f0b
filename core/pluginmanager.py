"""Build the plugin manager: hook specs, entry-point plugins, and backends picked by name.

Every problem a plugin causes at start-up is a `PluginError` whose message is one line naming
the plugin (its entry-point name) and the distribution that installed it, e.g.
``plugin 'mystore' (distribution zkserver-mystore 0.2): unknown hook 'zk_storage_backend'
(did you mean 'zk_storage_backends'?)``. twistd prints it and exits with status 2 (core.tap);
the ``zkserver`` tool prints it and exits with status 1. The cases:

- the plugin's module raises on import (or its entry point names nothing);
- a hook implementation is not valid: an unknown hook name, or argument names its hook
  specification does not have (pluggy's validation, at registration);
- two plugins register the same entry-point name, offer the same backend name in one family, or
  the same auth scheme;
- a backend-offering hook or a backend's factory raises;
- the store a plugin's factory built raises in ``open()`` (reported as a ``StoreError`` naming
  the distribution, since opening happens on the storage thread after start-up began);
- anything else raised in a third-party plugin's code while the server is built: `blame`
  finds the plugin in the traceback (core.tap uses it).

A ``ConfigError`` raised by a plugin passes unchanged (it names the zoo.cfg key already), and so
does a built-in store's ``StoreError`` (it names the file already).
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from core import HOOK_API_VERSION, hookspecs
from core.config import Config, ConfigError
from core.interfaces import AuthProvider, BackendSpec, StoreError

ENTRY_POINT_GROUP = "zkserver.plugins"
#: The distribution whose plugins are the server's own (their StoreErrors need no attribution).
BUILTIN_DISTRIBUTION = "zkserver"


class PluginError(Exception):
    """A plugin failed to load or offers something inconsistent; the one-line message names
    the plugin and its distribution."""


class ZKPluginManager(pluggy.PluginManager):
    """pluggy's PluginManager that remembers which distribution installed each plugin."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        #: plugin name -> the distribution that installed it (absent for extra plugins)
        self.distributions: dict[str, importlib.metadata.Distribution | None] = {}

    def describe(self, plugin: object) -> str:
        """``plugin 'name' (distribution dist 1.0)``: how errors name `plugin`."""
        name = self.get_name(plugin)
        if name is None or name not in self.distributions:  # an extra plugin (a test's)
            own = getattr(plugin, "__name__", None) or type(plugin).__name__
            return f"plugin {own!r} (not installed)"
        return f"plugin {name!r} ({_dist_label(self.distributions[name])})"

    def is_builtin(self, plugin: object) -> bool:
        """Whether `plugin` comes with the server itself (the ``zkserver`` distribution)."""
        dist = self.distributions.get(self.get_name(plugin) or "")
        return dist is not None and dist.name == BUILTIN_DISTRIBUTION


def _dist_label(dist: importlib.metadata.Distribution | None) -> str:
    return f"distribution {dist.name} {dist.version}" if dist is not None else "no distribution"


def build_plugin_manager(extra_plugins: Iterable[Any] = ()) -> ZKPluginManager:
    """Register the hook specs, every `zkserver.plugins` entry point, and `extra_plugins`
    (modules or objects, e.g. from tests); unknown hook names are an error (check_pending).

    :raises PluginError: a plugin failed to import, registers a name another distribution
        registers too, or implements a hook that is unknown or has wrong argument names.
    """
    pm = ZKPluginManager()
    pm.add_hookspecs(hookspecs)
    loaded: dict[str, tuple[str, str]] = {}  # name -> (module, distribution)
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda ep: (ep.name, ep.value)):
        where = _dist_label(ep.dist)
        if ep.name in loaded:
            if loaded[ep.name][0] == ep.value:  # the same distribution found twice on sys.path
                continue
            raise PluginError(f"plugin {ep.name!r}: registered by {loaded[ep.name][1]} "
                              f"({loaded[ep.name][0]}) and by {where} ({ep.value}); uninstall one")
        if pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as e:  # a plugin that raises on import: name it, stop start-up
            raise PluginError(f"plugin {ep.name!r} ({where}): failed to load {ep.value}: "
                              f"{_one_line(e)}") from e
        loaded[ep.name] = (ep.value, where)
        pm.distributions[ep.name] = ep.dist
        _register(pm, plugin, ep.name)
    for plugin in extra_plugins:
        _register(pm, plugin, None)
    _check_pending(pm)
    return pm


def _register(pm: ZKPluginManager, plugin: Any, name: str | None) -> None:
    """Register `plugin`; pluggy's validation error becomes a PluginError naming it."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as e:
        label = (f"plugin {name!r} ({_dist_label(pm.distributions.get(name))})" if name
                 else f"plugin {getattr(plugin, '__name__', plugin)!r} (not installed)")
        problem = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise PluginError(f"{label}: {problem} (hook API version {HOOK_API_VERSION})") from e


def _check_pending(pm: ZKPluginManager) -> None:
    """Every implemented hook must have a specification (pluggy's check_pending, with the
    distribution and the closest known hook name in the message)."""
    known = sorted(n for n in vars(hookspecs) if n.startswith("zk_"))
    for name, caller in sorted(vars(pm.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PluginError(f"{pm.describe(impl.plugin)}: unknown hook {name!r}{hint}; "
                              f"this server has hook API version {HOOK_API_VERSION}")


def blame(error: BaseException) -> PluginError | None:
    """A PluginError naming the installed third-party plugin whose code raised `error` (the
    innermost frame of its traceback in a plugin's package), or None when the error did not
    come from one (for hooks the core calls directly, such as ``zk_configure``)."""
    owners: dict[str, tuple[str, importlib.metadata.Distribution | None]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        package = ep.module.rsplit(".", 1)[0] if "." in ep.module else ep.module
        owners.setdefault(package, (ep.name, ep.dist))
    for frame, lineno in reversed(list(traceback.walk_tb(error.__traceback__))):
        module = frame.f_globals.get("__name__", "")
        for package, (name, dist) in owners.items():
            if module == package or module.startswith(package + "."):
                if dist is not None and dist.name == BUILTIN_DISTRIBUTION:
                    return None
                return PluginError(f"plugin {name!r} ({_dist_label(dist)}): {_one_line(error)} "
                                   f"({frame.f_code.co_filename}:{lineno})")
    return None


def _one_line(e: BaseException) -> str:
    """An exception as one line: its type and first line of message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


# -- backends ---------------------------------------------------------------------------------


def _collect(pm: pluggy.PluginManager, hook: str,
             kwargs: dict[str, Any]) -> list[tuple[str, bool, Any]]:
    """Each plugin's answer to a collecting hook, with how errors name that plugin and whether
    it is one of the server's own."""
    answers = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # pluggy's call order
        if isinstance(pm, ZKPluginManager):
            label, builtin = pm.describe(impl.plugin), pm.is_builtin(impl.plugin)
        else:  # a plain pluggy manager (a test's)
            label, builtin = f"plugin {impl.plugin_name!r}", False
        try:
            answer = impl.function(**{k: kwargs[k] for k in impl.argnames})
        except ConfigError:
            raise
        except Exception as e:
            raise PluginError(f"{label}: {hook} failed: {_one_line(e)}") from e
        answers.append((label, builtin, answer or []))
    return answers


def _backends(pm: pluggy.PluginManager, hook: str, family: str) -> dict[str, BackendSpec]:
    found: dict[str, BackendSpec] = {}
    owners: dict[str, str] = {}
    for label, builtin, specs in _collect(pm, hook, {}):
        for spec in specs:
            if spec.name in found:
                raise PluginError(f"{label}: offers the {family} backend {spec.name!r}, "
                                  f"which {owners[spec.name]} offers too; uninstall one")
            owners[spec.name] = label
            found[spec.name] = BackendSpec(spec.name, spec.description,
                                           _named_factory(spec, family, label, builtin))
    return found


def _named_factory(spec: BackendSpec, family: str, label: str,
                   builtin: bool) -> Callable[..., Any]:
    """`spec.factory`, with its failures (and a store's failure to open) naming the plugin."""

    @functools.wraps(spec.factory)
    def factory(*args: Any, **kwargs: Any) -> Any:
        try:
            backend = spec.factory(*args, **kwargs)
        except ConfigError:
            raise
        except StoreError as e:  # an operator's message (an unknown option, ...)
            if builtin:
                raise
            raise StoreError(f"{label}: storage {spec.name!r}: {e}") from e
        except Exception as e:
            raise PluginError(f"{label}: the {family} backend {spec.name!r} failed to build: "
                              f"{_one_line(e)}") from e
        if family == "storage":
            _name_open_failures(backend, spec.name, label, builtin)
        return backend

    return factory


def _name_open_failures(store: Any, name: str, label: str, builtin: bool) -> None:
    """Make `store.open` raise a StoreError naming the plugin when it fails (the store object
    is otherwise untouched: the request path calls it directly). A built-in store's StoreError
    is left as it is: it is an operator's message naming the file already."""
    open_store = getattr(store, "open", None)
    if open_store is None:
        return

    @functools.wraps(open_store)
    def open() -> None:
        try:
            open_store()
        except StoreError as e:
            if builtin:
                raise
            raise StoreError(f"{label}: storage {name!r}: {e}") from e
        except Exception as e:
            where = traceback.extract_tb(e.__traceback__)[-1]
            raise StoreError(f"{label}: storage {name!r} failed to open: {_one_line(e)} "
                             f"({where.filename}:{where.lineno})") from e

    try:
        store.open = open
    except (AttributeError, TypeError):  # __slots__ or a frozen object: leave it as it is
        pass


def storage_backends(pm: pluggy.PluginManager) -> dict[str, BackendSpec]:
    """Every store offered by an installed plugin, by name.

    :raises PluginError: a plugin's hook failed, or two plugins offer the same name.
    """
    return _backends(pm, "zk_storage_backends", "storage")


def consensus_backends(pm: pluggy.PluginManager) -> dict[str, BackendSpec]:
    """Every consensus backend offered by an installed plugin, by name.

    :raises PluginError: a plugin's hook failed, or two plugins offer the same name.
    """
    return _backends(pm, "zk_consensus_backends", "consensus")


def pick(backends: dict[str, BackendSpec], name: str, key: str, config: Config) -> BackendSpec:
    """The backend zoo.cfg names under `key`, or a ConfigError naming the installed ones."""
    spec = backends.get(name)
    if spec is None:
        where = f"{config.source}:{config.lines[key]}: " if key in config.lines else ""
        installed = ", ".join(sorted(backends)) or "none"
        raise ConfigError(f"{where}{key}: no backend named {name!r} is installed (installed: {installed})")
    return spec


def auth_providers(pm: pluggy.PluginManager, config: Config) -> dict[str, AuthProvider]:
    """Every auth scheme offered by an installed plugin, by scheme.

    :raises PluginError: a plugin's hook failed, or two plugins offer the same scheme.
    """
    found: dict[str, AuthProvider] = {}
    owners: dict[str, str] = {}
    for label, _, providers in _collect(pm, "zk_auth_providers", {"config": config}):
        for p in providers:
            if p.scheme in found:
                raise PluginError(f"{label}: offers the auth scheme {p.scheme!r}, which "
                                  f"{owners[p.scheme]} offers too; uninstall one")
            owners[p.scheme] = label
            found[p.scheme] = p
    return found
