"""zkserver against Apache ZooKeeper 3.8: throughput, server CPU per op, latency, memory, restart.

    python bench/run.py [bench] [--store sqlite|rocksdb|memory[,...]] [--duration 5] [--rounds 3]
                        [--workloads get,set,...] [--quick]
    python bench/run.py memory  [--store sqlite] [--count 200000]
    python bench/run.py profile [--store memory] [--workloads get,set] [--profiler py-spy|cprofile]
    python bench/run.py scale   [--store sqlite] [--duration 5] [--rounds 3] [--quick]

`bench` starts Apache ZooKeeper 3.8 (Debian's jar, forceSync on) and ours (one server per
--store), each on a free port of its own 127.0.0.x address with its own temp dataDir, runs every
workload on each in turn (the order of the servers reverses every round: A/B, B/A, ...), and
writes the medians to bench/results/latest.md (+ latest.json, + latest.png with matplotlib).
`scale` does the same with 1 to 1,000 sessions and with 10,000 watches set (scale.md/json).
Servers are stopped by their PID in `finally`, always. See bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen as lg  # noqa: E402  (puts the repo on sys.path)
from core.testing.net import four_letter_word as four_letter, free_port  # noqa: E402
from core.testing.process import stop_process  # noqa: E402

REPO_ROOT = lg.REPO_ROOT
RESULTS = Path(__file__).resolve().parent / "results"
ZK_JAR = "/usr/share/java/zookeeper.jar"
SLF4J_JAR = "/usr/share/java/slf4j-simple.jar"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0

ALL_WORKLOADS = ["get", "exists", "set", "create", "delete", "mixed", "children", "multi",
                 "lat-get", "lat-set"]
DESCRIPTIONS = {
    "get": "getData, 100 B, 1,000 keys",
    "exists": "exists, 1,000 keys",
    "set": "setData, 100 B, 1,000 keys",
    "create": "create sequential, 100 B",
    "delete": "delete",
    "mixed": "90% get / 10% set",
    "children": "getChildren, 1,000 children",
    "multi": "multi of 5 setData",
    "lat-get": "get, 1 in flight",
    "lat-set": "set, 1 in flight",
}

Runs = dict[str, dict[str, list[dict[str, Any]]]]   # server label -> run name -> one per round


# -- servers --------------------------------------------------------------------------------


class Server:
    """One server process on 127.0.0.x:<free port>, own temp dataDir; stop() by PID."""

    kind = "?"

    def __init__(self, label: str) -> None:
        self.label = label
        self.workdir = Path(tempfile.mkdtemp(prefix=f"zkbench-{label}-"))
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir()
        self.host = f"127.0.0.{random.randint(2, 254)}"
        self.port = free_port(self.host)
        self.cfg_path = self.workdir / "zoo.cfg"
        self.cfg_path.write_text("".join(f"{k}={v}\n" for k, v in self.config().items()))
        self.proc: subprocess.Popen | None = None
        self.log = None
        self.state: dict[str, Any] = {}

    def config(self) -> dict[str, str]:
        return {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPortAddress": self.host,
            "clientPort": str(self.port),
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            "maxClientCnxns": "0",   # no per-host limit: `scale` opens 1,000 sessions from here
        }

    def argv(self) -> tuple[list[str], Path]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> float:
        """Start the process (no waiting); the monotonic time just before."""
        assert self.proc is None or self.proc.poll() is not None
        argv, cwd = self.argv()
        self.log = open(self.workdir / "server.log", "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return t0

    def start(self, timeout: float = START_TIMEOUT) -> "Server":
        self.spawn()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                last = four_letter(self.host, self.port, "ruok")
                if last == "imok":
                    last = four_letter(self.host, self.port, "srvr")
                    if last and "not currently serving" not in last:
                        return self
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        raise TimeoutError(f"{self.label} not ready in {timeout}s ({last!r}):\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM our child by its PID, wait, SIGKILL if it lingers. Idempotent."""
        proc, self.proc = self.proc, None
        stop_process(proc, STOP_TIMEOUT)
        if self.log is not None:
            self.log.close()
            self.log = None

    def cleanup(self) -> None:
        self.stop()
        if os.environ.get("ZKBENCH_KEEP") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        p = self.workdir / "server.log"
        return "\n".join(p.read_text("utf-8", "replace").splitlines()[-n:]) if p.exists() else ""


