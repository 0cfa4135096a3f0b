"""The built-in digest and ip schemes against ZooKeeper 3.8's (and 3.9.4's IPv6) semantics."""

from __future__ import annotations

import base64
import hashlib
from types import SimpleNamespace

import pytest

from core.acl import AccessControl
from core.tree import DataTree
from core.errors import Code, ZKError
from core.interfaces import AuthProvider, PeerInfo
from core.records import ACL, CreateRequest, Id
from plugins.auth_builtin import hooks
from plugins.auth_builtin.digest import DigestProvider, digest_id, generate_digest
from plugins.auth_builtin.ip import IpProvider, host_address

PEER = PeerInfo("127.0.0.1", 40000)
SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # ZooKeeper's test suites: password "test"
ALL, READ, WRITE = 31, 1, 2


def sha1_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()


# -- digest -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cred, expected", [
    # values asserted in ZooKeeper's own AuthTest / ZooKeeperTest
    ("super:test", "super:D/InIHSb7yEEbrWz8b9l71RjZJU="),
    ("super:zookeeper", "super:yyuhPKumRtNj4r8GnSbbwuq1vhE="),
    ("super:foo", "super:t6lQTvqID/Gl5Or0n4FYE6kKP8w="),
    ("super:bar", "super:hTdNN4QH4isoRvCrQ1Jf7REREQ4="),
    ("user:test", "user:tl+z3z0vO6PfPfEENfLF96E6pM0="),
])
def test_generate_digest_known_values(cred: str, expected: str) -> None:
    assert generate_digest(cred) == expected
    user, password = cred.split(":", 1)
    assert digest_id(user, password) == expected


@pytest.mark.parametrize("cred, expected", [
    ("user:pa:ss", "user:" + sha1_b64("user:pa:ss")),  # split at the first ':' only
    ("nocolon", "nocolon:" + sha1_b64("nocolon")),     # no ':' -> whole string is the name
    ("", ":" + sha1_b64("")),
    (":pw", ":" + sha1_b64(":pw")),
    ("user:", "user:" + sha1_b64("user:")),
    ("ünï:cødé", "ünï:" + base64.b64encode(hashlib.sha1("ünï:cødé".encode()).digest()).decode()),
])
def test_generate_digest_shapes(cred: str, expected: str) -> None:
    assert generate_digest(cred) == expected


def test_digest_id_user_with_colon_is_cut() -> None:
    assert digest_id("a:b", "c") == "a:" + sha1_b64("a:b:c")


def test_digest_authenticate_accepts_anything() -> None:
    p = DigestProvider()
    assert p.authenticate(PEER, b"user:test") == [Id("digest", "user:tl+z3z0vO6PfPfEENfLF96E6pM0=")]
    assert p.authenticate(PEER, b"user:wrong") == [Id("digest", "user:" + sha1_b64("user:wrong"))]
    assert p.authenticate(PEER, b"nocolon") == [Id("digest", "nocolon:" + sha1_b64("nocolon"))]
    assert p.authenticate(PEER, b"") == [Id("digest", ":" + sha1_b64(""))]
    # undecodable bytes become U+FFFD, as Java's new String(bytes) does
    assert p.authenticate(PEER, b"u:\xff") == [Id("digest", "u:" + sha1_b64("u:\ufffd"))]


def test_digest_super() -> None:
    p = DigestProvider(SUPER)
    assert p.authenticate(PEER, b"super:test") == [Id("super", ""), Id("digest", SUPER)]
    assert p.authenticate(PEER, b"super:wrong") == [Id("digest", "super:" + sha1_b64("super:wrong"))]
    assert p.authenticate(PEER, b"user:test") == [Id("digest", "user:tl+z3z0vO6PfPfEENfLF96E6pM0=")]
    assert DigestProvider(None).authenticate(PEER, b"super:test") == [Id("digest", SUPER)]


def test_digest_matches_is_equality() -> None:
    p = DigestProvider()
    assert p.matches("user:abc=", "user:abc=")
    assert not p.matches("user:abc=", "user:abd=")
    assert not p.matches("user:abc=", "User:abc=")
    assert not p.matches("user:abc=", "user:abc= ")


