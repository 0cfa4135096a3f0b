"""Storage numbers: durable write throughput per store, and recovery time of 200,000 znodes,
each beside Apache ZooKeeper 3.8 in the same run.

    python bench/storage.py [--store sqlite,rocksdb] [--rounds 3] [--duration 5]
                            [--count 200000] [--restarts 3]

Throughput: Apache (forceSync on) and one of ours per --store (forceSync on: every reply after
its group commit's sync) run the pipelined load generator (bench/loadgen.py: 2 processes x 4
sessions x 100 in flight) on the durable-write workloads `set` (setData, 100 B, 1,000 keys) and
`create` (sequential creates, 100 B), --rounds rounds, the server order reversed every round,
after an untimed warm-up; medians over rounds.

Recovery: on a fresh server of each kind, --count sequential creates of 100 bytes under /m
(pipelined), then --restarts times: stop (SIGTERM), start on the same dataDir, and time from
spawning the process until `exists /m` shows all --count children (the servers take turns, the
order reversed every restart); the median is reported. snapCount is the default (100,000) for
every server, so a restart loads the newest snapshot and replays the log after it.

Results: bench/results/storage.md and storage.json. Servers run on free ports of 127.0.0.x and
are stopped by their PID in `finally` (bench/run.py's Server).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen as lg  # noqa: E402
import run as br  # noqa: E402

WORKLOADS = ["set", "create"]
PARENT = "/m"


def median(values: list[float]) -> float | None:
    """The median, None for no values."""
    return statistics.median(values) if values else None


def throughput(a: argparse.Namespace, stores: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every round of every durable-write workload on Apache and each store: the load
    generator's results, by server label and workload."""
    bench = br.Bench(a)
    servers: list[br.Server] = []
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        servers = br.make_servers(stores)
        for srv in servers:
            srv.start()
            lg.setup_tree(srv.host, srv.port)
            print(f"[{srv.label}] pid {srv.pid} on {srv.host}:{srv.port}", flush=True)
            bench.load(srv, {"workload": "mixed", "seed": 99}, duration=a.server_warmup, warmup=0.0)
        runs.update(br.alternate(servers, WORKLOADS, a.rounds, bench.run_one))
    finally:
        for srv in servers:
            try:
                srv.cleanup()
            except Exception as e:  # keep stopping the others
                print(f"stopping {srv.label}: {e}", file=sys.stderr)
    return runs


def recovery(a: argparse.Namespace, stores: list[str]) -> dict[str, dict[str, Any]]:
    """Populate each server with a.count znodes, then restart them in turns a.restarts times;
    the seconds from spawn until all children are seen, by server label."""
    servers: list[br.Server] = []
    results: dict[str, dict[str, Any]] = {}
    try:
        servers = br.make_servers(stores)
        for srv in servers:
            srv.start()
            lg.create_parent(srv.host, srv.port, PARENT)
            t0 = time.monotonic()
            r = lg.run_load(srv.host, srv.port,
                            {"workload": "populate", "parent": PARENT, "count": a.count},
                            server_pid=srv.pid, procs=a.procs, sessions=a.sessions,
                            window=a.window, duration=900.0, warmup=0.0)
            created = r["ok_total"]
            with lg.SyncClient(srv.host, srv.port) as c:
                seen = c.num_children(PARENT)
            results[srv.label] = {"created": created, "seen": seen,
                                  "create_s": time.monotonic() - t0, "restart_s": []}
            print(f"[{srv.label}] {seen} znodes under {PARENT}", flush=True)
            srv.stop()
        for rnd in range(a.restarts):
            for srv in servers if rnd % 2 == 0 else list(reversed(servers)):
                res = results[srv.label]
                t_spawn = srv.spawn()
                t_ok = br.wait_count(srv, PARENT, res["seen"], timeout=a.restart_timeout)
                if t_ok is None:
                    raise RuntimeError(f"{srv.label}: not all {res['seen']} znodes within "
                                       f"{a.restart_timeout}s:\n{srv.log_tail()}")
                res["restart_s"].append(t_ok - t_spawn)
                print(f"restart {rnd + 1}/{a.restarts} {srv.label:13s} {t_ok - t_spawn:6.2f} s",
                      flush=True)
                srv.stop()
    finally:
        for srv in servers:
            try:
                srv.cleanup()
            except Exception as e:
                print(f"stopping {srv.label}: {e}", file=sys.stderr)
    return results