class Apache(Server):
    kind = "apache"

    def argv(self) -> tuple[list[str], Path]:
        return (["java", "-Xmx1g", f"-Dzookeeper.log.dir={self.workdir}", "-cp",
                 f"{ZK_JAR}:{SLF4J_JAR}", "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                 str(self.cfg_path)], self.workdir)


class Ours(Server):
    kind = "ours"

    def __init__(self, label: str, store: str, profile_out: Path | None = None) -> None:
        self.store = store
        self.profile_out = profile_out
        compile_sources()
        super().__init__(label)

    def config(self) -> dict[str, str]:
        return {"storage": self.store, **super().config()}

    def argv(self) -> tuple[list[str], Path]:
        tw = ["-n", "--pidfile=", "zkserver", "-c", str(self.cfg_path)]
        if self.profile_out is not None:   # the whole server under cProfile, written at exit
            code = ("import cProfile, sys; from twisted.scripts.twistd import run; "
                    f"sys.argv = ['twistd'] + {tw!r}; cProfile.run('run()', {str(self.profile_out)!r})")
        else:
            code = "import sys; from twisted.scripts.twistd import run; sys.argv = ['twistd'] + sys.argv[1:]; run()"
            return [sys.executable, "-c", code, *tw], REPO_ROOT
        return [sys.executable, "-c", code], REPO_ROOT


def compile_sources() -> None:
    """Byte-compile the checkout's packages, as `pip install` does for an installed one: an
    editable checkout run with PYTHONDONTWRITEBYTECODE set would otherwise compile every
    module at each start (~0.2 s of every restart measured)."""
    for package in ("core", "plugins"):
        compileall.compile_dir(str(REPO_ROOT / package), quiet=1)


def make_servers(stores: list[str]) -> list[Server]:
    return [Apache("apache")] + [Ours(f"ours-{s}", s) for s in stores]


def label_name(label: str) -> str:
    return "Apache 3.8" if label == "apache" else f"ours ({label.split('-', 1)[1]})"


def stop_servers(servers: list[Server]) -> None:
    """Stop every server by its PID and remove its temp dir, even if one of them fails."""
    for srv in servers:
        try:
            srv.cleanup()
        except Exception as e:  # keep stopping the others
            print(f"stopping {srv.label}: {e}", file=sys.stderr)


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(f"signal {signum}")


# -- machine --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    java = "?"
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True,
                              timeout=30).stderr.splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "java": java,
        "kernel": platform.release(),
    }


# -- one run --------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args

    def load(self, srv: Server, spec: dict[str, Any], duration: float | None = None,
             warmup: float | None = None, *, procs: int | None = None,
             sessions: int | None = None, window: int | None = None) -> dict[str, Any]:
        """`spec` pipelined on `srv`; the command line's shape and timing unless given here."""
        return lg.run_load(srv.host, srv.port, spec, server_pid=srv.pid,
                           procs=self.a.procs if procs is None else procs,
                           sessions=self.a.sessions if sessions is None else sessions,
                           window=self.a.window if window is None else window,
                           duration=self.a.duration if duration is None else duration,
                           warmup=self.a.warmup if warmup is None else warmup)

    def prepare(self, srv: Server) -> None:
        """Start `srv`, create the benchmark's tree, and warm it up untimed (mixed load)."""
        srv.start()
        lg.setup_tree(srv.host, srv.port)
        print(f"[{srv.label}] pid {srv.pid} on {srv.host}:{srv.port}", flush=True)
        # warm up (Apache's JIT, our caches) untimed: mixed reads and writes
        self.load(srv, {"workload": "mixed", "seed": 99}, duration=self.a.server_warmup, warmup=0.0)

    def populate(self, srv: Server, parent: str, count: int) -> int:
        """`count` sequential creates under `parent` as fast as they go; how many succeeded."""
        r = self.load(srv, {"workload": "populate", "parent": parent, "count": count},
                      duration=600.0, warmup=0.0)
        if r["timed_out"]:
            raise RuntimeError(f"populate {parent} on {srv.label} did not finish")
        return r["ok_total"]

    def run_one(self, srv: Server, w: str, rnd: int) -> dict[str, Any]:
        if w.startswith("lat-"):
            return lg.run_latency(srv.host, srv.port, w[4:], server_pid=srv.pid,
                                  duration=self.a.duration, warmup=self.a.warmup, seed=rnd + 1)
        if w == "create":
            parent = f"{lg.ROOT}/seq-r{rnd}"
            lg.create_parent(srv.host, srv.port, parent)
            r = self.load(srv, {"workload": "create", "parent": parent, "seed": rnd})
            srv.state["seq"] = (parent, r["ok_total"])
            srv.state["create_rate"] = r["ops_per_s"]
            return r
        if w == "delete":
            parent, have = srv.state.pop("seq", (None, 0))
            if parent is None:
                parent = f"{lg.ROOT}/del-r{rnd}"
                lg.create_parent(srv.host, srv.port, parent)
            rate = max(srv.state.get("create_rate", 0.0), srv.state.get("delete_rate", 0.0), 20000.0)
            want = min(3_000_000, int(math.ceil(2.5 * rate * (self.a.warmup + self.a.duration))))
            if have < want:
                have += self.populate(srv, parent, want - have)
            r = self.load(srv, {"workload": "delete", "parent": parent, "count": have})
            srv.state["delete_rate"] = r["ops_per_s"]
            r["populated"] = have
            # untimed: the nodes the run did not reach, so that later workloads (and their
            # snapshots) see the benchmark's own tree, not hundreds of thousands of leftovers
            self.load(srv, {"workload": "delete", "parent": parent, "count": have}, duration=600.0, warmup=0.0)
            return r
        return self.load(srv, {"workload": w, "seed": rnd})


