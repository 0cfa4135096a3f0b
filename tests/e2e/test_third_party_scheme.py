"""A third-party ACL scheme added by an entry-point plugin alone (ours only: a plugin of ours).

The test writes a tiny module offering the scheme ``token`` (credential ``secret`` -> id
``token:alice``) and a ``*.dist-info`` directory whose entry_points.txt registers it under
``zkserver.plugins``, into tmp_path; our server, started with that directory on PYTHONPATH,
finds it through importlib.metadata like any installed distribution. Nothing of the server is
touched.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError
from kazoo.security import ACL, CREATOR_ALL_ACL, Id, Permissions

from core.opcodes import OpCode
from core.records import AuthPacket, WhoAmIResponse
from harness import OurZK
from wire import WireClient

PLUGIN = '''
"""A test ACL scheme: AuthPacket("token", b"secret") grants token:alice."""

from core import hookimpl
from core.records import Id


class TokenProvider:
    scheme = "token"
    is_authenticated = True
    TOKENS = {b"secret": "alice", b"other": "bob"}

    def authenticate(self, peer, auth):
        user = self.TOKENS.get(auth)
        return None if user is None else [Id(self.scheme, user)]

    def matches(self, id, acl_id):
        return id == acl_id

    def is_valid(self, acl_id):
        return acl_id.isalpha() and acl_id.islower()


@hookimpl
def zk_auth_providers(config):
    return [TokenProvider()]
'''


@pytest.fixture
def token_server(tmp_path: Path):
    (tmp_path / "zk_token_scheme.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "zk_token_scheme-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zk-token-scheme\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zkserver.plugins]\ntoken = zk_token_scheme\n")
    srv = OurZK(env={"PYTHONPATH": str(tmp_path)})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def clients():
    made: list[KazooClient] = []

    def make(srv, auth_data=None) -> KazooClient:
        c = KazooClient(hosts=srv.hosts, timeout=10, auth_data=auth_data)
        made.append(c)
        c.start(timeout=15)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def test_token_scheme_guards_a_node(token_server, clients):
    anon = clients(token_server)
    alice = clients(token_server)
    alice.add_auth("token", "secret")
    alice.create("/guarded", b"g", acl=[ACL(Permissions.ALL, Id("token", "alice"))])
    assert alice.get("/guarded")[0] == b"g"
    with pytest.raises(NoAuthError):
        anon.get("/guarded")
    bob = clients(token_server, auth_data=[("token", "other")])
    with pytest.raises(NoAuthError):
        bob.get("/guarded")
    # `auth` expands to the token id (the scheme says its ids are authenticated)
    alice.create("/mine", acl=CREATOR_ALL_ACL)
    acl = alice.get_acls("/mine")[0]
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(Permissions.ALL, "token", "alice")]
    # the scheme's own id check
    with pytest.raises(InvalidACLError):
        alice.create("/bad", acl=[ACL(Permissions.ALL, Id("token", "Not-Valid"))])
    # the built-in schemes are still there
    alice.add_auth("digest", "carol:pw")


def test_token_scheme_who_am_i_and_failure(token_server, clients):
    w = WireClient(token_server.host, token_server.port)
    try:
        w.connect()
        w.send(OpCode.auth, AuthPacket(0, "token", b"secret"), xid=-4)
        assert w.read_reply().err == 0
        r = w.call(OpCode.whoAmI)
        infos = {(i.authScheme, i.user) for i in r.decode(WhoAmIResponse).clientInfo}
        assert infos == {("ip", token_server.host), ("token", "alice")}
    finally:
        w.close_quietly()
    c = clients(token_server)
    with pytest.raises(AuthFailedError):
        c.add_auth("token", "not-a-token")
