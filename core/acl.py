"""ACL checks and ACL fix-up, as ZooKeeper's ZooKeeperServer.checkACL and PrepRequestProcessor.fixupACL.

Schemes come from AuthProvider plugins; `world:anyone` and the `auth` pseudo-scheme are built
into the rules, and an authenticated `super` id passes every check.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence

from core.errors import Code, ZKError
from core.interfaces import AuthProvider
from core.records import ACL, ACL_LISTS, Id

ANYONE = Id("world", "anyone")
OPEN_ACL_UNSAFE = (ACL(31, ANYONE),)
READ_ACL_UNSAFE = (ACL(1, ANYONE),)


class AccessControl:
    """Checks permissions against a node's ACL with the installed auth schemes."""

    def __init__(self, providers: Mapping[str, AuthProvider]) -> None:
        self.providers = dict(providers)
        self._fixed: dict[int, tuple[ACL, ...]] = {}  # id(an ACL_LISTS tuple) -> its fix-up

    def allowed(self, acl: Sequence[ACL], ids: Sequence[Id], perm: int) -> bool:
        """Whether any of `ids` holds `perm` on a node with `acl` (an empty ACL allows all)."""
        if not acl:
            return True
        for entry in acl:  # the common case first: world:anyone holds it
            if entry.perms & perm and entry.id.scheme == "world" and entry.id.id == "anyone":
                return True
        for i in ids:
            if i.scheme == "super":
                return True
        for entry in acl:
            if not entry.perms & perm:
                continue
            eid = entry.id
            provider = self.providers.get(eid.scheme)
            if provider is None:
                continue
            for i in ids:
                if i.scheme == eid.scheme and provider.matches(i.id, eid.id):
                    return True
        return False

    def check(self, acl: Sequence[ACL], ids: Sequence[Id], perm: int) -> None:
        """Raise ZKError(NOAUTH) unless `allowed`."""
        if not self.allowed(acl, ids, perm):
            raise ZKError(Code.NOAUTH)

    def fixup(self, acl: Sequence[ACL] | None, ids: Sequence[Id]) -> tuple[ACL, ...]:
        """Validate a client's ACL for create/setACL, expanding `auth` entries into the
        connection's authenticated ids; duplicates are dropped (the tree shares equal lists
        between nodes when it applies them). Raises ZKError(INVALIDACL). A list decoded from a
        request (core.records.ACL_LISTS) without `auth` entries fixes up the same way for every
        connection: its result is remembered by identity, and is the list itself when nothing
        changes (a txn carrying it is then encoded from the bytes it came as)."""
        if not acl:
            raise ZKError(Code.INVALIDACL)
        interned = ACL_LISTS.holds(acl)
        if interned:
            known = self._fixed.get(id(acl))
            if known is not None:
                return known
        fixed = self._fixup(acl, ids)
        if interned and all(e.id.scheme != "auth" for e in acl):
            if fixed == acl:
                fixed = typing.cast(tuple[ACL, ...], acl)
            self._fixed[id(acl)] = fixed
        return fixed

    def _fixup(self, acl: Sequence[ACL], ids: Sequence[Id]) -> tuple[ACL, ...]:
        out: list[ACL] = []
        for entry in acl:
            eid = entry.id
            # ZooKeeper ignores the id of an `auth` entry: kazoo sends Id("auth", "") as a null id
            if eid is None or eid.scheme is None or (eid.id is None and eid.scheme != "auth"):
                raise ZKError(Code.INVALIDACL)
            if eid.scheme == "world" and eid.id == "anyone":
                out.append(ACL(entry.perms, Id("world", "anyone")))
            elif eid.scheme == "auth":
                granted = [i for i in ids if (p := self.providers.get(i.scheme)) is not None and p.is_authenticated]
                if not granted:
                    raise ZKError(Code.INVALIDACL)
                out.extend(ACL(entry.perms, Id(i.scheme, i.id)) for i in granted)
            else:
                provider = self.providers.get(eid.scheme)
                if provider is None or not provider.is_valid(eid.id):
                    raise ZKError(Code.INVALIDACL)
                out.append(ACL(entry.perms, Id(eid.scheme, eid.id)))
        unique = dict.fromkeys((a.perms, a.id.scheme, a.id.id) for a in out)
        return tuple(ACL(p, Id(scheme, i)) for p, scheme, i in unique)