def alternate(servers: list[Server], names: list[str], rounds: int,
              run: Callable[[Server, str, int], dict[str, Any]]) -> Runs:
    """`run(server, name, round)` for every name on every server in turn, `rounds` times, the
    server order reversed every round (A/B/C, C/B/A, ...); the results, each tagged with its round.
    Each run starts on a quiet machine (`loadgen.wait_until_quiet`): work left over from the run
    before (a snapshot being written, a JIT compiling) must not take a core from the next."""
    runs: Runs = {srv.label: {n: [] for n in names} for srv in servers}
    width = max(9, *map(len, names))
    for rnd in range(rounds):
        for name in names:
            order = servers if rnd % 2 == 0 else list(reversed(servers))
            for srv in order:
                if srv.proc is None or srv.proc.poll() is not None:
                    raise RuntimeError(f"{srv.label} died:\n{srv.log_tail()}")
                waited = lg.wait_until_quiet()
                if waited is None:
                    print(f"  (the machine stayed busy: {srv.label} {name} runs beside it)", flush=True)
                r = run(srv, name, rnd)
                r["round"] = rnd
                runs[srv.label][name].append(r)
                print(f"round {rnd + 1}/{rounds} {name:{width}s} {srv.label:13s} {fmt_run(r)}", flush=True)
    return runs


def cmd_bench(a: argparse.Namespace) -> int:
    stores = [s for s in a.store.split(",") if s]
    workloads = [w for w in a.workloads.split(",") if w] if a.workloads else list(ALL_WORKLOADS)
    for w in workloads:
        if w not in ALL_WORKLOADS:
            sys.exit(f"unknown workload {w!r}; known: {','.join(ALL_WORKLOADS)}")
    b = Bench(a)
    mach = machine()
    servers: list[Server] = []
    t_begin = time.monotonic()
    try:
        servers = make_servers(stores)
        for srv in servers:
            b.prepare(srv)
        runs = alternate(servers, workloads, a.rounds, b.run_one)
    finally:
        stop_servers(servers)
    labels = [s.label for s in servers]
    summary = summarize(runs, labels, workloads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": mach, "args": vars(a), "wall_s": round(time.monotonic() - t_begin, 1)}
    md = render_md(summary, labels, workloads, meta)
    (RESULTS / "latest.md").write_text(md)
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "runs": runs, "summary": summary},
                                                    indent=1, default=str))
    chart(summary, labels, workloads, RESULTS / "latest.png")
    print()
    print(md)
    return 0


def fmt_run(r: dict[str, Any]) -> str:
    s = f"{r['ops_per_s']:10.0f} ops/s"
    if r.get("server_us_per_op") is not None:
        s += f"  srv {r['server_us_per_op']:7.1f} us/op"
    if r.get("client_us_per_op") is not None:
        s += f"  cli {r['client_us_per_op']:5.1f} us/op"
    if r.get("p50_us") is not None:
        s += f"  p50 {r['p50_us']:.0f} p99 {r['p99_us']:.0f} p99.9 {r['p999_us']:.0f} us"
    if r.get("other_cpu_s") is not None and r.get("elapsed"):
        s += f"  other {r['other_cpu_s'] / r['elapsed']:.2f} cores"
    if r.get("errors"):
        s += f"  errors {r['errors']}"
    if r.get("exhausted"):
        s += "  (source exhausted early)"
    return s


# -- summary and output ---------------------------------------------------------------------