@pytest.mark.parametrize("acl_id, valid", [
    ("user:tl+z3z0vO6PfPfEENfLF96E6pM0=", True),
    ("u:d", True),
    (":d", True),          # Java keeps the leading empty part
    ("u:d:", True),        # ... and drops trailing empty parts
    ("u:d::", True),
    ("u:", False),
    ("u", False),
    ("", False),
    (":", False),
    ("::", False),
    ("u::d", False),
    ("u:d:e", False),
    ("::d", False),
])
def test_digest_is_valid(acl_id: str, valid: bool) -> None:
    assert DigestProvider().is_valid(acl_id) is valid


def test_digest_flags() -> None:
    p = DigestProvider()
    assert p.scheme == "digest" and p.is_authenticated is True
    assert isinstance(p, AuthProvider)


# -- ip ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host, expected", [
    ("127.0.0.1", "127.0.0.1"),
    ("::1", "0:0:0:0:0:0:0:1"),
    ("::ffff:10.1.2.3", "10.1.2.3"),                     # Java accepts mapped as Inet4Address
    ("2001:DB8::0a", "2001:db8:0:0:0:0:0:a"),
    ("fe80::1%7", "fe80:0:0:0:0:0:0:1%7"),
    ("not-an-address", "not-an-address"),
])
def test_host_address(host: str, expected: str) -> None:
    assert host_address(host) == expected


def test_ip_authenticate_uses_peer_address() -> None:
    p = IpProvider()
    assert p.authenticate(PeerInfo("10.0.0.5", 1234), b"anything") == [Id("ip", "10.0.0.5")]
    assert p.authenticate(PeerInfo("::ffff:127.0.0.1", 1), b"") == [Id("ip", "127.0.0.1")]
    assert p.authenticate(PeerInfo("::1", 1), b"") == [Id("ip", "0:0:0:0:0:0:0:1")]


@pytest.mark.parametrize("client, acl_id, match", [
    # exact
    ("10.0.0.1", "10.0.0.1", True),
    ("10.0.0.2", "10.0.0.1", False),
    ("10.0.0.1", "10.0.0.1/32", True),
    ("10.0.0.2", "10.0.0.1/32", False),
    # /0 matches every IPv4 client
    ("1.2.3.4", "0.0.0.0/0", True),
    ("255.255.255.255", "10.0.0.1/0", True),
    # byte and sub-byte prefixes
    ("10.1.2.3", "10.0.0.0/8", True),
    ("11.1.2.3", "10.0.0.0/8", False),
    ("192.168.1.77", "192.168.1.0/24", True),
    ("192.168.2.77", "192.168.1.0/24", False),
    ("192.168.1.130", "192.168.1.128/25", True),
    ("192.168.1.127", "192.168.1.128/25", False),
    ("10.0.0.1", "10.0.0.0/31", True),
    ("10.0.0.2", "10.0.0.0/31", False),
    ("172.31.255.255", "172.16.0.0/12", True),
    ("172.32.0.0", "172.16.0.0/12", False),
    ("10.0.0.99", "10.0.0.1/24", True),  # host bits of the ACL address are masked too
    # Java Integer.parseInt quirks: leading zeros and signs parse
    ("10.0.0.1", "010.0.0.001", True),
    ("10.0.0.1", "+10.0.0.1", True),
    ("0.0.0.1", "-0.0.0.1", True),
    ("10.0.0.1", "10.0.0.1/+32", True),
    ("10.0.0.1", "\u0661\u0660.0.0.1", True),  # Character.digit takes any Unicode decimal digit
    ("10.0.0.1", "\U0001D7CF0.0.0.1", False),  # ... but not a surrogate pair
    # malformed ACL ids never match
    ("10.0.0.1", "10.0.0.1/33", False),
    ("10.0.0.1", "10.0.0.1/-1", False),
    ("10.0.0.1", "10.0.0.1/", False),
    ("10.0.0.1", "10.0.0.1/a", False),
    ("10.0.0.1", "10.0.0.1/ 8", False),
    ("10.0.0.1", "10.0.0.1/8/8", False),
    ("10.0.0.1", "10.0.0", False),
    ("10.0.0.1", "10.0.0.1.", False),
    ("10.0.0.1", "10.0.0.256", False),
    ("10.0.0.1", "10.0.0.1 ", False),
    ("10.0.0.1", "localhost", False),
    ("10.0.0.1", "", False),
    ("10.0.0.1", "/8", False),
    # malformed client id never matches
    ("garbage", "0.0.0.0/0", False),
    ("10.0.0", "0.0.0.0/0", False),
    # IPv6 (3.9.4+)
    ("0:0:0:0:0:0:0:1", "::1", True),
    ("0:0:0:0:0:0:0:1", "::1/128", True),
    ("0:0:0:0:0:0:0:2", "::1", False),
    ("2001:db8:1234:0:0:0:0:0", "2001:db8:1234::/64", True),
    ("2001:db8:1234:0:ffff:0:0:1", "2001:db8:1234::/64", True),
    ("2001:db8:1235:0:0:0:0:1", "2001:db8:1234::/64", False),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370::/2", True),
    ("abcd:0:0:0:0:0:0:1", "::/0", True),
    ("ABCD:0:0:0:0:0:0:1", "abcd::1", True),
    ("0:0:0:0:0:0:0:1", "::1/129", False),
    ("22001:db8:85a3:0:0:0:0::0", "2001:db8:85a3:0:0:0:0::/32", False),
    ("2001:db8::/4", "2001:db8::/4", False),  # a client id is never a CIDR
    # families never mix, even with /0
    ("10.0.0.1", "::/0", False),
    ("0:0:0:0:0:0:0:1", "0.0.0.0/0", False),
    ("0:0:0:0:0:0:7f00:1", "127.0.0.1", False),
    ("0:0:0:0:0:ffff:7f00:1", "::ffff:127.0.0.1", False),  # embedded IPv4 is not parsed
])
def test_ip_matches(client: str, acl_id: str, match: bool) -> None:
    assert IpProvider().matches(client, acl_id) is match


