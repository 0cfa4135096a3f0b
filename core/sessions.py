"""Sessions: ids, passwords, liveness and tick-driven expiry (SessionTrackerImpl + ExpiryQueue).

Expiry is bucketed by tick as in ZooKeeper: a touch moves the session to the bucket of
`now + timeout` rounded up to the next tick boundary, and each tick expires one whole bucket.
The tracker only records; closing a session is a closeSession txn made by the consensus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import Code, ZKError

# ZooKeeper's superSecret: passwords are Random(sessionId ^ SECRET).nextBytes(16), so every
# member (Java ones included) can check a password without storing it.
SECRET = 0xB3415C00
_MASK64 = (1 << 64) - 1
CONTAINER_OWNER = 1 << 63


def session_password(session_id: int) -> bytes:
    """java.util.Random(sessionId ^ superSecret).nextBytes(16), as ZooKeeperServer.generatePasswd."""
    seed = ((session_id ^ SECRET) ^ 0x5DEECE66D) & ((1 << 48) - 1)
    out = bytearray()
    while len(out) < 16:
        seed = (seed * 0x5DEECE66D + 0xB) & ((1 << 48) - 1)
        rnd = seed >> 16
        for _ in range(min(4, 16 - len(out))):
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def first_session_id(server_id: int, now_ms: int) -> int:
    """SessionTrackerImpl.initializeNextSessionId: server id in the top byte, clock bits below."""
    sid = ((now_ms << 24) & _MASK64) >> 8
    sid |= (server_id << 56) & _MASK64
    if sid == CONTAINER_OWNER:
        sid += 1
    return sid - (1 << 64) if sid >= 1 << 63 else sid


@dataclass(slots=True)
class Session:
    """A live session: its negotiated timeout (ms) and the tick bucket it expires in."""

    session_id: int
    timeout: int
    expires_at: int = 0
    closing: bool = False
    extra: dict[str, object] = field(default_factory=dict)


class SessionTracker:
    """Live sessions by id, expired by tick buckets. Times are milliseconds."""

    # the attributes the C accelerator reads by their slots (core/_native.c); the rest in __dict__
    __slots__ = ("sessions", "__dict__", "__weakref__")

    def __init__(self, server_id: int, tick_ms: int, now_ms: int) -> None:
        self.tick_ms = tick_ms
        self.sessions: dict[int, Session] = {}
        self._buckets: dict[int, set[int]] = {}
        self._next_id = first_session_id(server_id, now_ms)
        self._next_expiry = self._round(now_ms)

    def _round(self, t: int) -> int:
        return (t // self.tick_ms + 1) * self.tick_ms

    def new_session_id(self) -> int:
        """Mint the next session id of this member."""
        sid = self._next_id
        self._next_id += 1
        return sid

    def add(self, session_id: int, timeout: int, now_ms: int) -> Session:
        """Track a session (on createSession commit, or on recovery)."""
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = Session(session_id, timeout)
        s.timeout = timeout
        self.touch(session_id, now_ms)
        return s

    def remove(self, session_id: int) -> None:
        """Forget a session (its closeSession txn was applied)."""
        s = self.sessions.pop(session_id, None)
        if s is not None:
            bucket = self._buckets.get(s.expires_at)
            if bucket is not None:
                bucket.discard(session_id)

    def touch(self, session_id: int, now_ms: int) -> bool:
        """Record activity; False if the session is unknown or closing."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        expires = self._round(now_ms + s.timeout)
        if expires != s.expires_at:
            old = self._buckets.get(s.expires_at)
            if old is not None:
                old.discard(session_id)
                if not old:
                    del self._buckets[s.expires_at]
            self._buckets.setdefault(expires, set()).add(session_id)
            s.expires_at = expires
        return True

    def check(self, session_id: int) -> None:
        """Raise SESSIONEXPIRED unless the session is live and not closing."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            raise ZKError(Code.SESSIONEXPIRED)

    def set_closing(self, session_id: int) -> None:
        """Mark a session whose closeSession is on its way (no more requests accepted)."""
        s = self.sessions.get(session_id)
        if s is not None:
            s.closing = True

    def expired(self, now_ms: int) -> list[Session]:
        """Sessions whose bucket has passed by `now_ms`; they are marked closing."""
        out: list[Session] = []
        while self._next_expiry <= now_ms:
            for sid in self._buckets.pop(self._next_expiry, ()):
                s = self.sessions.get(sid)
                if s is not None and not s.closing:
                    s.closing = True
                    out.append(s)
            self._next_expiry += self.tick_ms
        return out
