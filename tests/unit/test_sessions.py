"""Session ids, passwords and tick-bucketed expiry, as ZooKeeper's SessionTrackerImpl."""

from __future__ import annotations

import pytest

from core.errors import Code, ZKError
from core.sessions import SECRET, SessionTracker, first_session_id, session_password


def test_password_is_java_random_next_bytes() -> None:
    # new java.util.Random(42).nextInt() == -1170105035 == 0xBA419D35, bytes taken low first
    assert session_password(42 ^ SECRET)[:4] == bytes.fromhex("359d41ba")
    assert len(session_password(1)) == 16
    assert session_password(7) == session_password(7) != session_password(8)


def test_session_ids_carry_the_server_id_in_the_top_byte() -> None:
    sid = first_session_id(1, 1_764_150_000_000)
    assert (sid >> 56) & 0xFF == 1
    assert (first_session_id(200, 1_764_150_000_000) >> 56) & 0xFF == 200


def test_expiry_happens_on_the_tick_after_the_timeout() -> None:
    t = SessionTracker(1, tick_ms=2000, now_ms=0)
    sid = t.new_session_id()
    t.add(sid, 4000, now_ms=100)  # bucket: round_up(4100) = 6000
    assert t.expired(5999) == []
    expired = t.expired(6000)
    assert [s.session_id for s in expired] == [sid]
    assert t.expired(20000) == []  # reported once


def test_touch_moves_the_session_to_a_later_bucket() -> None:
    t = SessionTracker(1, tick_ms=1000, now_ms=0)
    sid = t.new_session_id()
    t.add(sid, 3000, now_ms=0)
    assert t.touch(sid, 2500)
    assert t.expired(4000) == []
    assert [s.session_id for s in t.expired(6000)] == [sid]


def test_closing_and_removed_sessions_fail_the_check() -> None:
    t = SessionTracker(1, tick_ms=1000, now_ms=0)
    a, b = t.new_session_id(), t.new_session_id()
    t.add(a, 3000, 0)
    t.add(b, 3000, 0)
    t.check(a)
    t.set_closing(a)
    with pytest.raises(ZKError) as e:
        t.check(a)
    assert e.value.code == Code.SESSIONEXPIRED
    assert not t.touch(a, 10)
    t.remove(b)
    with pytest.raises(ZKError):
        t.check(b)
