"""The SASL plugin: the DIGEST-MD5 server (RFC 2831) against pure-sasl's client (kazoo's),
known answers (RFC 2831's example, a capture from Apache ZooKeeper 3.8), the JAAS reader,
the configuration keys and the ``sasl`` scheme's ACL rules."""

from __future__ import annotations

import hashlib

import pytest

from core.config import ConfigError, parse
from core.interfaces import PeerInfo, SaslAuthProvider
from core.records import Id
from plugins.auth_sasl import jaas
from plugins.auth_sasl.digest_md5 import DigestMD5Error, DigestMD5Server, parse_directives
from plugins.auth_sasl.hooks import SaslProvider, read_super_users, read_users, zk_auth_providers

puresasl_client = pytest.importorskip("puresasl.client")

PEER = PeerInfo("127.0.0.1", 40000)
USERS = {"bob": "secret", "admin": "adminpw"}


def provider() -> SaslProvider:
    return SaslProvider(USERS, ["admin"])


def client(user: str = "bob", password: str = "secret"):
    """kazoo's client side: pure-sasl, with the host name ZooKeeper's DIGEST-MD5 uses."""
    return puresasl_client.SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5",
                                      username=user, password=password)


def exchange(server, cli) -> tuple[bytes, list[Id] | None]:
    """Run an exchange as kazoo does: empty token, challenge, response, rspauth."""
    challenge, ids = server.step(b"")
    assert ids is None
    response = cli.process(challenge)
    return server.step(response)


# -- exchanges with pure-sasl -------------------------------------------------------------------

def test_round_trip_with_pure_sasl():
    server = provider().sasl_server(PEER)
    cli = client()
    rspauth, ids = exchange(server, cli)
    assert ids == [Id("sasl", "bob")]
    assert rspauth.startswith(b"rspauth=")
    assert cli.process(rspauth) is None  # pure-sasl checks rspauth: the server knew the password
    assert cli.complete and server.complete


def test_super_user_is_granted_super():
    _, ids = exchange(provider().sasl_server(PEER), client("admin", "adminpw"))
    assert ids == [Id("sasl", "admin"), Id("super", "")]


def test_challenge_has_the_java_servers_form():
    server = DigestMD5Server(USERS.get, lambda u: [], nonce="abc")
    challenge, _ = server.step(b"")
    assert challenge == b'realm="zk-sasl-md5",nonce="abc",charset=utf-8,algorithm=md5-sess'


def test_nonces_are_fresh():
    a = provider().sasl_server(PEER).step(b"")[0]
    b = provider().sasl_server(PEER).step(b"")[0]
    na, nb = parse_directives(a)["nonce"], parse_directives(b)["nonce"]
    assert na != nb and len(na) == 40


def test_initial_response_is_ignored_as_by_java():
    challenge, ids = provider().sasl_server(PEER).step(b"junk")
    assert ids is None and b"nonce=" in challenge


def test_wrong_password_fails_and_ends_the_exchange():
    server = provider().sasl_server(PEER)
    with pytest.raises(ValueError, match="wrong password"):
        exchange(server, client("bob", "nope"))
    with pytest.raises(ValueError):
        server.step(b"")
    assert not server.complete


def test_unknown_user_fails():
    with pytest.raises(DigestMD5Error, match="unknown user"):
        exchange(provider().sasl_server(PEER), client("mallory", "secret"))


def test_replayed_response_fails_on_another_exchange():
    first = provider().sasl_server(PEER)
    challenge, _ = first.step(b"")
    response = client().process(challenge)
    first.step(response)
    assert first.complete
    second = provider().sasl_server(PEER)
    second.step(b"")
    with pytest.raises(DigestMD5Error, match="nonce"):
        second.step(response)


def test_replayed_response_fails_on_the_same_exchange():
    server = provider().sasl_server(PEER)
    challenge, _ = server.step(b"")
    response = client().process(challenge)
    server.step(response)
    with pytest.raises(DigestMD5Error, match="already completed"):
        server.step(response)


# -- known answers ------------------------------------------------------------------------------

APACHE_NONCE = "IARvVUvnTifBrjTTUWxPMS/Zzz6CPDf4dfFCm43N"
APACHE_RESPONSE = (b'qop=auth,realm="zk-sasl-md5",username="bob",nonce="' + APACHE_NONCE.encode()
                   + b'",cnonce="06778618444419193",nc=00000001,digest-uri="zookeeper/zk-sasl-md5",'
                   b'response=8f9b01298b35c9a62f9efdaaace706b4')


def test_known_answer_captured_from_apache_zookeeper():
    """Apache ZooKeeper 3.8.0 answered this pure-sasl response (user bob, password secret)
    with exactly this rspauth."""
    server = DigestMD5Server(USERS.get, lambda u: [Id("sasl", u)], nonce=APACHE_NONCE)
    server.step(b"")
    assert server.step(APACHE_RESPONSE) == (b"rspauth=8b9b0ca6f09dd00798b97a3810c0cb8e", [Id("sasl", "bob")])


