"""ACLs and authentication on both servers: every scheme allowed and denied (world, auth,
digest, ip, super), the permission each op checks, invalid ACLs, a failed AuthPacket, whoAmI,
READ filtering of watch events, and a differential run of one fixed sequence on both servers.

The servers here are a module-scoped pair configured with a super digest (a JVM property to
Java, a zoo.cfg key to ours: tests/harness.py passes it the right way to each).
"""

from __future__ import annotations


import pytest
from kazoo.exceptions import InvalidACLError, NoAuthError
from kazoo.security import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, Id, Permissions

from core.errors import Code
from core.opcodes import OpCode
from core.records import AuthPacket, ClientInfo, CreateRequest, SetACLRequest, WhoAmIResponse
from harness import SERVER_KINDS, Events
from plugins.auth_builtin.digest import digest_id
from wire import AUTH_XID, OPEN_ACL_UNSAFE as OPEN_WIRE, ConnectionClosed, WireClient

READ, WRITE, CREATE, DELETE, ADMIN, ALL = (Permissions.READ, Permissions.WRITE, Permissions.CREATE,
                                           Permissions.DELETE, Permissions.ADMIN, Permissions.ALL)
ANYONE = Id("world", "anyone")
SUPER_DIGEST = digest_id("super", "secret")
CFG = {"DigestAuthenticationProvider.superDigest": SUPER_DIGEST}


@pytest.fixture(scope="module")
def acl_pool():
    """kind -> a started server with the super digest (each started on first use)."""
    started: dict[str, object] = {}

    def get(kind: str):
        if kind not in started:
            srv = SERVER_KINDS[kind](extra_cfg=CFG)
            started[kind] = srv
            srv.start()
        return started[kind]

    yield get
    for srv in started.values():
        srv.stop()


@pytest.fixture(params=["apache", "ours"])
def srv(request, acl_pool):
    return acl_pool(request.param)


@pytest.fixture
def anon(srv, zk_factory, root):
    c = zk_factory(srv)
    c.ensure_path(root)
    return c


def digest_acl(user: str, password: str, perms: int = ALL) -> ACL:
    return ACL(perms, Id("digest", digest_id(user, password)))


def world(perms: int) -> list[ACL]:
    return [ACL(perms, ANYONE)]


def acl_tuples(acls) -> list[tuple[int, str, str]]:
    return [(a.perms, a.id.scheme, a.id.id) for a in acls]


# -- the permission each op checks -------------------------------------------------------------

OPS = {
    "getData": (READ, lambda c, p: c.get(p)),
    "getChildren": (READ, lambda c, p: c.get_children(p)),
    "setData": (WRITE, lambda c, p: c.set(p, b"x")),
    "create": (CREATE, lambda c, p: c.create(f"{p}/new")),  # CREATE on the parent
    "delete": (DELETE, lambda c, p: c.delete(f"{p}/victim")),  # DELETE on the parent
    "setACL": (ADMIN, lambda c, p: c.set_acls(p, world(ALL))),
    "getACL": (READ, lambda c, p: c.get_acls(p)),
}


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("granted", ["only", "all-but"])
def test_each_op_checks_its_permission(anon, root, op, granted):
    perm, action = OPS[op]
    p = f"{root}/n"
    anon.create(p)
    anon.create(f"{p}/victim", acl=world(READ))  # its own ACL does not matter to delete
    anon.set_acls(p, world(perm if granted == "only" else ALL & ~perm))
    # all-but-READ still holds ADMIN, which is enough for getACL (next test)
    if granted == "only" or op == "getACL":
        action(anon, p)
    else:
        with pytest.raises(NoAuthError):
            action(anon, p)


@pytest.mark.parametrize("perms, allowed", [(READ, True), (ADMIN, True), (READ | ADMIN, True),
                                            (WRITE, False), (ALL & ~(READ | ADMIN), False)])
def test_get_acl_needs_read_or_admin(anon, root, perms, allowed):
    p = f"{root}/n"
    anon.create(p, acl=world(perms))
    if allowed:
        assert acl_tuples(anon.get_acls(p)[0]) == [(perms, "world", "anyone")]
    else:
        with pytest.raises(NoAuthError):
            anon.get_acls(p)


