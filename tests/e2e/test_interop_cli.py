"""Interop with ZooKeeper's own command-line clients from Debian's packages: the Java
`zkCli.sh` and the C `cli_mt`, against Apache ZooKeeper 3.8 and ours.

Each client runs once per test with all its commands on stdin (a JVM start costs ~1 s)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading

import pytest

from harness import CLI_MT, ZKCLI, require_zookeeper

CLI_TIMEOUT = 45


def _stop(proc: subprocess.Popen) -> None:
    """Stop a client we started, by its id: zkCli.sh is a shell with java as its child, so the
    signal goes to the process group that start_new_session made for it (pgid = its pid)."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
            return
        except subprocess.TimeoutExpired:
            continue


def run_zkcli(server, commands: list[str]) -> str:
    """Run zkCli.sh once with `commands` on stdin; its stdout and stderr together."""
    env = dict(os.environ, CLIENT_JVMFLAGS="-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    proc = subprocess.Popen([str(ZKCLI), "-server", server.hosts], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate("\n".join(commands + ["quit"]) + "\n", timeout=CLI_TIMEOUT)
    finally:
        _stop(proc)
    return out


def run_cli_mt(server, commands: list[str], sentinel_path: str) -> str:
    """Run cli_mt once, one command at a time. Its commands are asynchronous and print from its
    IO thread, so each is followed by `exists <sentinel_path>-<i>` (a missing node) and the next
    goes only after that answer ("Error -101 for <path>") has come: outputs never interleave."""
    proc = subprocess.Popen([str(CLI_MT), "-h", server.hosts], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    seen = threading.Condition()

    def reader() -> None:
        for line in proc.stdout:
            with seen:
                lines.append(line)
                seen.notify_all()
        with seen:
            lines.append("")  # EOF marker
            seen.notify_all()

    def answered(sentinel: str) -> bool:
        # its two threads' output can share a line ("...CONNECTED_STATEError -101 for ...")
        return any(sentinel in line for line in lines) or (bool(lines) and lines[-1] == "")

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for i, command in enumerate(commands):
            sentinel = f"{sentinel_path}-{i}"
            proc.stdin.write(f"{command}\nexists {sentinel}\n")
            proc.stdin.flush()
            with seen:
                assert seen.wait_for(lambda: answered(f"Error -101 for {sentinel}"), CLI_TIMEOUT), (
                    "cli_mt did not answer:\n" + "".join(lines))
        if proc.poll() is None:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.stdin.close()
            proc.wait(CLI_TIMEOUT)
        t.join(5)
    finally:
        _stop(proc)
    # cli_mt writes everything to stderr from several threads, so the fragments it prints on
    # its own (our sentinels' answers, watcher events, timings) can land inside other lines;
    # with them gone, what is left is each command's answer in command order
    out = re.sub(rf"Error -101 for {re.escape(sentinel_path)}-\d+\n?", "", "".join(lines))
    out = re.sub(r"Watcher \w+ state = \w+( for path \S*)?\n?", "", out)
    return re.sub(r"time = \d+ msec\n?", "", out)


@pytest.fixture(autouse=True)
def _clients_installed():
    require_zookeeper(cli=True)


def test_zkcli(server, zk, root):
    zk.create(f"{root}/a", b"hello")
    czxid = zk.exists(f"{root}/a").czxid
    out = run_zkcli(server, [
        f"create -s -e {root}/q- qdata",
        f"ls {root}",
        f"get -s {root}/a",
        f"set -v 0 {root}/a v1",
        f"set -v 0 {root}/a v2",
        f"stat {root}/a",
        f"create {root}/d",
        f"create {root}/d/x",
        f"delete {root}/d",
        f"deleteall {root}/d",
        f"ls {root}",
        f"delete {root}/nope",
        f"delete -v 5 {root}/a",
        f"get {root}/q-0000000001",
        f"delete {root}/a",
    ])
    assert f"Created {root}/q-0000000001" in out
    lists = re.findall(r"^\[(.*)\]$", out, re.M)
    assert [sorted(filter(None, x.split(", "))) for x in lists] == [
        ["a", "q-0000000001"], ["a", "q-0000000001"]]
    # get -s: the data, then the Stat, zxids in hex
    assert re.search(r"^hello\ncZxid = 0x%x\n" % czxid, out, re.M), out
    stats = re.findall(r"^dataVersion = (\d+)$", out, re.M)
    assert stats == ["0", "1"]  # get -s before the set, stat after it
    assert re.findall(r"^dataLength = (\d+)$", out, re.M) == ["5", "2"]
    assert re.findall(r"^ephemeralOwner = (\S+)$", out, re.M) == ["0x0", "0x0"]
    assert out.count(f"version No is not valid : {root}/a") == 2  # set -v 0 again, delete -v 5
    assert f"Created {root}/d" in out and f"Created {root}/d/x" in out
    assert f"Node not empty: {root}/d" in out
    assert f"Node does not exist: {root}/nope" in out
    assert re.search(r"^qdata$", out, re.M)
    # the client's session is closed: its ephemeral went with it
    assert zk.get_children(root) == []


def test_cli_mt(server, zk, root):
    out = run_cli_mt(server, [
        f"create {root}/c",
        f"create +e {root}/e",
        f"create +s {root}/s-",
        f"set {root}/c hello",
        f"get {root}/c",
        f"ls {root}",
        f"delete {root}/e",
        f"ls2 {root}",
        f"exists {root}/nope",
        f"create {root}/c",
    ], sentinel_path=f"{root}/end")
    assert re.search(rf"^\[{root}/c\]: rc = 0\n\tname = {root}/c$", out, re.M), out
    assert re.search(rf"^\[{root}/s-\]: rc = 0\n\tname = {root}/s-0000000002$", out, re.M), out
    # the data is written with no newline after it: the next output may follow on its line
    assert f"{root}/c: rc = 0\n value_len = 5\nhello" in out, out
    # ls and ls2: "<path>: rc = 0" then the children, tab-indented (ls2 adds the Stat after)
    blocks = re.findall(rf"^{root}: rc = 0\n((?:\t.*\n)+)", out, re.M)
    children = [sorted(x.strip() for x in b.splitlines() if "=" not in x) for b in blocks]
    assert children == [["c", "e", "s-0000000002"], ["c", "s-0000000002"]]
    assert re.search(rf"^{root}/e: rc = 0$", out, re.M)  # the delete
    assert f"Error -101 for {root}/nope" in out
    assert re.search(rf"^\[{root}/c\]: rc = -110$", out, re.M), out  # NODEEXISTS
    assert zk.get(f"{root}/c")[0] == b"hello"
    assert sorted(zk.get_children(root)) == ["c", "s-0000000002"]
