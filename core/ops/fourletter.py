"""Four-letter words on the client port, formatted as ZooKeeper 3.8 formats them.

A new connection whose first four bytes spell a known word gets a plain-text answer and is
closed; a word not in `4lw.commands.whitelist` gets ZooKeeper's refusal text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.server import ZKServer

VERSION = "3.8.0-zkserver"

KNOWN = frozenset({
    "ruok", "stat", "srvr", "conf", "cons", "crst", "dump", "envi", "mntr", "srst", "wchs",
    "wchc", "wchp", "dirs", "isro", "gtmk", "stmk", "hash",
})


def answer(server: ZKServer, word: str) -> str | None:
    """The text for `word`, or None if it is not a four-letter word (then it is a length)."""
    if word not in KNOWN:
        return None
    allowed = server.config.four_letter_words
    if word != "srvr" and "*" not in allowed and word not in allowed:
        return f"{word} is not executed because it is not in the whitelist.\n"
    command = COMMANDS.get(word)
    if command is None:
        return f"{word} is not supported by this server.\n"
    return command(server)


def _mode(server: ZKServer) -> str:
    return server.consensus.role


def srvr(server: ZKServer) -> str:
    received = sum(c.packets_received for c in server.all_connections)
    sent = sum(c.packets_sent for c in server.all_connections)
    return (
        f"Zookeeper version: {VERSION}, built on 01/01/2026 00:00 GMT\n"
        "Latency min/avg/max: 0/0.0/0\n"
        f"Received: {received}\n"
        f"Sent: {sent}\n"
        f"Connections: {len(server.all_connections)}\n"
        f"Outstanding: {len(server.waiting)}\n"
        f"Zxid: 0x{server.tree.last_zxid:x}\n"
        f"Mode: {_mode(server)}\n"
        f"Node count: {len(server.tree.nodes) + 1}\n"
    )


def stat(server: ZKServer) -> str:
    clients = "".join(
        f" /{c.peer.host}:{c.peer.port}[1](queued=0,recved={c.packets_received},sent={c.packets_sent})\n"
        for c in server.all_connections)
    head, rest = srvr(server).split("Latency", 1)
    return f"{head}Clients:\n{clients}\nLatency{rest}"


COMMANDS: dict[str, Callable[[ZKServer], str]] = {
    "ruok": lambda server: "imok",
    "srvr": srvr,
    "stat": stat,
    "isro": lambda server: "rw",
}
