"""The ``digest`` scheme, as ZooKeeper's DigestAuthenticationProvider (SHA1, the default).

An id is ``user:base64(sha1("user:password"))``. Authentication never fails: whatever the
client sends becomes the id it names (a wrong password only shows up later as NOAUTH), and
a credential without ':' hashes the whole string under the whole string's name.
"""

from __future__ import annotations

import base64
import hashlib

from core.interfaces import PeerInfo
from core.records import Id


def generate_digest(id_password: str) -> str:
    """ZooKeeper's generateDigest: the name before the first ':' (the whole string when there
    is none), ':', then base64 of SHA1 over the whole UTF-8 string."""
    user = id_password.split(":", 1)[0]
    # surrogatepass: a str never built from bytes could hold lone surrogates; Java writes '?'
    # for them, which no decoded AuthPacket can produce, so any stable choice will do.
    raw = id_password.encode("utf-8", "surrogatepass")
    return user + ":" + base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii")


def digest_id(user: str, password: str) -> str:
    """The digest id a client authenticating as ``user:password`` gets (as ZooKeeper would:
    a ``user`` containing ':' is cut at its first ':')."""
    return generate_digest(f"{user}:{password}")


def _java_split_count(s: str, sep: str) -> int:
    """len(s.split(sep)) in Java (no limit): trailing empty strings are dropped."""
    parts = s.split(sep)
    if len(parts) == 1:  # no match: Java returns the input itself, even when empty
        return 1
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts)


class DigestProvider:
    """The ``digest`` AuthProvider; ``super_digest`` (``super:<base64>``) enables super."""

    scheme = "digest"
    is_authenticated = True

    def __init__(self, super_digest: str | None = None) -> None:
        self.super_digest = super_digest

    def authenticate(self, peer: PeerInfo, auth: bytes) -> list[Id] | None:
        """The digest id the credential names, preceded by ``super:`` when it equals the super
        digest. Never None: ZooKeeper accepts any credential."""
        digest = generate_digest(auth.decode("utf-8", "replace"))
        ids = []
        if self.super_digest is not None and digest == self.super_digest:
            ids.append(Id("super", ""))
        ids.append(Id(self.scheme, digest))
        return ids

    def user_name(self, id: str) -> str:
        """The name whoAmI shows for a digest id: the part before the first ':' (ZooKeeper's
        getUserName)."""
        return id.split(":", 1)[0]

    def matches(self, id: str, acl_id: str) -> bool:
        """Exact equality."""
        return id == acl_id

    def is_valid(self, acl_id: str) -> bool:
        """ZooKeeper's check: Java's ``id.split(":")`` gives exactly two parts, so ``u:d``,
        ``:d`` and ``u:d:`` pass, while ``u:``, ``u::d``, ``u:d:e`` and ``u`` do not."""
        return _java_split_count(acl_id, ":") == 2
