"""The plugin: zkserver finds this module through the ``zkserver.plugins`` entry point
``example`` and registers every ``@hookimpl`` function in it."""

from __future__ import annotations

from typing import Any

from core import BackendSpec, Config, ConfigError, hookimpl
from zkserver_example.eventlog import EventLog
from zkserver_example.store import create_store

#: zoo.cfg keys of this plugin: ``example.<key>``.
OPTIONS = "example"

_event_logs: dict[int, EventLog] = {}  # id(server) -> its event log, closed when it stops


@hookimpl
def zk_configure(config: Config) -> None:
    """Check our ``example.*`` keys before anything is built."""
    for key in config.plugin_options(OPTIONS):
        if key != "eventLog":
            raise config.error(f"{OPTIONS}.{key}", "the example plugin has no such setting")
    path = config.plugin_options(OPTIONS).get("eventLog")
    if path is not None and not path:
        raise config.error(f"{OPTIONS}.eventLog", "expected a file name")


@hookimpl
def zk_storage_backends() -> list[BackendSpec]:
    """Offer the ``appendlog`` store (zoo.cfg: ``storage=appendlog``)."""
    return [BackendSpec("appendlog", "append-only log file with CRC32 records, snapshot files",
                        create_store)]


@hookimpl
def zk_watch_delivery(config: Config, server: Any) -> EventLog | None:
    """Log watch events to ``example.eventLog`` when it is set."""
    path = config.plugin_options(OPTIONS).get("eventLog")
    if path is None:
        return None
    try:
        event_log = EventLog(path)
    except OSError as e:
        raise ConfigError(f"{OPTIONS}.eventLog: cannot open {path}: {e.strerror}") from e
    _event_logs[id(server)] = event_log
    return event_log


@hookimpl
def zk_server_stopping(server: Any) -> None:
    """Close the server's event log."""
    event_log = _event_logs.pop(id(server), None)
    if event_log is not None:
        event_log.close()
