"""The linearizability checker (tests/linearizability.py) accepts what it must and rejects what
it must: stale reads, lost or reordered acknowledged writes, failed writes that appear."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from linearizability import Op, check, check_key  # noqa: E402

pytestmark = pytest.mark.timeout(30)


class H:
    """A tiny history builder: times are plain numbers."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, client: int, kind: str, start: float, end: float | None, result: object = None,
            value: bytes | None = None, version: int = -1, key: str = "/k") -> H:
        self.ops.append(Op(client, kind, key, start, end, result, value, version, len(self.ops)))
        return self

    def create(self, c, s, e, result="ok", value=b"0", key="/k"):
        return self.add(c, "create", s, e, result, value, key=key)

    def set(self, c, s, e, value, result, version=-1, key="/k"):
        return self.add(c, "set", s, e, result, value, version, key=key)

    def read(self, c, s, e, value, version=None, key="/k"):
        result = "nonode" if value is None else (("ok", value) if version is None else ("ok", value, version))
        return self.add(c, "read", s, e, result, key=key)


# -- accepted ------------------------------------------------------------------------------------

def test_sequential_history_is_linearizable() -> None:
    h = (H().read(1, 0, 1, None).create(1, 2, 3).read(2, 4, 5, b"0", 0)
         .set(1, 6, 7, b"a", ("ok", 1), version=0).read(2, 8, 9, b"a", 1)
         .set(2, 10, 11, b"b", "badversion", version=0).read(1, 12, 13, b"a", 1))
    assert check(h.ops).ok


def test_concurrent_writes_may_take_either_order() -> None:
    # two overlapping unconditional writes; readers after both see one of them, consistently
    h = H().create(1, 0, 1).set(1, 2, 6, b"a", "ok").set(2, 3, 5, b"b", "ok")
    assert check(H().create(1, 0, 1).set(1, 2, 6, b"a", "ok").set(2, 3, 5, b"b", "ok").read(3, 7, 8, b"a").ops)
    assert check(h.read(3, 7, 8, b"b").ops)
    # a read overlapping a write may see the old or the new value
    assert check(H().create(1, 0, 1).set(1, 2, 6, b"a", "ok").read(2, 3, 4, b"0").ops)
    assert check(H().create(1, 0, 1).set(1, 2, 6, b"a", "ok").read(2, 3, 4, b"a").ops)


def test_conditional_writes_race_one_wins() -> None:
    h = (H().create(1, 0, 1)
         .set(1, 2, 5, b"a", ("ok", 1), version=0)
         .set(2, 2.5, 5.5, b"b", "badversion", version=0)
         .read(3, 6, 7, b"a", 1))
    assert check(h.ops).ok


def test_unknown_write_may_or_may_not_take_effect() -> None:
    base = lambda: H().create(1, 0, 1).set(1, 2, None, b"x", None)  # noqa: E731
    assert check(base().read(2, 3, 4, b"0").read(2, 5, 6, b"0").ops)  # never applied (so far)
    assert check(base().read(2, 3, 4, b"0").read(2, 5, 6, b"x").ops)  # applied late
    assert check(base().read(2, 3, 4, b"x").read(2, 5, 6, b"x").ops)  # applied early
    # an unknown create, then a definite one failing: the unknown one took effect
    assert check(H().create(1, 0, None, None, b"a").create(2, 5, 6, "exists", b"b").read(3, 7, 8, b"a").ops)


def test_failed_write_that_is_not_seen_is_fine() -> None:
    h = H().create(1, 0, 1).set(1, 2, 3, b"x", "failed").read(2, 4, 5, b"0", 0)
    assert check(h.ops).ok


def test_keys_are_checked_independently() -> None:
    h = (H().create(1, 0, 1, key="/a").create(2, 0, 1, key="/b", value=b"1")
         .set(1, 2, 3, b"a1", ("ok", 1), 0, key="/a").read(2, 4, 5, b"a1", 1, key="/a")
         .read(1, 4, 5, b"1", 0, key="/b"))
    assert check(h.ops).ok