def _med(vals: list[Any]) -> float | None:
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def summarize(runs: Runs, labels: list[str], workloads: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for lab in labels:
        out[lab] = {}
        for w in workloads:
            rs = runs.get(lab, {}).get(w, [])
            if not rs:
                continue
            ops = [r["ops_per_s"] for r in rs]
            m: dict[str, Any] = {
                "n": len(rs),
                "ops_per_s": _med(ops),
                "spread": (max(ops) - min(ops)) / _med(ops) if _med(ops) else None,
                "server_us_per_op": _med([r.get("server_us_per_op") for r in rs]),
                "client_us_per_op": _med([r.get("client_us_per_op") for r in rs]),
                "server_cores": _med([r["server_cpu_s"] / r["elapsed"] for r in rs if r.get("server_cpu_s") is not None]),
                "other_cores": _med([r["other_cpu_s"] / r["elapsed"] for r in rs if r.get("other_cpu_s") is not None]),
                "client_cores": _med([r["client_cpu_s"] / r["elapsed"] for r in rs if r.get("client_cpu_s") is not None]),
                "errors": sum(sum(r.get("errors", {}).values()) for r in rs),
                "exhausted": sum(1 for r in rs if r.get("exhausted")),
            }
            for k in ("p50_us", "p99_us", "p999_us"):
                if any(k in r for r in rs):
                    m[k] = _med([r.get(k) for r in rs])
            out[lab][w] = m
    return out


def _n(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if x >= 100_000:
        return f"{x / 1000:.0f}k{unit}"
    if x >= 10_000:
        return f"{x / 1000:.1f}k{unit}"
    if x >= 100:
        return f"{x:.0f}{unit}"
    if x >= 10:
        return f"{x:.1f}{unit}"
    return f"{x:.2f}{unit}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def _trip(s: dict[str, Any]) -> str:
    """p50 / p99 / p99.9 of a summary entry."""
    return " / ".join(_n(s.get(k)) for k in ("p50_us", "p99_us", "p999_us"))


def _machine_lines(m: dict[str, str]) -> list[str]:
    return [f"- machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}; kernel {m['kernel']}",
            f"- date: {m['date']}; Python {m['python']}; {m['java']}"]


def _described(workload: str) -> str:
    return f"{workload}: {DESCRIPTIONS[workload]}"


def _ratio_rows(summary: dict, ours: list[str], workloads: list[str], name: Any,
                cell: Any, key: str) -> list[str]:
    """One table row per workload: its name, Apache's cell, then each of ours with its cell
    and the ratio ours / Apache of `key`."""
    rows = []
    for w in workloads:
        ap = summary["apache"].get(w, {})
        row = f"| {name(w)} | {cell(ap)} |"
        for label in ours:
            o = summary[label].get(w, {})
            row += f" {cell(o)} | {_ratio(o.get(key), ap.get(key))} |"
        rows.append(row)
    return rows


def _notes(summary: dict, labels: list[str], meta: dict[str, Any]) -> list[str]:
    """The "Notes" section (error replies, exhausted sources, a busy machine); [] if none."""
    notes = []
    for l in labels:
        for w, s in summary[l].items():
            if s.get("errors"):
                notes.append(f"- {label_name(l)} {w}: {s['errors']} error replies (see the .json)")
            if s.get("exhausted"):
                notes.append(f"- {label_name(l)} {w}: the pre-created nodes ran out before the end "
                             f"in {s['exhausted']} run(s); rate over the time until the last reply")
    others = [s.get("other_cores") for l in labels for s in summary[l].values() if s.get("other_cores") is not None]
    if others and max(others) > 0.2:
        notes.append(f"- other processes used up to {max(others):.2f} of {meta['machine']['nproc']} cores "
                     "during some runs: throughput there is depressed and noisy; server CPU µs/op "
                     "is the steadier comparison")
    return ["", "## Notes", ""] + notes if notes else []


def render_md(summary: dict, labels: list[str], workloads: list[str], meta: dict[str, Any]) -> str:
    m, a = meta["machine"], meta["args"]
    ours = [l for l in labels if l != "apache"]
    tput = [w for w in workloads if not w.startswith("lat-")]
    lat = [w for w in workloads if w.startswith("lat-")]
    L = [
        "# zkserver vs Apache ZooKeeper 3.8",
        "",
        *_machine_lines(m),
        f"- runs: {a['rounds']} rounds, server order reversed every round; {a['duration']} s measured "
        f"after {a['warmup']} s warm-up per run; {a['procs']} client processes x {a['sessions']} "
        f"sessions x {a['window']} requests in flight; medians shown{' (--quick)' if a.get('quick') else ''}",
        "- Apache: Debian's 3.8.0, `-Xmx1g`, forceSync on (fsync per group commit), snapCount default. "
        "Ours: `storage=` as labelled (memory keeps nothing across restarts).",
        "- server CPU = utime+stime of the server process (all threads) from /proc/<pid>/stat over "
        "the measured window, divided by the ops completed in it.",
        f"- wall time {meta['wall_s']} s",
        "",
        "## Throughput (ops/s; ratio = ours / Apache, > 1 means ours is faster)",
        "",
    ]
    head = "| workload | Apache 3.8 |" + "".join(f" {label_name(l)} | ratio |" for l in ours)
    L += [head, "|---|---:|" + "---:|---:|" * len(ours)]
    L += _ratio_rows(summary, ours, tput, _described, lambda s: _n(s.get("ops_per_s")), "ops_per_s")
    L += ["", "## Server CPU per operation (µs; lower is better; ratio = ours / Apache)", "",
          "| workload | Apache 3.8 |" + "".join(f" {label_name(l)} | ratio |" for l in ours),
          "|---|---:|" + "---:|---:|" * len(ours)]
    L += _ratio_rows(summary, ours, workloads, str, lambda s: _n(s.get("server_us_per_op")),
                     "server_us_per_op")
    L += ["", "## Who was busy (cores): server / load generator / everything else on the machine; "
          "client CPU µs per op; run-to-run spread of ops/s (± half the range)", "",
          "| workload |" + "".join(f" {label_name(l)} |" for l in labels),
          "|---|" + "---|" * len(labels)]
    for w in workloads:
        row = f"| {w} |"
        for l in labels:
            s = summary[l].get(w, {})
            if not s:
                row += " - |"
                continue
            sc, cc, oc = s.get("server_cores"), s.get("client_cores"), s.get("other_cores")
            sp = s.get("spread")
            row += (f" {sc:.2f} / {cc:.2f} / {oc if oc is not None else float('nan'):.2f}, cli {_n(s.get('client_us_per_op'))} µs/op, "
                    f"±{sp * 50:.0f}% |" if sc is not None and cc is not None and sp is not None else " - |")
        L.append(row)
    if tput:
        L += ["", "## Latency under load (pipelined, µs: p50 / p99 / p99.9; send to the `recv` that "
              "returned the reply, every reply of the measured window; ratio of p99 = ours / Apache, "
              "< 1 means ours is faster)", "",
              "| workload | Apache 3.8 |" + "".join(f" {label_name(l)} | p99 ratio |" for l in ours),
              "|---|---:|" + "---:|---:|" * len(ours)]
        L += _ratio_rows(summary, ours, tput, str, _trip, "p99_us")
    if lat:
        L += ["", "## Latency, one request in flight, one session (µs: p50 / p99 / p99.9; ratio of p50 = ours / Apache, < 1 means ours is faster)", "",
              "| workload | Apache 3.8 |" + "".join(f" {label_name(l)} | p50 ratio |" for l in ours),
              "|---|---:|" + "---:|---:|" * len(ours)]
        L += _ratio_rows(summary, ours, lat, _described, _trip, "p50_us")
    L += _notes(summary, labels, meta)
    L.append("")
    return "\n".join(L)


def chart(summary: dict, labels: list[str], workloads: list[str], path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart)")
        return
    tput = [w for w in workloads if not w.startswith("lat-")]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.8 / max(1, len(labels))
    for i, l in enumerate(labels):
        xs = [j + i * width for j in range(len(tput))]
        axes[0].bar(xs, [summary[l].get(w, {}).get("ops_per_s") or 0 for w in tput], width, label=label_name(l))
        axes[1].bar(xs, [summary[l].get(w, {}).get("server_us_per_op") or 0 for w in tput], width, label=label_name(l))
    for ax, title in zip(axes, ("ops/s (higher is better)", "server CPU µs/op (lower is better)")):
        ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(tput))])
        ax.set_xticklabels(tput, rotation=30)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"chart: {path}")


