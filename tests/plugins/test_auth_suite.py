"""The built-in ACL schemes run the AuthProvider conformance suite (core.testing.auth_suite)."""

from __future__ import annotations

import pytest

from core.interfaces import AuthProvider
from core.testing.auth_suite import AuthProviderSuite
from plugins.auth_builtin.digest import DigestProvider, digest_id
from plugins.auth_builtin.ip import IpProvider

ALICE = digest_id("alice", "secret")  # "alice:<base64 sha1>"


class TestDigestProvider(AuthProviderSuite):
    good_auth = [b"alice:secret", b"bob:", b"carol:pass:with:colons"]
    # as ZooKeeper's, any data authenticates (digest of "user:password"), so no bad_auth
    valid_ids = [ALICE, "bob:x"]
    invalid_ids = ["no-colon", "a:b:c"]
    matching = [(ALICE, ALICE)]
    not_matching = [(ALICE, digest_id("alice", "other")), (ALICE, "bob:x")]

    @pytest.fixture
    def provider(self) -> AuthProvider:
        return DigestProvider()


class TestIpProvider(AuthProviderSuite):
    good_auth = [b"", b"anything"]  # the ip scheme ignores the data: the peer's address counts
    valid_ids = ["127.0.0.1", "10.0.0.0/8", "::1"]
    invalid_ids = ["not an address", "10.0.0.0/99x"]
    matching = [("127.0.0.1", "127.0.0.1"), ("10.1.2.3", "10.0.0.0/8")]
    not_matching = [("127.0.0.1", "10.0.0.0/8"), ("10.1.2.3", "10.1.2.4")]

    @pytest.fixture
    def provider(self) -> AuthProvider:
        return IpProvider()