def test_exists_without_read(anon, srv, root):
    """protocol.md, 3.8 vs 3.9: NOAUTH on ours (ZOOKEEPER-2590), answered on 3.8.0."""
    p = f"{root}/n"
    anon.create(p, acl=world(ALL & ~READ))
    if srv.kind == "apache":
        assert anon.exists(p) is not None
    else:
        with pytest.raises(NoAuthError):
            anon.exists(p)
    assert anon.exists(f"{root}/missing") is None  # no node, no ACL: NONODE on both


def test_digest_ids_are_masked_without_admin(anon, srv, zk_factory, root):
    p = f"{root}/n"
    anon.create(p, acl=[ACL(READ, ANYONE), digest_acl("bob", "pw")])
    masked = [(READ, "world", "anyone"), (ALL, "digest", "bob:x")]
    full = [(READ, "world", "anyone"), (ALL, "digest", digest_id("bob", "pw"))]
    assert acl_tuples(anon.get_acls(p)[0]) == masked
    bob = zk_factory(srv, auth_data=[("digest", "bob:pw")])
    assert acl_tuples(bob.get_acls(p)[0]) == full
    admin_only = f"{root}/a"
    anon.create(admin_only, acl=[ACL(ADMIN, ANYONE), digest_acl("bob", "pw", READ)])
    assert acl_tuples(anon.get_acls(admin_only)[0]) == [(ADMIN, "world", "anyone"),
                                                        (READ, "digest", digest_id("bob", "pw"))]


# -- schemes -----------------------------------------------------------------------------------

def test_world_scheme(anon, root):
    p = f"{root}/n"
    anon.create(p, b"d", acl=world(READ))
    assert anon.get(p)[0] == b"d"
    with pytest.raises(NoAuthError):
        anon.set(p, b"x")
    with pytest.raises(NoAuthError):
        anon.create(f"{p}/c")
    with pytest.raises(InvalidACLError):
        anon.create(f"{root}/w", acl=[ACL(ALL, Id("world", "someone"))])


def test_auth_scheme_expands_to_the_connection_ids(anon, srv, zk_factory, root):
    alice = zk_factory(srv, auth_data=[("digest", "alice:pw")])
    p = f"{root}/n"
    alice.create(p, b"s", acl=CREATOR_ALL_ACL)
    assert acl_tuples(alice.get_acls(p)[0]) == [(ALL, "digest", digest_id("alice", "pw"))]
    assert alice.get(p)[0] == b"s"
    with pytest.raises(NoAuthError):
        anon.get(p)
    again = zk_factory(srv, auth_data=[("digest", "alice:pw")])
    assert again.get(p)[0] == b"s"
    # without an authenticated id (ip does not count), `auth` is an invalid ACL
    with pytest.raises(InvalidACLError):
        anon.create(f"{root}/m", acl=CREATOR_ALL_ACL)
    with pytest.raises(InvalidACLError):
        anon.set_acls(f"{root}", CREATOR_ALL_ACL)


def test_two_auth_ids_both_go_into_an_auth_acl(srv, zk_factory, root):
    c = zk_factory(srv, auth_data=[("digest", "alice:pw"), ("digest", "bob:pw")])
    c.ensure_path(root)
    p = f"{root}/n"
    c.create(p, acl=CREATOR_ALL_ACL)
    assert sorted(acl_tuples(c.get_acls(p)[0])) == sorted(
        [(ALL, "digest", digest_id("alice", "pw")), (ALL, "digest", digest_id("bob", "pw"))])


def test_digest_scheme_right_and_wrong_password(anon, srv, zk_factory, root):
    p = f"{root}/n"
    anon.create(p, b"s", acl=[digest_acl("alice", "pw", READ | WRITE)])
    right = zk_factory(srv, auth_data=[("digest", "alice:pw")])
    assert right.get(p)[0] == b"s"
    right.set(p, b"t")
    with pytest.raises(NoAuthError):
        right.create(f"{p}/c")  # CREATE was not granted
    wrong = zk_factory(srv)
    wrong.add_auth("digest", "alice:nope")  # accepted: a wrong password is no AUTHFAILED
    with pytest.raises(NoAuthError):
        wrong.get(p)
    with pytest.raises(NoAuthError):
        anon.get(p)