@pytest.mark.parametrize("acl_id, valid", [
    # ZooKeeper ACLTest's IPv4 table
    ("127.0.0.1", True),
    ("127.0.0.1/32", True),
    ("127.0.0.1/0", True),
    ("127.0.0.1/33", False),
    ("10.0.0.1/-1", False),
    # more IPv4
    ("0.0.0.0", True),
    ("255.255.255.255/8", True),
    ("256.0.0.1", False),
    ("1.2.3", False),
    ("1.2.3.4.5", False),
    ("1..3.4", False),
    ("1.2.3.4/", False),
    ("1.2.3.4/x", False),
    ("1.2.3.4/2/3", False),
    ("1.2.3.4/1_0", False),
    ("1.2.3.4 ", False),
    (" 1.2.3.4", False),
    ("1.2.3.0x4", False),
    ("localhost", False),
    ("", False),
    ("/24", False),
    ("1.2.3.4/99999999999", False),
    # ZooKeeper ACLTest's IPv6 table (3.9.4+)
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", True),
    ("2001:db8:85a3::8a2e:370:7334", True),
    ("::1", True),
    ("1::", True),
    ("2001:db8::/4", True),
    ("0:0:0:0:0:0:0::/8", True),
    ("2001:db8:85a3:0:0:0:0::/32", True),
    ("1234:5678:9abc:def0:1234:5678:9abc:def0", True),
    ("2001:db8:85a3:0000:0000:8a2e:0370:7334:extra", False),
    ("2001:db8:85a3:0000:0000:8a2e:0370", False),
    ("2001:db8:85a3::8a2e::0370:7334", False),
    ("2001:db8:85a3:G::8a2e:0370:7334", False),
    ("2001:db8:85a3:0:0:0:0:1:2", False),
    ("2001:db8:85a3::8a2e:0370:7334:", False),
    (":2001:db8:85a3::8a2e:0370:7334", False),
    ("::FFFF:192.168.1.1", False),
    ("2001:db8:1234::/64", True),
    # ZooKeeper IPAuthenticationProviderTest's malformed IPv6 list
    ("1", False),
    ("1:2", False),
    ("1::2:", False),
    (":1::2:", False),
    ("1:2:3:4:5:6:7:8:", False),
    ("1:2:3:4:5:6:7:8:9", False),
    ("1:2::3:4:5:6:7:8", False),
    ("1::2::", False),
    ("1:abcdf::", False),
    ("efgh::", False),
    ("1:: ", False),
    (" 1::", False),
    # more IPv6
    ("::", True),
    ("::/128", True),
    ("::/129", False),
    (":::", False),
    ("fe80::1%eth0", False),
    ("1:2:3:4:5:6:7::", True),
    ("\uff46\uff46::", True),  # fullwidth hex letters are Java hex digits
    ("-1::", True),            # parseInt("-1", 16) -> 0xffff in Java
    ("+ff::", True),
])
def test_ip_is_valid(acl_id: str, valid: bool) -> None:
    assert IpProvider().is_valid(acl_id) is valid


