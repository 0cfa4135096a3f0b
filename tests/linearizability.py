"""A linearizability checker for recorded histories of ZooKeeper operations on single znodes.

Each znode is a register with a version (ZooKeeper's Stat.version). A history is a list of
`Op`s, each with the wall-clock (monotonic) time its call started (`invoke`) and the time its
answer arrived (`complete`), or `complete=None` when no answer came (timeout, connection loss,
session expiry: the operation may or may not have taken effect, at any moment after `invoke`).

Operations and their recorded results (`Op.result`):

| kind   | arguments                         | results                                           |
|--------|-----------------------------------|---------------------------------------------------|
| create | key, value                        | "ok", "exists"                                    |
| set    | key, value, version (-1 = any)    | ("ok", new version) or "ok", "badversion", "nonode" |
| delete | key, version (-1 = any)           | "ok", "badversion", "nonode"                      |
| read   | key (sync + getData)              | ("ok", value, version) or ("ok", value), "nonode" |
| any    |                                   | "failed": a definite error, the op had no effect  |
|        |                                   | None with complete=None: unknown                  |

The search is Wing & Gong's with Lowe's memoization (as in Knossos and Porcupine): repeatedly
pick an operation that may take effect first among those not yet linearized (its invocation
precedes the earliest completion among them), apply it to the model if its recorded result
agrees, and backtrack on a dead end; (linearized set, model state) pairs already explored are
not explored again. Keys are checked one by one (linearizability is compositional). An
operation with an unknown result may take effect at any point after its invocation, or never
(equivalent to taking effect after everything else); an unknown read is dropped.

`check(history)` returns a `Result` (`ok`, and for a failure the key, the longest linearizable
prefix found and the operations none of whose orders worked); `History` records operations
from several threads, with `run()` for kazoo calls.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

ABSENT = None  # the model state of a key that does not exist
INF = float("inf")
UNKNOWN = None


@dataclass
class Op:
    client: int
    kind: str  # create / set / delete / read
    key: str
    invoke: float
    complete: float | None  # None: no answer (unknown outcome)
    result: Any = UNKNOWN
    value: bytes | None = None
    version: int = -1  # the expected version of set/delete
    id: int = field(default=-1, compare=False)

    @property
    def unknown(self) -> bool:
        return self.complete is None

    def __str__(self) -> str:
        what = {"create": f"create({self.value!r})", "set": f"set({self.value!r}, v={self.version})",
                "delete": f"delete(v={self.version})", "read": "read()"}.get(self.kind, self.kind)
        done = "?" if self.complete is None else f"{self.complete:.3f}"
        res = "unknown" if self.unknown else self.result
        return f"#{self.id} c{self.client} {self.key} {what} -> {res} [{self.invoke:.3f}, {done}]"


State = tuple[bytes | None, int] | None  # (value, version), or ABSENT


def step(state: State, op: Op) -> tuple[bool, State]:
    """Apply `op` to the model: (whether its recorded result is possible, the new state)."""
    r = op.result
    unknown = op.unknown
    if r == "failed":
        return True, state
    if op.kind == "create":
        if state is ABSENT:
            return unknown or r == "ok", (op.value, 0)
        return unknown or r == "exists", state
    if op.kind == "set":
        if state is ABSENT:
            return unknown or r == "nonode", state
        value, version = state
        if op.version != -1 and op.version != version:
            return unknown or r == "badversion", state
        ok = unknown or r == "ok" or (isinstance(r, tuple) and r[0] == "ok" and r[1] == version + 1)
        return ok, (op.value, version + 1)
    if op.kind == "delete":
        if state is ABSENT:
            return unknown or r == "nonode", state
        if op.version != -1 and op.version != state[1]:
            return unknown or r == "badversion", state
        return unknown or r == "ok", ABSENT
    if op.kind == "read":
        if state is ABSENT:
            return r == "nonode", state
        if not (isinstance(r, tuple) and r[0] == "ok"):
            return False, state
        if r[1] != state[0]:
            return False, state
        return len(r) < 3 or r[2] == state[1], state
    raise ValueError(f"unknown operation kind {op.kind!r}")


@dataclass
class Result:
    ok: bool
    key: str | None = None
    prefix: list[Op] = field(default_factory=list)  # the longest linearizable order found
    stuck: list[Op] = field(default_factory=list)  # what could come next there, all refused
    explored: int = 0

    def explain(self) -> str:
        if self.ok:
            return f"linearizable ({self.explored} states explored)"
        lines = [f"key {self.key}: not linearizable; longest linearizable prefix ({len(self.prefix)} ops) ends:"]
        lines += [f"  {op}" for op in self.prefix[-5:]]
        lines.append("then none of these can come next:")
        lines += [f"  {op}" for op in self.stuck[:8]]
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return self.ok


def check_key(ops: Sequence[Op], initial: State = ABSENT, max_states: int = 2_000_000) -> Result:
    """Whether the operations on one key are linearizable from `initial`."""
    ops = sorted((op for op in ops if not (op.unknown and op.kind == "read")), key=lambda o: o.invoke)
    n = len(ops)
    if n == 0:
        return Result(True)
    ret = [INF if op.unknown else op.complete for op in ops]
    known_mask = 0
    for i, op in enumerate(ops):
        if not op.unknown:
            known_mask |= 1 << i
    seen: set[tuple[int, State]] = set()
    best: tuple[int, list[int], int] = (-1, [], 0)  # (depth, order, done mask)
    # iterative DFS: each frame = (done mask, state, order so far, candidate iterator)
    stack: list[tuple[int, State, list[int], Iterable[int]]] = []

    def candidates(done: int) -> list[int]:
        """Ops not done that may be linearized next: invoked before the earliest completion
        among the ops not done (scan in invocation order, which bounds that completion)."""
        first = 0
        while done >> first & 1:
            first += 1
        limit = INF
        out = []
        for i in range(first, n):
            if done >> i & 1:
                continue
            if ops[i].invoke > limit:
                break
            out.append(i)
            if ret[i] < limit:
                limit = ret[i]
        return [i for i in out if ops[i].invoke <= limit]

    stack.append((0, initial, [], iter(candidates(0))))
    explored = 0
    while stack:
        done, state, order, it = stack[-1]
        if done & known_mask == known_mask:
            return Result(True, explored=explored)
        if len(order) > best[0]:
            best = (len(order), order, done)
        nxt = next(it, None)
        if nxt is None:
            stack.pop()
            continue
        ok, new_state = step(state, ops[nxt])
        if not ok:
            continue
        new_done = done | 1 << nxt
        if (new_done, new_state) in seen:
            continue
        seen.add((new_done, new_state))
        explored += 1
        if explored > max_states:
            raise RuntimeError(f"linearizability search gave up after {max_states} states")
        stack.append((new_done, new_state, order + [nxt], iter(candidates(new_done))))
    depth, order, done = best
    stuck = [ops[i] for i in candidates(done)]
    return Result(False, ops[0].key, [ops[i] for i in order], stuck, explored)


def check(history: Iterable[Op], initial: dict[str, State] | None = None) -> Result:
    """Check every key of `history`; the first failing key's Result, else ok."""
    by_key: dict[str, list[Op]] = {}
    for i, op in enumerate(history):
        if op.id < 0:
            op.id = i
        by_key.setdefault(op.key, []).append(op)
    explored = 0
    for key in sorted(by_key):
        r = check_key(by_key[key], (initial or {}).get(key, ABSENT))
        if not r.ok:
            return r
        explored += r.explored
    return Result(True, explored=explored)