@pytest.mark.parametrize("acl_id, allowed", [
    ("127.0.0.1", True), ("127.0.0.0/8", True), ("127.0.0.1/32", True), ("0.0.0.0/0", True),
    ("10.0.0.0/8", False), ("127.0.0.2", False), ("128.0.0.0/1", False),
])
def test_ip_scheme(anon, root, acl_id, allowed):
    p = f"{root}/n"
    anon.create(p, b"s", acl=[ACL(READ, Id("ip", acl_id))])
    if allowed:
        assert anon.get(p)[0] == b"s"
    else:
        with pytest.raises(NoAuthError):
            anon.get(p)


def test_super_passes_every_check(anon, srv, zk_factory, root):
    p = f"{root}/n"
    anon.create(p, b"s", acl=[digest_acl("bob", "pw")])
    with pytest.raises(NoAuthError):
        anon.get(p)
    su = zk_factory(srv, auth_data=[("digest", "super:secret")])
    assert su.get(p)[0] == b"s"
    su.set(p, b"t")
    su.create(f"{p}/c")
    assert su.get_children(p) == ["c"]
    assert acl_tuples(su.get_acls(p)[0]) == [(ALL, "digest", digest_id("bob", "pw"))]  # unmasked
    su.delete(f"{p}/c")
    su.set_acls(p, world(READ))
    assert anon.get(p)[0] == b"t"
    not_super = zk_factory(srv, auth_data=[("digest", "super:wrong")])
    with pytest.raises(NoAuthError):
        not_super.set(p, b"u")


# -- invalid ACLs ------------------------------------------------------------------------------

BAD_ACLS = {
    "unknown scheme": [ACL(ALL, Id("foo", "bar"))],
    "world but not anyone": [ACL(ALL, Id("world", "everyone"))],
    "ip out of range": [ACL(ALL, Id("ip", "300.1.1.1"))],
    "ip bits too many": [ACL(ALL, Id("ip", "10.0.0.0/33"))],
    "ip not an address": [ACL(ALL, Id("ip", "localhost"))],
    "digest without colon": [ACL(ALL, Id("digest", "nocolon"))],
    "digest with two colons": [ACL(ALL, Id("digest", "a:b:c"))],
    "one bad among good": [ACL(ALL, ANYONE), ACL(ALL, Id("foo", "bar"))],
}


@pytest.mark.parametrize("name", sorted(BAD_ACLS))
def test_invalid_acls(anon, root, name):
    acl = BAD_ACLS[name]
    with pytest.raises(InvalidACLError):
        anon.create(f"{root}/n", acl=acl)
    assert anon.exists(f"{root}/n") is None
    anon.create(f"{root}/m")
    with pytest.raises(InvalidACLError):
        anon.set_acls(f"{root}/m", acl)
    assert acl_tuples(anon.get_acls(f"{root}/m")[0]) == [(ALL, "world", "anyone")]


@pytest.mark.parametrize("acl", [[], None], ids=["empty", "null"])
def test_empty_or_null_acl_is_invalid(srv, wire_factory, root, acl):
    """kazoo sends OPEN_ACL_UNSAFE for an empty list, so this one goes on the wire."""
    c = wire_factory(srv)
    r = c.call(OpCode.create, CreateRequest(root, b"", OPEN_WIRE, 0))
    assert r.err in (0, Code.NODEEXISTS)
    r = c.call(OpCode.create, CreateRequest(f"{root}/n", b"", acl, 0))
    assert r.err == Code.INVALIDACL
    r = c.call(OpCode.setACL, SetACLRequest(root, acl, -1))
    assert r.err == Code.INVALIDACL


# -- AuthPacket and whoAmI ---------------------------------------------------------------------

def auth(c: WireClient, scheme: str, credential: bytes):
    c.send(OpCode.auth, AuthPacket(0, scheme, credential), xid=AUTH_XID)
    return c.read_reply()


def who_am_i(c: WireClient) -> set[tuple[str, str]]:
    r = c.call(OpCode.whoAmI)
    assert r.err == 0
    return {(i.authScheme, i.user) for i in r.decode(WhoAmIResponse).clientInfo}


