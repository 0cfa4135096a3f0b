"""Stopping the server processes a test or benchmark started, by their PID."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 20.0) -> None:
    """SIGTERM our child `proc`, wait up to `timeout` s, SIGKILL it if it lingers. Does
    nothing for None or a process that has already exited."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
