"""Small network helpers for tests and benchmarks that run servers on loopback addresses."""

from __future__ import annotations

import socket

# ZooKeeper's default client, AdminServer and metrics ports: a test never takes them
WELL_KNOWN_PORTS = frozenset({2181, 8080, 7000})


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` that nobody listens on now (the kernel's pick), never a well-known one."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
        if port not in WELL_KNOWN_PORTS:
            return port


def four_letter_word(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    """Send a four-letter word (``ruok``, ``srvr``, ``mntr``...) on a fresh connection and
    return the text answer ('' if none)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