@pytest.mark.parametrize("scheme", ["nope", "world", "auth", "super", ""])
def test_unknown_auth_scheme_is_authfailed_and_closes(srv, wire_factory, scheme):
    c = wire_factory(srv, timeout_ms=10000)
    c.send(OpCode.auth, AuthPacket(0, scheme, b"x"), xid=AUTH_XID)
    frames = []
    with pytest.raises(ConnectionClosed):
        while True:
            frames.append(c.recv_frame())
    # exactly {-4, 0, AUTHFAILED}: no AuthFailed notification from the server
    assert frames == [bytes.fromhex("fffffffc") + bytes(8) + (Code.AUTHFAILED & 0xFFFFFFFF).to_bytes(4, "big")]
    # the connection is gone, the session is not: it can be resumed
    again = wire_factory(srv, connect=False)
    assert again.connect(timeout_ms=10000, session_id=c.session_id, passwd=c.passwd).sessionId == c.session_id
    assert who_am_i(again) == {("ip", srv.host)}


def test_who_am_i_shows_the_ids(srv, wire_factory):
    c = wire_factory(srv)
    assert who_am_i(c) == {("ip", srv.host)}
    r = auth(c, "digest", b"alice:pw")
    assert (r.xid, r.zxid, r.err) == (AUTH_XID, 0, 0)
    assert who_am_i(c) == {("ip", srv.host), ("digest", "alice")}
    assert auth(c, "digest", b"alice:pw").err == 0  # the same id twice is listed once
    assert auth(c, "ip", b"anything").err == 0  # ip adds the connection's own address again
    assert who_am_i(c) == {("ip", srv.host), ("digest", "alice")}
    assert auth(c, "digest", b"super:secret").err == 0
    assert who_am_i(c) == {("ip", srv.host), ("digest", "alice"), ("digest", "super"), ("super", "")}
    r = c.call(OpCode.whoAmI)
    assert len(r.decode(WhoAmIResponse).clientInfo) == 4
    assert ClientInfo("digest", "alice") in r.decode(WhoAmIResponse).clientInfo


# -- READ filtering of watch events --------------------------------------------------------------



def test_events_need_read_on_the_node(anon, srv, zk_factory, root):
    """protocol.md: an event reaches a connection only if it has READ on the changed node (the
    parent's ACL for NodeChildrenChanged); Debian's 3.8.0 carries the fix."""
    alice = zk_factory(srv, auth_data=[("digest", "alice:pw")])
    secret = [digest_acl("alice", "pw")]
    created, child, changed, deleted = Events(), Events(), Events(), Events()
    p = f"{root}/n"
    assert anon.exists(p, watch=created) is None
    anon.get_children(root, watch=child)
    alice.create(p, b"s", acl=secret)  # NodeCreated on an unreadable node: filtered
    assert child.next().type == "CHILD"  # the parent is readable: delivered
    alice.sync(p)
    anon.sync(p)
    assert created.none()
    q = f"{root}/q"
    alice.create(q, b"0")
    anon.get(q, watch=changed)
    alice.set_acls(q, secret)  # setACL fires no watch
    alice.set(q, b"1")  # NodeDataChanged on a node anon cannot read: filtered
    alice.sync(q)
    assert changed.none()
    r = f"{root}/r"
    alice.create(r, b"0")
    anon.exists(r, watch=deleted)
    alice.set_acls(r, secret)
    alice.delete(r)
    alice.sync(root)
    assert deleted.none()
    # the same sequence seen by a reader with the id is delivered
    seen = Events()
    alice.create(f"{root}/s", b"0", acl=secret)
    alice.get(f"{root}/s", watch=seen)
    alice.set(f"{root}/s", b"1")
    assert seen.next().type == "CHANGED"


# -- differential ------------------------------------------------------------------------------

def _outcome(fn):
    try:
        value = fn()
    except Exception as e:  # noqa: BLE001 - the outcome is the exception's kind
        return type(e).__name__
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], list):
        return ("acl", acl_tuples(value[0]), value[1].aversion)
    if hasattr(value, "version") and hasattr(value, "czxid"):
        return ("stat", value.version, value.aversion, value.cversion)
    if isinstance(value, tuple) and len(value) == 2:
        return ("data", value[0], value[1].version)
    return ("ok", value)