# -- scale ---------------------------------------------------------------------------------

SCALE_SESSIONS = (1, 10, 100, 1000)
SCALE_IN_FLIGHT = 800      # requests in flight in all (but at least one per session)
SCALE_WATCHES = 10_000
SCALE_WATCH_SESSIONS = 10


@dataclasses.dataclass(frozen=True)
class ScalePoint:
    """One `scale` run: `workload` over `sessions` sessions in all, `watches` exists-watches set."""

    workload: str
    sessions: int
    watches: int = 0

    @property
    def name(self) -> str:
        return f"{self.workload} @{self.sessions}" + (f" +{self.watches // 1000}k watches" if self.watches else "")

    @property
    def window(self) -> int:
        return max(1, SCALE_IN_FLIGHT // self.sessions)


def scale_points() -> list[ScalePoint]:
    """get and mixed at 1 to 1,000 sessions; then set without and with 10,000 watches, and mixed
    with them, at 10 sessions (so `mixed @10` is the no-watch baseline of the last one)."""
    pts = [ScalePoint(w, n) for w in ("get", "mixed") for n in SCALE_SESSIONS]
    pts += [ScalePoint("set", SCALE_WATCH_SESSIONS), ScalePoint("set", SCALE_WATCH_SESSIONS, SCALE_WATCHES),
            ScalePoint("mixed", SCALE_WATCH_SESSIONS, SCALE_WATCHES)]
    return pts


def split_sessions(total: int, max_procs: int) -> tuple[int, int]:
    """(processes, sessions per process) for `total` sessions: as many processes, up to
    `max_procs`, as divide `total` evenly."""
    procs = max(p for p in range(1, max_procs + 1) if total % p == 0)
    return procs, total // procs


def cmd_scale(a: argparse.Namespace) -> int:
    stores = [s for s in a.store.split(",") if s]
    points = {p.name: p for p in scale_points()}
    b = Bench(a)
    mach = machine()
    servers: list[Server] = []
    t_begin = time.monotonic()

    def run(srv: Server, name: str, rnd: int) -> dict[str, Any]:
        pt = points[name]
        procs, per_proc = split_sessions(pt.sessions, a.procs)
        return b.load(srv, {"workload": pt.workload, "seed": rnd, "watches": pt.watches},
                      procs=procs, sessions=per_proc, window=pt.window)

    try:
        servers = make_servers(stores)
        for srv in servers:
            b.prepare(srv)
        runs = alternate(servers, list(points), a.rounds, run)
    finally:
        stop_servers(servers)
    labels = [s.label for s in servers]
    summary = summarize(runs, labels, list(points))
    meta = {"machine": mach, "args": vars(a), "wall_s": round(time.monotonic() - t_begin, 1),
            "points": {n: {**dataclasses.asdict(p), "window": p.window} for n, p in points.items()}}
    md = render_scale_md(summary, labels, list(points.values()), runs, meta)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.md").write_text(md)
    (RESULTS / "scale.json").write_text(json.dumps({"meta": meta, "runs": runs, "summary": summary},
                                                   indent=1, default=str))
    print()
    print(md)
    return 0


def render_scale_md(summary: dict, labels: list[str], points: list[ScalePoint], runs: Runs,
                    meta: dict[str, Any]) -> str:
    """scale.md: ops/s and p99 under load per point, ours beside Apache with ratios."""
    a = meta["args"]
    ours = [l for l in labels if l != "apache"]
    L = [
        "# Scale: zkserver vs Apache ZooKeeper 3.8 with many sessions and many watches",
        "",
        *_machine_lines(meta["machine"]),
        f"- runs: {a['rounds']} rounds, server order reversed every round; {a['duration']} s measured "
        f"after {a['warmup']} s warm-up per run; medians shown{' (--quick)' if a.get('quick') else ''}",
        f"- sessions spread over up to {a['procs']} client processes; {SCALE_IN_FLIGHT} requests in "
        f"flight in all (window = max(1, {SCALE_IN_FLIGHT} // sessions): 1,000 sessions keep 1,000 "
        "in flight); `maxClientCnxns=0` on both servers",
        f"- watches: before the window each of the {SCALE_WATCH_SESSIONS} sessions sets exists-watches "
        f"on its share of {SCALE_WATCHES:,} paths that do not exist (`{lg.WATCH_PARENT}/NNNNN`); the "
        "load then reads and writes the 1,000 keys, which nobody watches: no watch fires, the table "
        "only holds them. Compare with the same workload and sessions without watches.",
        "- p99 = client-observed latency under that load: from the send to the `recv` that returned "
        "the reply, every reply of the measured window.",
        f"- wall time {meta['wall_s']} s",
        "",
        "## Throughput and p99 (ratio = ours / Apache: ops/s > 1 means ours is faster, "
        "p99 < 1 means ours is faster)",
        "",
        "| workload | sessions x in flight | watches | Apache ops/s | Apache p99 µs |"
        + "".join(f" {label_name(l)} ops/s | ratio | p99 µs | p99 ratio |" for l in ours),
        "|---|---:|---:|---:|---:|" + "---:|---:|---:|---:|" * len(ours),
    ]
    for pt in points:
        ap = summary["apache"].get(pt.name, {})
        row = (f"| {pt.workload} | {pt.sessions:,} x {pt.window} | {pt.watches:,} | "
               f"{_n(ap.get('ops_per_s'))} | {_n(ap.get('p99_us'))} |")
        for l in ours:
            o = summary[l].get(pt.name, {})
            row += (f" {_n(o.get('ops_per_s'))} | {_ratio(o.get('ops_per_s'), ap.get('ops_per_s'))} |"
                    f" {_n(o.get('p99_us'))} | {_ratio(o.get('p99_us'), ap.get('p99_us'))} |")
        L.append(row)
    seen = []
    for l in labels:
        counts = sorted({r.get("server_watches") for p in points if p.watches for r in runs[l][p.name]},
                        key=str)
        seen.append(f"{label_name(l)} {', '.join('-' if c is None else f'{c:,}' for c in counts)}")
    L += ["", f"Watches the servers reported (`wchs`) once the sessions had set them: {'; '.join(seen)}."]
    L += _notes(summary, labels, meta)
    L.append("")
    return "\n".join(L)


# -- memory and restart ---------------------------------------------------------------------


def jvm_heap_used(pid: int) -> int | None:
    """Heap in use after a full GC (jcmd), bytes; None without jcmd."""
    if shutil.which("jcmd") is None:
        return None
    try:
        subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=60)
        out = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"used (\d+)K", out)
    return int(m.group(1)) * 1024 if m else None