def test_rfc2831_example():
    """RFC 2831 section 4: chris/secret on imap/elwood.innosoft.com."""
    server = DigestMD5Server({"chris": "secret"}.get, lambda u: [Id("sasl", u)],
                             realm="elwood.innosoft.com", protocol="imap",
                             server_name="elwood.innosoft.com", nonce="OA6MG9tEQGm2hh")
    server.step(b"")
    response = (b'charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",'
                b'nc=00000001,cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",'
                b'response=d388dad90d4bbd760a152321f2143af7,qop=auth')
    assert server.step(response)[0] == b"rspauth=ea40f60335c427b5527b84dbabcdfffd"


def _response(user: str, password: str, nonce: str, *, realm: str = "zk-sasl-md5",
              charset: bool = True, authzid: str | None = None, nc: str = "00000001",
              uri: str = "zookeeper/zk-sasl-md5", qop: str = "auth") -> bytes:
    """A digest-response computed straight from RFC 2831 section 2.1.2.1 (user, realm and
    password in ISO 8859-1 when they fit, as the RFC says for charset=utf-8)."""
    def enc(s: str) -> bytes:
        try:
            return s.encode("latin-1")
        except UnicodeEncodeError:
            return s.encode("utf-8")
    md5 = hashlib.md5
    cnonce = b"c0ffee"
    a1 = md5(enc(user) + b":" + enc(realm) + b":" + enc(password)).digest() + b":" + nonce.encode() + b":" + cnonce
    if authzid is not None:
        a1 += b":" + authzid.encode()
    a2 = b"AUTHENTICATE:" + uri.encode()
    kd = (md5(a1).hexdigest() + ":" + nonce + ":" + nc + ":" + cnonce.decode() + ":" + qop + ":"
          + md5(a2).hexdigest())
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', 'cnonce="c0ffee"',
              f"nc={nc}", f"qop={qop}", f'digest-uri="{uri}"', f"response={md5(kd.encode()).hexdigest()}"]
    if charset:
        fields.insert(0, "charset=utf-8")
    if authzid is not None:
        fields.append(f'authzid="{authzid}"')
    return ", ".join(fields).encode("utf-8" if charset else "latin-1")


@pytest.mark.parametrize("user, password", [("bob", "secret"), ("jörg", "pässword"), ("用户", "密码")])
def test_charset_utf8_users(user, password):
    server = DigestMD5Server({user: password}.get, lambda u: [Id("sasl", u)], nonce="n1")
    server.step(b"")
    assert server.step(_response(user, password, "n1"))[1] == [Id("sasl", user)]


def test_authzid_is_hashed_but_the_id_is_the_user():
    """ZooKeeper's callback handler authorizes any authzid and grants the authentication id."""
    server = DigestMD5Server(USERS.get, lambda u: [Id("sasl", u)], nonce="n1")
    server.step(b"")
    assert server.step(_response("bob", "secret", "n1", authzid="someone"))[1] == [Id("sasl", "bob")]


@pytest.mark.parametrize("kwargs, message", [
    ({"nc": "00000002"}, "nonce count"),
    ({"uri": "zookeeper/elsewhere"}, "digest-uri"),
    ({"realm": "other"}, "realm"),
    ({"qop": "auth-int"}, "qop"),
])
def test_bad_responses_fail(kwargs, message):
    server = DigestMD5Server(USERS.get, lambda u: [], nonce="n1")
    server.step(b"")
    with pytest.raises(DigestMD5Error, match=message):
        server.step(_response("bob", "secret", "n1", **kwargs))


@pytest.mark.parametrize("token", [
    b'username="bob",nonce="n1"',  # directives missing
    b'username="bob",username="eve",nonce="n1",cnonce="x",nc=00000001,digest-uri="zookeeper/zk-sasl-md5",response=00',
    b'username="bob',  # unterminated
    b"username",
    b"x" * 5000,
    b'charset=latin-1,username="bob",nonce="n1",cnonce="x",nc=00000001,digest-uri="zookeeper/zk-sasl-md5",response=00',
    b'username="bob",nonce="n1",cnonce="x",nc=zzzzzzzz,digest-uri="zookeeper/zk-sasl-md5",response=00',
    b'username="\xff\xfe",nonce="n1",cnonce="x",nc=00000001,digest-uri="zookeeper/zk-sasl-md5",response=00,charset=utf-8',
])
def test_malformed_responses_fail_with_value_error(token):
    server = DigestMD5Server(USERS.get, lambda u: [], nonce="n1")
    server.step(b"")
    with pytest.raises(ValueError):
        server.step(token)