# -- recording -----------------------------------------------------------------------------------

class History:
    """A thread-safe list of Ops, timed with time.monotonic()."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.lock = threading.Lock()
        self.ids = itertools.count()

    def run(self, client: int, kind: str, key: str, call: Callable[[], Any], value: bytes | None = None,
            version: int = -1) -> Op:
        """Time `call()` (a kazoo call) and record its outcome, mapped to a result:
        NodeExists -> "exists", BadVersion -> "badversion", NoNode -> "nonode", other
        definite errors (e.g. NotReadOnly) -> "failed", connection loss / timeouts / session
        loss -> unknown. For set, `call` returns a Stat; for read a (data, Stat)."""
        from kazoo import exceptions as ke
        from kazoo.handlers.threading import KazooTimeoutError

        op = Op(client, kind, key, time.monotonic(), None, UNKNOWN, value, version, next(self.ids))
        try:
            out = call()
        except ke.NodeExistsError:
            op.result = "exists"
        except ke.BadVersionError:
            op.result = "badversion"
        except ke.NoNodeError:
            op.result = "nonode"
        except (ke.ConnectionLoss, ke.SessionExpiredError, ke.OperationTimeoutError, KazooTimeoutError,
                ke.ConnectionClosedError, ke.SessionMovedError):
            op.result = UNKNOWN
        except ke.NotReadOnlyCallError:
            op.result = "failed"
        except ke.ZookeeperError:
            op.result = UNKNOWN  # anything else: assume nothing
        else:
            if kind == "set":
                op.result = ("ok", out.version)
            elif kind == "read":
                op.result = ("ok", out[0], out[1].version)
            else:
                op.result = "ok"
        if op.result is not UNKNOWN:
            op.complete = time.monotonic()
        with self.lock:
            self.ops.append(op)
        return op

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for op in self.ops:
                k = f"{op.kind}:{'unknown' if op.unknown else (op.result if isinstance(op.result, str) else 'ok')}"
                out[k] = out.get(k, 0) + 1
        return out