def wait_count(srv: Server, path: str, count: int, timeout: float) -> float | None:
    """Poll until `path` shows `count` children; the monotonic time it did, None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc is not None and srv.proc.poll() is not None:
            raise RuntimeError(f"{srv.label} exited while restarting:\n{srv.log_tail()}")
        try:
            with lg.SyncClient(srv.host, srv.port, io_timeout=5.0) as c:
                n = c.num_children(path)
                if n == count:
                    return time.monotonic()
        except (OSError, struct.error):
            pass
        time.sleep(0.02)
    return None


DEFAULT_MEMORY_COUNT = 200_000
MEMORY_STEPS = 5


def cmd_memory(a: argparse.Namespace) -> int:
    stores = [s for s in a.store.split(",") if s]
    servers: list[Server] = []
    results: dict[str, dict[str, Any]] = {}
    mach = machine()
    parent = "/m"
    try:
        servers = make_servers(stores)
        for srv in servers:
            srv.start()
            lg.create_parent(srv.host, srv.port, parent)
            time.sleep(1.0)
            rss0 = lg.proc_rss_bytes(srv.pid)
            heap0 = jvm_heap_used(srv.pid) if srv.kind == "apache" else None
            t0 = time.monotonic()
            n = 0
            cpu_us = 0.0
            steps: list[tuple[int, int]] = []  # (znodes so far, RSS then): growth should stay linear
            errors: dict[str, int] = {}
            for _ in range(MEMORY_STEPS):
                r = lg.run_load(srv.host, srv.port,
                                {"workload": "populate", "parent": parent, "count": a.count // MEMORY_STEPS},
                                server_pid=srv.pid, procs=a.procs, sessions=a.sessions, window=a.window,
                                duration=900.0, warmup=0.0)
                n += r["ok_total"]
                cpu_us += (r.get("server_us_per_op") or 0.0) * r["ok_total"]
                for code, count in r["errors"].items():
                    errors[code] = errors.get(code, 0) + count
                steps.append((n, lg.proc_rss_bytes(srv.pid)))
            t_create = time.monotonic() - t0
            r = {"server_us_per_op": cpu_us / n if n else None, "errors": errors}
            time.sleep(2.0)    # let a store's writer settle
            with lg.SyncClient(srv.host, srv.port) as c:
                seen = c.num_children(parent)
            rss1 = lg.proc_rss_bytes(srv.pid)
            heap1 = jvm_heap_used(srv.pid) if srv.kind == "apache" else None
            res: dict[str, Any] = {
                "created": n, "seen": seen, "create_s": t_create, "create_rate": n / t_create,
                "server_us_per_create": r.get("server_us_per_op"),
                "rss_before": rss0, "rss_after": rss1,
                "rss_growth_per_znode": (rss1 - rss0) / n if n else None,
                "rss_growth_per_step": [(b - a_rss) / (m - k) for (k, a_rss), (m, b)
                                        in zip([(0, rss0), *steps], steps) if m > k],
                "errors": r["errors"],
            }
            if heap0 is not None and heap1 is not None:
                res["heap_growth_per_znode"] = (heap1 - heap0) / n
            print(f"[{srv.label}] {n} znodes in {t_create:.1f}s, RSS {rss0 / 2**20:.0f} -> "
                  f"{rss1 / 2**20:.0f} MiB, {res['rss_growth_per_znode']:.0f} B/znode", flush=True)
            if srv.kind == "ours" and getattr(srv, "store", "") == "memory":
                res["restart_s"] = None
                res["restart_note"] = "memory store keeps nothing across restarts"
            else:
                srv.stop()
                t_spawn = srv.spawn()
                t_ok = wait_count(srv, parent, seen or n, timeout=a.restart_timeout)
                res["restart_s"] = (t_ok - t_spawn) if t_ok is not None else None
                if t_ok is None:
                    res["restart_note"] = f"not answering with all {n} within {a.restart_timeout}s"
                else:
                    res["rss_after_restart"] = lg.proc_rss_bytes(srv.pid)
                print(f"[{srv.label}] restart until all {n} present: {res['restart_s']}", flush=True)
            results[srv.label] = res
            srv.stop()
    finally:
        stop_servers(servers)
    L = [
        "# Memory and restart: zkserver vs Apache ZooKeeper 3.8", "",
        f"- machine: {mach['nproc']} CPUs, {mach['cpu']}; {mach['date']}",
        f"- {a.count:,} znodes of 100 bytes, sequential creates under {parent}, pipelined "
        f"({a.procs} processes x {a.sessions} sessions x {a.window} in flight)",
        "- RSS growth = VmRSS after the creates (+2 s) minus VmRSS before, per znode. For Apache "
        "that is the JVM's RSS (-Xmx1g: heap growth, not live data); heap used after a full GC "
        "(jcmd GC.run + GC.heap_info) is shown beside it.",
        "- restart = from spawning the process until an `exists` on the parent shows all children.",
        f"- growth by step = RSS growth per znode over each fifth of the creates ({MEMORY_STEPS} "
        "steps): flat when memory grows linearly.",
        "",
        "| server | create rate | server µs/create | RSS before → after (MiB) | RSS growth per znode | heap growth per znode | restart until all present | RSS after restart (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lab, r in results.items():
        rst = f"{r['restart_s']:.2f} s" if r.get("restart_s") is not None else r.get("restart_note", "-")
        heap = r.get("heap_growth_per_znode")
        rss_r = r.get("rss_after_restart")
        L.append(f"| {label_name(lab)} | {_n(r['create_rate'])}/s | {_n(r.get('server_us_per_create'))} | "
                 f"{r['rss_before'] / 2**20:.0f} → {r['rss_after'] / 2**20:.0f} | "
                 f"{r['rss_growth_per_znode']:.0f} B | {f'{heap:.0f} B' if heap is not None else '-'} | "
                 f"{rst} | {f'{rss_r / 2**20:.0f}' if rss_r else '-'} |")
    L += ["", "| server | RSS growth per znode, step by step |", "|---|---|"]
    for lab, r in results.items():
        L.append(f"| {label_name(lab)} | {' / '.join(f'{g:.0f} B' for g in r['rss_growth_per_step'])} |")
    L.append("")
    md = "\n".join(L)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "memory" if a.count == DEFAULT_MEMORY_COUNT else f"memory-{a.count}"
    (RESULTS / f"{stem}.md").write_text(md)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"machine": mach, "args": vars(a), "results": results},
                                                    indent=1, default=str))
    print()
    print(md)
    return 0


# -- profile ---------------------------------------------------------------------------------


def top_from_raw(path: Path, n: int = 25) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """Self and inclusive sample counts per function from py-spy's raw (collapsed) output."""
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text("utf-8", "replace").splitlines():
        stack, _, cnt = line.rpartition(" ")
        if not stack or not cnt.isdigit():
            continue
        c = int(cnt)
        total += c
        frames = stack.split(";")
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        leaf = frames[-1]
        self_c[leaf] = self_c.get(leaf, 0) + c
        for f in set(frames):
            incl[f] = incl.get(f, 0) + c
    top_self = sorted(self_c.items(), key=lambda kv: -kv[1])[:n]
    top_incl = sorted(incl.items(), key=lambda kv: -kv[1])[:n]
    return top_self, top_incl, total