def test_parse_directives():
    assert parse_directives(b' a=1 , ,b="x\\"y" ,C=tok, ') == {"a": b"1", "b": b'x"y', "c": b"tok"}


# -- the JAAS file --------------------------------------------------------------------------------

JAAS = """
// the server's users
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"   /* the super user */
    user_bob="bob\\"s secret";
    some.other.Module optional debug=true user_carol="c";
};
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required username="bob" password="x";
};
"""


def test_jaas_sections_and_users():
    sections = jaas.parse(JAAS)
    assert set(sections) == {"Server", "Client"}
    assert sections["Server"][1] == jaas.LoginModuleEntry("some.other.Module", "optional",
                                                          {"debug": "true", "user_carol": "c"})
    assert jaas.digest_users(sections["Server"]) == {"super": "adminsecret", "bob": 'bob"s secret', "carol": "c"}


@pytest.mark.parametrize("text, message", [
    ("Server { m required user_a=\"b\" };", "expected word or ;, got '}'"),
    ("Server { m always; };", "flag"),
    ("Server { m required; }; Server { m required; };", "twice"),
    ("Server { m required user_a=\"b; };", "unterminated string"),
    ("Server { m required; }", "end of file"),
    ("Server { m required; }; /* x", "unterminated comment"),
])
def test_jaas_errors(text, message):
    with pytest.raises(jaas.JaasError, match=message):
        jaas.parse(text, "f.conf")


# -- configuration ----------------------------------------------------------------------------

def config(extra: str = ""):
    return parse("storage=memory\nclientPort=0\n" + extra)


def test_no_users_no_scheme(monkeypatch):
    monkeypatch.delenv("ZKSERVER_JAAS_CONFIG", raising=False)
    assert zk_auth_providers(config()) == []


def test_users_from_jaas_file_and_zoo_cfg(tmp_path, monkeypatch):
    monkeypatch.delenv("ZKSERVER_JAAS_CONFIG", raising=False)
    path = tmp_path / "jaas.conf"
    path.write_text(JAAS)
    cfg = config(f"sasl.jaasConfig={path}\nsasl.user.dave=d\nsasl.user.bob=override\n")
    assert read_users(cfg) == {"super": "adminsecret", "bob": "override", "carol": "c", "dave": "d"}
    [p] = zk_auth_providers(cfg)
    assert isinstance(p, SaslAuthProvider) and p.scheme == "sasl"


def test_jaas_file_from_the_environment(tmp_path):
    path = tmp_path / "jaas.conf"
    path.write_text(JAAS)
    assert read_users(config(), {"ZKSERVER_JAAS_CONFIG": str(path)})["bob"] == 'bob"s secret'
    # the zoo.cfg key wins over the environment
    cfg = config(f"sasl.jaasConfig={path}\n")
    assert read_users(cfg, {"ZKSERVER_JAAS_CONFIG": str(tmp_path / "nope")})["carol"] == "c"


def test_jaas_file_missing_or_without_server_section(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_users(config(f"sasl.jaasConfig={tmp_path / 'nope.conf'}\n"), {})
    path = tmp_path / "client.conf"
    path.write_text("Client { m required; };")
    with pytest.raises(ConfigError, match="no JAAS configuration section named 'Server'"):
        read_users(config(f"sasl.jaasConfig={path}\n"), {})
    with pytest.raises(ConfigError, match="no JAAS configuration section named 'Server'"):
        read_users(config(), {"ZKSERVER_JAAS_CONFIG": str(path)})


def test_super_users_and_super_password():
    cfg = config("sasl.user.super=one\nsasl.user.bob=b\nsuperUser=bob\nzookeeper.superUser.2=carol\n"
                 "sasl.superUser=dave\nSASLAuthenticationProvider.superPassword=two\n")
    assert read_super_users(cfg) == {"bob", "carol", "dave"}
    assert read_users(cfg, {})["super"] == "two"
    # without a user "super", the super password adds none (as ZooKeeper's callback handler)
    assert "super" not in read_users(config("sasl.user.bob=b\nsasl.superPassword=x\n"), {})


def test_empty_user_name_is_an_error():
    with pytest.raises(ConfigError, match="user name"):
        read_users(config("sasl.user.=pw\n"), {})


# -- the scheme's ACL rules ----------------------------------------------------------------------

def test_scheme_rules():
    p = provider()
    assert p.authenticate(PEER, b"bob:secret") is None  # an AuthPacket for sasl: AUTHFAILED
    assert p.matches("bob", "bob") and not p.matches("bob", "bobby")
    assert p.matches("super", "anyone")  # ZooKeeper's SASLAuthenticationProvider does this
    assert p.is_authenticated
    for ok in ("bob", "", "zk/host@REALM", "a@B", "@", "a/b/c"):
        assert p.is_valid(ok), ok
    for bad in ("a@b@c", "a/b/c@R", "a@b/c"):
        assert not p.is_valid(bad), bad