def _run_sequence(server, zk_factory) -> list:
    base = "/t-acl-differential"
    anon = zk_factory(server)
    alice = zk_factory(server, auth_data=[("digest", "alice:pw")])
    bob = zk_factory(server, auth_data=[("digest", "bob:pw")])
    wrong = zk_factory(server, auth_data=[("digest", "alice:wrong")])
    su = zk_factory(server, auth_data=[("digest", "super:secret")])
    c = {"anon": anon, "alice": alice, "bob": bob, "wrong": wrong, "super": su}
    a = f"{base}/a"
    steps = [
        ("anon", lambda z: z.create(base)),
        ("alice", lambda z: z.create(a, b"A", acl=CREATOR_ALL_ACL)),
        ("anon", lambda z: z.get(a)),
        ("bob", lambda z: z.get(a)),
        ("wrong", lambda z: z.get(a)),
        ("alice", lambda z: z.get(a)),
        ("anon", lambda z: z.get_acls(a)),
        ("alice", lambda z: z.get_acls(a)),
        ("alice", lambda z: z.set_acls(a, [ACL(READ, ANYONE), digest_acl("alice", "pw")])),
        ("anon", lambda z: z.get(a)),
        ("anon", lambda z: z.get_acls(a)),
        ("anon", lambda z: z.set(a, b"x")),
        ("bob", lambda z: z.set_acls(a, OPEN_ACL_UNSAFE)),
        ("alice", lambda z: z.set(a, b"B")),
        ("alice", lambda z: z.set_acls(a, [ACL(CREATE, Id("digest", digest_id("bob", "pw"))),
                                            digest_acl("alice", "pw", ALL & ~CREATE)], version=0)),
        ("alice", lambda z: z.set_acls(a, [ACL(CREATE, Id("digest", digest_id("bob", "pw"))),
                                            digest_acl("alice", "pw", ALL & ~CREATE)], version=1)),
        ("alice", lambda z: z.create(f"{a}/x")),
        ("bob", lambda z: z.create(f"{a}/x", acl=[ACL(ALL, Id("ip", "10.0.0.0/8"))])),
        ("bob", lambda z: z.get(f"{a}/x")),
        ("anon", lambda z: z.get(f"{a}/x")),
        ("super", lambda z: z.get(f"{a}/x")),
        ("bob", lambda z: z.delete(f"{a}/x")),
        ("alice", lambda z: z.delete(f"{a}/x")),
        ("alice", lambda z: z.create(f"{a}/y", acl=[ACL(ALL, Id("ip", "127.0.0.0/8"))])),
        ("anon", lambda z: z.set(f"{a}/y", b"ip")),
        ("anon", lambda z: z.create(f"{base}/z", acl=CREATOR_ALL_ACL)),
        ("anon", lambda z: z.create(f"{base}/z", acl=[ACL(ALL, Id("nope", "x"))])),
        ("anon", lambda z: z.create(f"{base}/z", acl=[ACL(0, ANYONE)])),
        ("anon", lambda z: z.get(f"{base}/z")),
        ("anon", lambda z: z.get_acls(f"{base}/z")),
        ("anon", lambda z: z.delete(f"{base}/z")),
        ("super", lambda z: z.set_acls(a, [ACL(READ, ANYONE)])),
        ("alice", lambda z: z.set(a, b"C")),
        ("super", lambda z: z.set(a, b"D")),
        ("anon", lambda z: z.get(a)),
        ("anon", lambda z: z.exists(f"{base}/nothing")),
    ]
    out = []
    for who, step in steps:
        out.append((who, _outcome(lambda: step(c[who]))))
    return out


@pytest.mark.timeout(120)
def test_differential_acl_sequence(acl_pool, zk_factory):
    """One fixed sequence of ACL/auth operations on both servers: the same outcome at every step."""
    apache = _run_sequence(acl_pool("apache"), zk_factory)
    ours = _run_sequence(acl_pool("ours"), zk_factory)
    for i, (a, o) in enumerate(zip(apache, ours)):
        assert a == o, f"step {i}: apache {a} != ours {o}"
    assert len(apache) == len(ours)
    # a sanity check that the sequence exercises both outcomes
    kinds = {o for _, o in apache if isinstance(o, str)}
    assert {"NoAuthError", "InvalidACLError"} <= kinds
