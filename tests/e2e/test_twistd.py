"""`twistd -n zkserver -c zoo.cfg` starts from the example config's shape, serves, and stops
cleanly on SIGTERM; a bad zoo.cfg stops start-up with one line."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.harness import REPO_ROOT, OurZK, require_ours
from wire import WireClient

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile="]


@pytest.mark.timeout(60)
def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    server = OurZK(extra_cfg={"storage": "sqlite", "dataDir": str(tmp_path)})
    with server:
        zk = KazooClient(hosts=server.hosts, timeout=10)
        zk.start(timeout=10)
        zk.create("/kept", b"v")
        client = WireClient(server.host, server.port)
        client.connect()  # a client still connected when the signal comes
        zk.stop()
        zk.close()
        proc = server.proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == -signal.SIGTERM  # twistd re-raises the signal after a clean stop
        client.close_quietly()
        log = server.log_tail(200)
        assert "Server Shut Down." in log and "Traceback" not in log


@pytest.mark.timeout(60)
@pytest.mark.parametrize("line, message", [
    ("tickTime=abc", "tickTime: expected a positive integer, got 'abc'"),
    ("storage=nosuchstore", "storage: no backend named 'nosuchstore' is installed"),
])
def test_bad_config_stops_start_up_with_one_line(tmp_path: Path, line: str, message: str) -> None:
    require_ours()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=0\nclientPortAddress=127.0.0.1\n{line}\n")
    result = subprocess.run([*TWISTD, "zkserver", "-c", str(cfg)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and f"{cfg}:4:" in lines[0]