def render(a: argparse.Namespace, mach: dict[str, str], labels: list[str],
           runs: dict[str, dict[str, list[dict[str, Any]]]],
           restarts: dict[str, dict[str, Any]]) -> str:
    """The Markdown report: one table, ours against Apache as ratios."""
    def ops(label: str, w: str) -> float | None:
        return median([r["ops_per_s"] for r in runs.get(label, {}).get(w, [])])

    def srv_us(label: str, w: str) -> float | None:
        return median([r["server_us_per_op"] for r in runs.get(label, {}).get(w, [])
                       if r.get("server_us_per_op") is not None])

    def restart(label: str) -> float | None:
        return median(restarts.get(label, {}).get("restart_s", []))

    lines = [
        "# Storage: zkserver's stores vs Apache ZooKeeper 3.8", "",
        f"- machine: {mach['nproc']} CPUs, {mach['cpu']}, kernel {mach['kernel']}, "
        f"Python {mach['python']}, {mach['java']}; {mach['date']}",
        f"- durable writes (forceSync on everywhere): pipelined, {a.procs} processes x "
        f"{a.sessions} sessions x {a.window} in flight, {a.rounds} rounds of {a.duration:g} s "
        f"(+{a.warmup:g} s warm-up); medians; µs/op = server CPU per op",
        f"- recovery: {a.count:,} znodes of 100 bytes under {PARENT}, then {a.restarts} restarts "
        "each: from spawning the process until `exists` shows every child; median",
        "- ratio = ours / Apache: > 1 is ours faster for throughput, < 1 is ours faster for time",
        "",
        "| server | set ops/s | ratio | set µs/op | create ops/s | ratio | create µs/op "
        f"| recover {a.count // 1000}k znodes | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = "apache"
    for label in labels:
        cells = [br.label_name(label)]
        for w in WORKLOADS:
            cells += [br._n(ops(label, w)) + "/s",
                      "1" if label == base else br._ratio(ops(label, w), ops(base, w)),
                      br._n(srv_us(label, w))]
        t = restart(label)
        cells += [f"{t:.2f} s" if t is not None else "-",
                  "1" if label == base else br._ratio(t, restart(base))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Every run:", ""]
    for label in labels:
        per = ", ".join(f"{w} " + " / ".join(f"{r['ops_per_s']:.0f}" for r in runs[label][w])
                        for w in WORKLOADS)
        rs = " / ".join(f"{t:.2f}" for t in restarts[label]["restart_s"])
        lines.append(f"- {br.label_name(label)}: ops/s {per}; restarts {rs} s")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both parts and write bench/results/storage.md + storage.json."""
    ap = argparse.ArgumentParser(prog="storage.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="sqlite,rocksdb", help="our stores, comma separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--server-warmup", type=float, default=5.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--restart-timeout", type=float, default=300.0)
    ap.add_argument("--skip-throughput", action="store_true")
    a = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, br._on_signal)
    stores = [s for s in a.store.split(",") if s]
    mach = br.machine()
    t0 = time.monotonic()
    runs = {} if a.skip_throughput else throughput(a, stores)
    restarts = recovery(a, stores)
    labels = ["apache"] + [f"ours-{s}" for s in stores]
    for label in labels:
        runs.setdefault(label, {w: [] for w in WORKLOADS})
    md = render(a, mach, labels, runs, restarts)
    br.RESULTS.mkdir(parents=True, exist_ok=True)
    (br.RESULTS / "storage.md").write_text(md)
    (br.RESULTS / "storage.json").write_text(json.dumps(
        {"machine": mach, "args": vars(a), "wall_s": round(time.monotonic() - t0, 1),
         "runs": runs, "recovery": restarts}, indent=1, default=str))
    print()
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
