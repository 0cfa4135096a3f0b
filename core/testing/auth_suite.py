"""The AuthProvider conformance suite: what every ``core.interfaces.AuthProvider`` must do.

A scheme's plugin runs it by subclassing ``AuthProviderSuite`` under a name pytest collects,
with a ``provider`` fixture returning the provider, and class attributes giving examples of its
credentials and ids (as SQLAlchemy's suite reads requirements from the dialect)::

    import pytest
    from core.testing.auth_suite import AuthProviderSuite
    from mytoken import TokenProvider

    class TestTokenProvider(AuthProviderSuite):
        good_auth = [b"secret"]                  # AuthPacket data that authenticates
        bad_auth = [b"wrong", b""]               # ... and data that must not
        valid_ids = ["alice"]                    # ACL ids of the scheme that are well formed
        invalid_ids = ["", "Not-Valid"]          # ... and ids setACL must refuse
        matching = [("alice", "alice")]          # (authenticated id, ACL id) that match
        not_matching = [("alice", "bob")]        # ... and that do not

        @pytest.fixture
        def provider(self):
            return TokenProvider()

An empty example list skips the tests that need it (the ``ip`` scheme, which ignores the auth
data, has no ``bad_auth``). The contracts checked:

- ``scheme`` is a non-empty str without ``:`` or blanks; ``is_authenticated`` is a bool;
- ``authenticate(peer, auth)`` returns None (AUTHFAILED) or a list of ``core.Id``, at least one
  of them of the provider's scheme, each of those well formed (``is_valid``) and matching
  itself; it is deterministic, and never raises on malformed data (a client sends anything);
- ``is_valid`` and ``matches`` return bools and never raise, whatever the id;
- the provider satisfies the ``core.interfaces.AuthProvider`` protocol.

All calls are made as the core makes them: on one thread, cheap, with no I/O expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.interfaces import AuthProvider, PeerInfo
from core.records import Id

#: AuthPacket data a client may send that no scheme can make sense of.
MALFORMED_AUTH: tuple[bytes, ...] = (b"", b"\x00", b":", b"::::", b"\xff\xfe\xfd",
                                     b"a" * 65536, "h\u00e9llo:w\u00f6rld".encode())
#: ACL ids no scheme is expected to find well formed, but that must not make it raise.
ODD_IDS: tuple[str, ...] = ("", ":", "::", "\x00", " ", "a" * 4096, "\u00e9:\u00e9", "/", "*")


class AuthProviderSuite:
    """The conformance tests; subclass it with a ``provider`` fixture (see the module)."""

    good_auth: Sequence[bytes] = ()
    bad_auth: Sequence[bytes] = ()
    valid_ids: Sequence[str] = ()
    invalid_ids: Sequence[str] = ()
    matching: Sequence[tuple[str, str]] = ()
    not_matching: Sequence[tuple[str, str]] = ()

    @pytest.fixture
    def provider(self) -> AuthProvider:
        """The provider under test. A subclass must override this fixture."""
        pytest.fail(f"{type(self).__name__} must provide a provider fixture")

    @pytest.fixture
    def peer(self) -> PeerInfo:
        """The connection the credentials come from."""
        return PeerInfo("127.0.0.1", 40000)

    @staticmethod
    def _examples(values: Sequence[object], what: str) -> None:
        if not values:
            pytest.skip(f"no {what} given (the class attribute is empty)")

    # -- the provider -------------------------------------------------------------------------

    def test_satisfies_the_protocol(self, provider: AuthProvider) -> None:
        assert isinstance(provider, AuthProvider)

    def test_scheme(self, provider: AuthProvider) -> None:
        scheme = provider.scheme
        assert isinstance(scheme, str) and scheme, "scheme must be a non-empty str"
        assert ":" not in scheme and not any(c.isspace() for c in scheme), scheme
        assert isinstance(provider.is_authenticated, bool)

    # -- authenticate -------------------------------------------------------------------------

    def test_good_credentials_grant_ids_of_the_scheme(self, provider: AuthProvider,
                                                      peer: PeerInfo) -> None:
        self._examples(self.good_auth, "good_auth")
        for auth in self.good_auth:
            ids = provider.authenticate(peer, auth)
            assert isinstance(ids, list) and ids, f"authenticate({auth!r}) granted nothing"
            assert all(isinstance(i, Id) for i in ids), ids
            own = [i.id for i in ids if i.scheme == provider.scheme]
            assert own, f"authenticate({auth!r}) granted no id of scheme {provider.scheme!r}"
            for id in own:
                assert provider.is_valid(id) is True, f"granted id {id!r} is not is_valid"
                assert provider.matches(id, id) is True, f"granted id {id!r} does not match itself"

    def test_authenticate_is_deterministic(self, provider: AuthProvider, peer: PeerInfo) -> None:
        self._examples(self.good_auth, "good_auth")
        for auth in self.good_auth:
            assert provider.authenticate(peer, auth) == provider.authenticate(peer, auth)

    def test_bad_credentials_are_refused(self, provider: AuthProvider, peer: PeerInfo) -> None:
        self._examples(self.bad_auth, "bad_auth")
        for auth in self.bad_auth:
            assert provider.authenticate(peer, auth) is None, \
                f"authenticate({auth!r}) must fail (None)"

    def test_malformed_credentials_never_raise(self, provider: AuthProvider,
                                               peer: PeerInfo) -> None:
        for auth in MALFORMED_AUTH:
            ids = provider.authenticate(peer, auth)
            assert ids is None or (isinstance(ids, list)
                                   and all(isinstance(i, Id) for i in ids)), (auth[:20], ids)

    # -- is_valid -----------------------------------------------------------------------------

    def test_valid_ids(self, provider: AuthProvider) -> None:
        self._examples(self.valid_ids, "valid_ids")
        for id in self.valid_ids:
            assert provider.is_valid(id) is True, f"is_valid({id!r}) must be True"

    def test_invalid_ids(self, provider: AuthProvider) -> None:
        self._examples(self.invalid_ids, "invalid_ids")
        for id in self.invalid_ids:
            assert provider.is_valid(id) is False, f"is_valid({id!r}) must be False"

    def test_is_valid_never_raises(self, provider: AuthProvider) -> None:
        for id in ODD_IDS:
            assert isinstance(provider.is_valid(id), bool), id[:20]

    # -- matches ------------------------------------------------------------------------------

    def test_matching_ids(self, provider: AuthProvider) -> None:
        self._examples(self.matching, "matching")
        for id, acl_id in self.matching:
            assert provider.matches(id, acl_id) is True, f"matches({id!r}, {acl_id!r})"

    def test_not_matching_ids(self, provider: AuthProvider) -> None:
        self._examples(self.not_matching, "not_matching")
        for id, acl_id in self.not_matching:
            assert provider.matches(id, acl_id) is False, f"matches({id!r}, {acl_id!r})"

    def test_matches_never_raises(self, provider: AuthProvider) -> None:
        ids = [*ODD_IDS, *self.valid_ids]
        for id in ids:
            for acl_id in ids:
                assert isinstance(provider.matches(id, acl_id), bool), (id[:20], acl_id[:20])
