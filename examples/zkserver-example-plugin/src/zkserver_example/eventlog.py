"""A watch-delivery stage that writes every triggered watch event to a file, one JSON line each.

zoo.cfg names the file with ``example.eventLog=<path>``; without it the plugin takes no part.
A line looks like::

    {"type": "NodeDataChanged", "path": "/app/config", "zxid": 4, "sessions": ["0x100..."]}

The stage observes only: it returns the watchers unchanged, so the next stage (in the end the
core's, which writes to the client connections) still delivers the event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from core import WatchEvent, Watcher

#: ZooKeeper's Watcher.Event.EventType codes, by name.
EVENT_TYPES = {-1: "None", 1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
               4: "NodeChildrenChanged", 5: "DataWatchRemoved", 6: "ChildWatchRemoved",
               7: "PersistentWatchRemoved"}


class EventLog:
    """Appends each event and the sessions it goes to as a JSON line to `path`.

    Called on the reactor thread, once per triggered event: the write is a small buffered
    append, flushed at once so that a reader sees the line (a real deployment would batch or
    hand the lines to a thread).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = open(self.path, "a", encoding="utf-8")

    def deliver(self, event: WatchEvent, watchers: list[Watcher]) -> list[Watcher]:
        """Log the event; hand every watcher on to the next stage."""
        if self._file is not None:
            line = {"type": EVENT_TYPES.get(event.type, str(event.type)), "path": event.path,
                    "zxid": event.zxid, "sessions": [f"{w.session_id:#x}" for w in watchers]}
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()
        return watchers

    def close(self) -> None:
        """Close the file; later events are not logged."""
        if self._file is not None:
            self._file.close()
            self._file = None
