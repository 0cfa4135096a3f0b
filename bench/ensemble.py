"""3-member ensembles, ours vs Apache ZooKeeper 3.8: throughput through a follower, and failover.

    python bench/ensemble.py                      # sqlite, 3 s per workload, tickTime 2000
    python bench/ensemble.py --store memory --duration 5 --tick 2000 --rounds 2

For each kind: start 3 members on 127.0.0.x (tests/ensemble/conftest.py's Ensemble: free ports,
own dataDirs, 4lw on, AdminServer off, every process stopped by PID in `finally`), then
- `set` and `get` throughput with bench/loadgen.py (pipelined, 1 process x 4 sessions x 100 in
  flight) against a follower (writes are forwarded to the leader and committed by a quorum);
- leader failover: kill -9 the leader, then from a surviving member try a create every 50 ms
  (new kazoo connection each time, 1 s timeouts) until one succeeds: the time from the kill.
Prints a markdown table with ratios (ours / Apache; throughput > 1 = ours faster, failover < 1
= ours faster). Both kinds run on the same 2 cores as the load generator: numbers are relative.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from tests.ensemble.conftest import Ensemble, java_available  # noqa: E402


def loadgen(member: Any, workload: str, duration: float) -> dict[str, Any]:
    """bench/loadgen.py's JSON result for one workload on one member."""
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "loadgen.py"), member.hosts, "--workload", workload,
         "--duration", str(duration), "--procs", "1", "--sessions", "4", "--window", "100",
         "--pid", str(member.pid)],
        capture_output=True, text=True, timeout=duration * 4 + 120, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen {workload} failed: {out.stderr[-2000:]}")
    r = json.loads(out.stdout)
    if r.get("errors"):
        print(f"  ({workload} errors: {r['errors']})", file=sys.stderr)
    return dict(r)


def failover(e: Ensemble, timeout: float = 90.0) -> float:
    from kazoo.client import KazooClient

    leader = e.leader()
    survivors = [m for m in e.members if m is not leader]
    t0 = time.monotonic()
    leader.kill()
    i = 0
    while time.monotonic() - t0 < timeout:
        target = survivors[i % 2]
        i += 1
        zk = KazooClient(hosts=target.hosts, timeout=2.0, connection_retry=None)
        try:
            zk.start(timeout=1.0)
            zk.create(f"/failover-{i}", b"x")
            return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - not serving yet
            time.sleep(0.05)
        finally:
            try:
                zk.stop()
                zk.close()
            except Exception:  # noqa: BLE001
                pass
    raise TimeoutError("no write succeeded after the leader was killed")


def measure(kind: str, store: str, tick: int, duration: float) -> dict[str, float]:
    java = (1, 2, 3) if kind == "apache" else ()
    e = Ensemble(3, java=java, storage=store, tick=tick)
    try:
        e.start(timeout=90)
        follower = e.followers()[0]
        res = {
            "set_follower": float(loadgen(follower, "set", duration)["ops_per_s"]),
            "get_follower": float(loadgen(follower, "get", duration)["ops_per_s"]),
            "set_leader": float(loadgen(e.leader(), "set", duration)["ops_per_s"]),
        }
        for op in ("set", "get"):  # one request in flight, through a follower
            lat = loadgen(follower, f"lat-{op}", duration)
            res[f"{op}_p50_us"] = float(lat["p50_us"])
            res[f"{op}_p99_us"] = float(lat["p99_us"])
        res["failover_s"] = failover(e)
        return res
    finally:
        e.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default="sqlite")
    ap.add_argument("--tick", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    if not java_available():
        sys.exit("Debian's zookeeper package (Java ZooKeeper 3.8) is needed")
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "apache": []}
    for r in range(a.rounds):
        for kind in (("ours", "apache") if r % 2 == 0 else ("apache", "ours")):
            print(f"round {r + 1}: {kind} ...", file=sys.stderr)
            runs[kind].append(measure(kind, a.store, a.tick, a.duration))
            print(f"  {runs[kind][-1]}", file=sys.stderr)
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in runs.items()}
    rows = [("set via a follower (ops/s)", "set_follower", "{:,.0f}"),
            ("get on a follower (ops/s)", "get_follower", "{:,.0f}"),
            ("set on the leader (ops/s)", "set_leader", "{:,.0f}"),
            ("set via a follower, 1 in flight: p50 (µs)", "set_p50_us", "{:,.0f}"),
            ("set via a follower, 1 in flight: p99 (µs)", "set_p99_us", "{:,.0f}"),
            ("get on a follower, 1 in flight: p50 (µs)", "get_p50_us", "{:,.0f}"),
            ("get on a follower, 1 in flight: p99 (µs)", "get_p99_us", "{:,.0f}"),
            ("leader failover: kill -9 to first write (s)", "failover_s", "{:.2f}")]
    print(f"3-member ensembles on 127.0.0.x, ours storage={a.store}, tickTime={a.tick} ms, "
          f"initLimit=10, syncLimit=5, {a.duration:g} s per load run, {a.rounds} round(s), medians\n")
    print("| measure | ours | Apache 3.8 | ours / Apache |")
    print("|---|---:|---:|---:|")
    for label, key, fmt in rows:
        o, j = med["ours"][key], med["apache"][key]
        print(f"| {label} | {fmt.format(o)} | {fmt.format(j)} | {o / j:.2f} |")


if __name__ == "__main__":
    main()