def cmd_profile(a: argparse.Namespace) -> int:
    workloads = [w for w in (a.workloads or "get,set").split(",") if w]
    stores = [s for s in a.store.split(",") if s]
    RESULTS.mkdir(parents=True, exist_ok=True)
    b = Bench(a)
    report = ["# Where our server spends its time", ""]
    use_pyspy = a.profiler == "py-spy" and shutil.which("py-spy") is not None
    if a.profiler == "py-spy" and not use_pyspy:
        print("py-spy not found (pip install py-spy): falling back to cProfile")
    for store in stores:
        for w in workloads:
            prof = RESULTS / f"profile-{store}-{w}"
            srv = Ours(f"ours-{store}", store,
                       profile_out=None if use_pyspy else prof.with_suffix(".prof"))
            try:
                srv.start()
                lg.setup_tree(srv.host, srv.port)
                b.load(srv, {"workload": "mixed", "seed": 99}, duration=a.server_warmup, warmup=0.0)
                spy = None
                if use_pyspy:
                    spy = subprocess.Popen(["py-spy", "record", "--pid", str(srv.pid), "--format", "raw",
                                            "--function", "--rate", "250", "--nonblocking",
                                            "--duration", str(int(math.ceil(a.duration))),
                                            "-o", str(prof.with_suffix(".txt"))],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    time.sleep(0.5)
                if w.startswith("lat-"):
                    r = lg.run_latency(srv.host, srv.port, w[4:], server_pid=srv.pid,
                                       duration=a.duration, warmup=0.5)
                else:
                    spec: dict[str, Any] = {"workload": w}
                    if w == "create":
                        spec["parent"] = f"{lg.ROOT}/seq-p"
                        lg.create_parent(srv.host, srv.port, spec["parent"])
                    r = b.load(srv, spec, warmup=0.0)
                if spy is not None:
                    try:
                        _, err = spy.communicate(timeout=a.duration + 60)
                    except subprocess.TimeoutExpired:
                        spy.kill()
                        _, err = spy.communicate(timeout=10)
                    if spy.returncode != 0:
                        print(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
            finally:
                srv.cleanup()   # with cProfile, SIGTERM makes twistd return and the stats get written
            report += [f"## {w} on storage={store}: {fmt_run(r)}", ""]
            if use_pyspy and prof.with_suffix(".txt").exists():
                top_self, top_incl, total = top_from_raw(prof.with_suffix(".txt"), a.top)
                report += [f"py-spy, {total} samples (non-idle). Top by self time:", "",
                           "| self % | function |", "|---:|---|"]
                report += [f"| {100 * c / total:.1f} | `{f}` |" for f, c in top_self]
                report += ["", "Top by inclusive time:", "", "| incl % | function |", "|---:|---|"]
                report += [f"| {100 * c / total:.1f} | `{f}` |" for f, c in top_incl]
                report.append("")
            elif prof.with_suffix(".prof").exists():
                import io
                import pstats
                s = io.StringIO()
                pstats.Stats(str(prof.with_suffix(".prof")), stream=s).sort_stats("tottime").print_stats(a.top)
                report += ["cProfile (whole server life, incl. setup and warm-up), by tottime:", "",
                           "```", s.getvalue().strip(), "```", ""]
    md = "\n".join(report)
    (RESULTS / "profile.md").write_text(md)
    print(md)
    return 0


# -- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = "bench"
    if argv and argv[0] in ("bench", "memory", "profile", "scale"):
        cmd = argv.pop(0)
    ap = argparse.ArgumentParser(prog=f"run.py {cmd}", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="memory" if cmd == "profile" else "sqlite",
                    help="our storage: sqlite|rocksdb|memory, or a comma list (one server each)")
    ap.add_argument("--duration", type=float, help="measured seconds per run (5; --quick 2)")
    ap.add_argument("--warmup", type=float, help="unmeasured seconds before each run (1; --quick 0.5)")
    ap.add_argument("--server-warmup", type=float,
                    help="untimed mixed load on each server after its start, for the JIT (5; --quick 2)")
    ap.add_argument("--rounds", type=int, help="rounds per server and workload (3; --quick 2)")
    ap.add_argument("--workloads", default="", help="comma list of " + ",".join(ALL_WORKLOADS))
    ap.add_argument("--procs", type=int, default=2, help="client processes (scale: at most)")
    ap.add_argument("--sessions", type=int, default=4, help="sessions per client process (not scale)")
    ap.add_argument("--window", type=int, default=100,
                    help="requests in flight per session (procs x sessions x window stays under "
                         "globalOutstandingLimit 1000 by default; not scale)")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 s, short warm-ups")
    ap.add_argument("--count", type=int, default=DEFAULT_MEMORY_COUNT,
                    help="memory: znodes to create (another count writes memory-<count>.md)")
    ap.add_argument("--restart-timeout", type=float, default=300.0)
    ap.add_argument("--profiler", choices=("py-spy", "cprofile"), default="py-spy")
    ap.add_argument("--top", type=int, default=25, help="profile: functions to list")
    a = ap.parse_args(argv)
    defaults = {"duration": 5.0, "warmup": 1.0, "rounds": 3, "server_warmup": 5.0}
    if a.quick:
        defaults = {"duration": 2.0, "warmup": 0.5, "rounds": 2, "server_warmup": 2.0}
    for k, v in defaults.items():   # explicit options win over --quick
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.rounds < 1 or a.duration <= 0 or a.procs < 1 or a.sessions < 1 or a.window < 1:
        sys.exit("rounds, duration, procs, sessions and window must be positive")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    lg.raise_nofile_limit()   # before the servers start: they and the load workers inherit it
    return {"bench": cmd_bench, "memory": cmd_memory, "profile": cmd_profile,
            "scale": cmd_scale}[cmd](a)


if __name__ == "__main__":
    sys.exit(main())