def test_random_sequentially_generated_histories_are_accepted() -> None:
    """Histories made by applying ops one at a time (each in its own real-time slot, or
    overlapping neighbours) are linearizable by construction."""
    rng = random.Random(1234)
    for trial in range(30):
        state = None
        h = H()
        t = 0.0
        for i in range(60):
            kind = rng.choice(["create", "set", "set", "read", "read"])
            s = t + rng.random() * 0.5
            point = s + rng.random()  # the linearization point
            e = point + rng.random() * 1.5  # completions overlap later ops' invocations
            t = point
            if kind == "create":
                if state is None:
                    state = (b"c%d" % i, 0)
                    h.create(i % 4, s, e, "ok", state[0])
                else:
                    h.create(i % 4, s, e, "exists", b"c%d" % i)
            elif kind == "set":
                expect = rng.choice([-1, state[1] if state else 0, 99])
                if state is None:
                    h.set(i % 4, s, e, b"s%d" % i, "nonode", expect)
                elif expect not in (-1, state[1]):
                    h.set(i % 4, s, e, b"s%d" % i, "badversion", expect)
                else:
                    state = (b"s%d" % i, state[1] + 1)
                    h.set(i % 4, s, e, state[0], ("ok", state[1]), expect)
            else:
                h.read(i % 4, s, e, state[0] if state else None, state[1] if state else None)
        # make linearization points unambiguous: ops must not end before a later op's point
        r = check_key(h.ops)
        assert r.ok, (trial, r.explain())


# -- rejected ------------------------------------------------------------------------------------

def test_stale_read_after_acknowledged_write_is_rejected() -> None:
    h = H().create(1, 0, 1).set(1, 2, 3, b"new", ("ok", 1), 0).read(2, 4, 5, b"0", 0)
    r = check(h.ops)
    assert not r.ok
    assert r.key == "/k" and any(op.kind == "read" for op in r.stuck), r.explain()


def test_lost_acknowledged_write_is_rejected() -> None:
    # the write was acknowledged, later reads never see it (the version did not move either)
    h = (H().create(1, 0, 1).set(1, 2, 3, b"a", ("ok", 1), 0)
         .set(2, 4, 5, b"b", ("ok", 1), 0))  # a second conditional write on version 0 also "succeeds"
    assert not check(h.ops).ok
    h = H().create(1, 0, 1).set(1, 2, 3, b"a", ("ok", 1)).read(2, 10, 11, b"0")
    assert not check(h.ops).ok


def test_lost_acknowledged_create_is_rejected() -> None:
    h = H().create(1, 0, 1, "ok", b"a").read(2, 2, 3, None)
    assert not check(h.ops).ok


def test_reordered_writes_are_rejected() -> None:
    # a then b, sequential in real time; a reader after both sees a (b's effect came first)
    h = H().create(1, 0, 1).set(1, 2, 3, b"a", "ok").set(1, 4, 5, b"b", "ok").read(2, 6, 7, b"a")
    assert not check(h.ops).ok
    # two readers disagree on the order of two concurrent writes
    h = (H().create(1, 0, 1).set(1, 2, 10, b"a", "ok").set(2, 2, 10, b"b", "ok")
         .read(3, 3, 4, b"a").read(3, 5, 6, b"b").read(4, 3, 4, b"b").read(4, 5, 6, b"a"))
    assert not check(h.ops).ok


def test_failed_write_that_appears_is_rejected() -> None:
    h = H().create(1, 0, 1).set(1, 2, 3, b"x", "badversion", version=7).read(2, 4, 5, b"x")
    assert not check(h.ops).ok
    h = H().create(1, 0, 1).set(1, 2, 3, b"x", "failed").read(2, 4, 5, b"x")
    assert not check(h.ops).ok
    h = H().create(1, 0, 1, "exists", b"a").read(2, 4, 5, b"a")  # "exists" but nobody else created it
    assert not check(h.ops).ok


def test_version_numbers_must_agree() -> None:
    h = H().create(1, 0, 1).set(1, 2, 3, b"a", ("ok", 5))
    assert not check(h.ops).ok
    h = H().create(1, 0, 1).set(1, 2, 3, b"a", "ok").read(2, 4, 5, b"a", 2)
    assert not check(h.ops).ok


def test_unknown_write_cannot_take_effect_before_it_was_invoked() -> None:
    h = H().create(1, 0, 1).read(2, 2, 3, b"x").set(1, 4, None, b"x", None)
    assert not check(h.ops).ok


def test_large_concurrent_history_is_checked_quickly() -> None:
    """5 clients, 600 ops with overlapping intervals on one key: found linearizable fast, and a
    single stale read planted at the end is found."""
    rng = random.Random(42)
    h = H().create(0, 0, 0.5)
    state = (b"0", 0)
    t = 1.0
    for i in range(600):
        s = t
        t += 0.1
        e = t + rng.random() * 0.3
        if i % 3 == 0:
            state = (b"v%d" % i, state[1] + 1)
            h.set(i % 5, s, e, state[0], ("ok", state[1]), state[1] - 1)
        else:
            h.read(i % 5, s, e, state[0], state[1])
    assert check(h.ops).ok
    h.read(9, t + 5, t + 6, b"v0", 1)
    assert not check(h.ops).ok