def test_ip_flags() -> None:
    p = IpProvider()
    assert p.scheme == "ip" and p.is_authenticated is False
    assert isinstance(p, AuthProvider)


# -- hook and AccessControl -------------------------------------------------------------------


def test_hook_returns_both_providers() -> None:
    providers = hooks.zk_auth_providers(config=SimpleNamespace(super_digest=SUPER))
    assert [p.scheme for p in providers] == ["digest", "ip"]
    assert providers[0].authenticate(PEER, b"super:test")[0] == Id("super", "")
    # tolerant of a config without the attribute
    providers = hooks.zk_auth_providers(config=object())
    assert providers[0].super_digest is None


@pytest.fixture
def ac() -> AccessControl:
    return AccessControl({p.scheme: p for p in hooks.zk_auth_providers(config=SimpleNamespace(super_digest=SUPER))})


def test_acl_allowed(ac: AccessControl) -> None:
    user = DigestProvider().authenticate(PEER, b"user:test")
    wrong = DigestProvider().authenticate(PEER, b"user:nope")
    acl = [ACL(READ, Id("digest", digest_id("user", "test"))), ACL(WRITE, Id("ip", "10.0.0.0/8"))]
    assert ac.allowed(acl, user, READ)
    assert not ac.allowed(acl, user, WRITE)
    assert not ac.allowed(acl, wrong, READ)
    assert ac.allowed(acl, [Id("ip", "10.9.8.7")], WRITE)
    assert not ac.allowed(acl, [Id("ip", "11.9.8.7")], WRITE)
    assert not ac.allowed(acl, [Id("ip", "10.9.8.7")], READ)
    su = ac.providers["digest"].authenticate(PEER, b"super:test")
    assert ac.allowed(acl, su, ALL)


def test_acl_fixup_auth_expands_digest_only(ac: AccessControl) -> None:
    ids = [Id("ip", "127.0.0.1")] + DigestProvider().authenticate(PEER, b"user:test")
    fixed = ac.fixup([ACL(ALL, Id("auth", ""))], ids)
    assert fixed == (ACL(ALL, Id("digest", "user:tl+z3z0vO6PfPfEENfLF96E6pM0=")),)
    with pytest.raises(ZKError) as e:  # only ip ids: nothing counts for `auth`
        ac.fixup([ACL(ALL, Id("auth", ""))], [Id("ip", "127.0.0.1")])
    assert e.value.code == Code.INVALIDACL


def test_a_decoded_acl_list_fixes_up_to_itself_and_the_tree_keeps_its_own_copy(ac: AccessControl) -> None:
    acl = [ACL(READ, Id("digest", "u:abc=")), ACL(ALL, Id("ip", "10.0.0.0/8"))]
    decoded = CreateRequest.decode(CreateRequest("/a", b"", acl, 0).encode(), 0)[0].acl
    assert ac.fixup(decoded, []) is decoded  # unchanged: the txn carries the decoded tuple
    assert ac.fixup(decoded, []) is decoded  # and again, known by identity
    tree = DataTree()
    own = tree.intern_acl(decoded)
    assert own == decoded and own is not decoded
    assert tree.intern_acl(decoded) is own and tree.intern_acl(acl) is own
    dup = CreateRequest.decode(CreateRequest("/a", b"", acl + acl[:1], 0).encode(), 0)[0].acl
    assert ac.fixup(dup, []) == tuple(acl)  # duplicates dropped: a fix-up of its own


def test_acl_fixup_validates_ids(ac: AccessControl) -> None:
    good = [ACL(READ, Id("digest", "u:abc=")), ACL(ALL, Id("ip", "10.0.0.0/8")), ACL(ALL, Id("ip", "::1"))]
    assert ac.fixup(good, []) == tuple(good)
    for bad in (Id("digest", "u"), Id("digest", "u:a:b"), Id("ip", "10.0.0.1/33"), Id("ip", "host"),
                Id("nosuch", "x")):
        with pytest.raises(ZKError) as e:
            ac.fixup([ACL(ALL, bad)], [])
        assert e.value.code == Code.INVALIDACL
