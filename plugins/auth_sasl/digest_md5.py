"""The server side of SASL DIGEST-MD5 (RFC 2831), as ZooKeeper's Java server runs it.

The exchange takes two client tokens:

1. the client sends an empty token; the server answers the digest-challenge
   ``realm="zk-sasl-md5",nonce="...",charset=utf-8,algorithm=md5-sess`` (the Java server's
   challenge, byte for byte in form: no ``qop`` directive, which means ``auth``);
2. the client sends its digest-response; the server checks it and answers
   ``rspauth=<hex>``, proving that it knows the password too. The exchange is complete.

Only ``qop=auth`` is offered (no integrity or confidentiality layer), as ZooKeeper does. The
nonce is fresh per exchange, and the nonce count must be 1, so a response recorded from one
exchange cannot be replayed into another. Any further token fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

from core.records import Id

REALM = "zk-sasl-md5"  # ZooKeeper's server name for DIGEST-MD5, which Java offers as the realm
PROTOCOL = "zookeeper"
MAX_RESPONSE_LENGTH = 4096  # the Java server's limit on a digest-response

# Directives that may appear at most once in a digest-response (RFC 2831 section 2.1.2).
_SINGLE = frozenset({"username", "realm", "nonce", "cnonce", "nc", "qop", "digest-uri",
                     "response", "maxbuf", "charset", "cipher", "authzid"})
_SEPARATORS = b'()<>@,;:\\"/[]?={} \t'


class DigestMD5Error(ValueError):
    """The client's token is malformed or does not authenticate it."""


def _h(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def _hex(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


def _latin1_or_utf8(text: str) -> bytes:
    """RFC 2831: a value in charset utf-8 whose characters all fit ISO 8859-1 is hashed as
    ISO 8859-1; otherwise as UTF-8 (the Java implementation's rule too)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def quote(value: str) -> str:
    """A quoted-string: the value in double quotes, '"' and '\\' escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_directives(data: bytes) -> dict[str, bytes]:
    """Parse ``1#( name "=" ( token | quoted-string ) )`` into {lowercase name: raw value}.

    Linear white space around elements and empty list elements are allowed (RFC 2616's #rule).
    Raises DigestMD5Error for a syntax error or a repeated single-valued directive."""
    out: dict[str, bytes] = {}
    i, n = 0, len(data)

    def skip_ws(j: int) -> int:
        while j < n and data[j] in b" \t\r\n":
            j += 1
        return j

    while True:
        i = skip_ws(i)
        if i >= n:
            return out
        if data[i] == ord(","):
            i += 1
            continue
        start = i
        while i < n and data[i] > 32 and data[i] != 127 and data[i] not in _SEPARATORS:
            i += 1
        name = data[start:i].decode("ascii").lower()
        i = skip_ws(i)
        if not name or i >= n or data[i] != ord("="):
            raise DigestMD5Error(f"digest-response syntax error at byte {i}")
        i = skip_ws(i + 1)
        if i < n and data[i] == ord('"'):
            value = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise DigestMD5Error("unterminated quoted-string")
                c = data[i]
                if c == ord("\\") and i + 1 < n:
                    value.append(data[i + 1])
                    i += 2
                elif c == ord('"'):
                    i += 1
                    break
                else:
                    value.append(c)
                    i += 1
        else:
            start = i
            while i < n and data[i] > 32 and data[i] != 127 and data[i] not in _SEPARATORS:
                i += 1
            value = bytearray(data[start:i])
        if name in out and name in _SINGLE:
            raise DigestMD5Error(f"directive {name} given more than once")
        out.setdefault(name, bytes(value))
        i = skip_ws(i)
        if i < n and data[i] != ord(","):
            raise DigestMD5Error(f"digest-response syntax error at byte {i}")


class DigestMD5Server:
    """One DIGEST-MD5 exchange on the server side: a core.interfaces.SaslServer.

    :param password: the password of a user name, or None for an unknown user.
    :param grant: the ids to grant to an authenticated user name.
    :param realm: the realm offered (and the only one accepted).
    :param protocol: and
    :param server_name: make the digest-uri the client must name, ``protocol/server_name``.
    :param nonce: the nonce to use (tests); a fresh random one by default.
    """

    def __init__(self, password: Callable[[str], str | None], grant: Callable[[str], list[Id]],
                 *, realm: str = REALM, protocol: str = PROTOCOL, server_name: str = REALM,
                 nonce: str | None = None) -> None:
        self.password = password
        self.grant = grant
        self.realm = realm
        self.digest_uri = f"{protocol}/{server_name}"
        # 30 random bytes in base64, as the Java server's nonce: 40 characters, no quote.
        self.nonce = nonce if nonce is not None else base64.b64encode(secrets.token_bytes(30)).decode("ascii")
        self.state = 0  # 0: challenge next, 1: response next, 2: complete, 3: failed
        self.username: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == 2

    def challenge(self) -> bytes:
        """The digest-challenge (RFC 2831 section 2.1.1) in the Java server's form."""
        return (f"realm={quote(self.realm)},nonce={quote(self.nonce)},"
                f"charset=utf-8,algorithm=md5-sess").encode("utf-8")

    def step(self, token: bytes) -> tuple[bytes | None, list[Id] | None]:
        """The challenge for the first token (whatever it holds: the Java server ignores an
        initial response), then ``rspauth=...`` and the granted ids for a valid response.
        Raises DigestMD5Error (a ValueError) on any failure, and for every later token."""
        if self.state == 0:
            self.state = 1
            return self.challenge(), None
        if self.state != 1:
            self.state = 3
            raise DigestMD5Error("DIGEST-MD5 exchange already completed or failed")
        try:
            rspauth = self._verify(token)
        except DigestMD5Error:
            self.state = 3
            raise
        except (UnicodeError, ValueError) as e:
            self.state = 3
            raise DigestMD5Error(f"malformed digest-response: {e}") from e
        self.state = 2
        assert self.username is not None
        return b"rspauth=" + rspauth, self.grant(self.username)

    def _verify(self, token: bytes) -> bytes:
        """Check a digest-response; the rspauth value to answer with."""
        if len(token) > MAX_RESPONSE_LENGTH:
            raise DigestMD5Error(f"digest-response longer than {MAX_RESPONSE_LENGTH} bytes")
        d = parse_directives(token)
        charset = d.get("charset")
        if charset is not None and charset.lower() != b"utf-8":
            raise DigestMD5Error("charset must be utf-8")
        encoding = "utf-8" if charset is not None else "latin-1"  # RFC: ISO 8859-1 by default
        for required in ("username", "nonce", "cnonce", "nc", "digest-uri", "response"):
            if required not in d:
                raise DigestMD5Error(f"digest-response without {required}")
        if not hmac.compare_digest(d["nonce"], self.nonce.encode("ascii")):
            raise DigestMD5Error("nonce mismatch")
        nc = d["nc"]
        if len(nc) != 8 or int(nc, 16) != 1:
            raise DigestMD5Error("nonce count must be 00000001")
        qop = d.get("qop", b"auth")
        if qop != b"auth":
            raise DigestMD5Error(f"unsupported qop {qop.decode('ascii', 'replace')}")
        digest_uri = d["digest-uri"]
        if digest_uri.decode(encoding).lower() != self.digest_uri.lower():
            raise DigestMD5Error(f"digest-uri {digest_uri.decode(encoding)!r} is not {self.digest_uri!r}")
        realm = d.get("realm")
        realm_text = realm.decode(encoding) if realm is not None else ""
        if realm is not None and realm_text != self.realm:
            raise DigestMD5Error(f"unknown realm {realm_text!r}")
        username = d["username"].decode(encoding)
        password = self.password(username)
        if password is None:
            raise DigestMD5Error(f"unknown user {username!r}")
        cnonce = d["cnonce"]
        if not cnonce:
            raise DigestMD5Error("empty cnonce")
        authzid = d.get("authzid")

        key = _h(_latin1_or_utf8(username) + b":" + _latin1_or_utf8(realm_text) + b":"
                 + _latin1_or_utf8(password))
        a1 = key + b":" + d["nonce"] + b":" + cnonce
        if authzid is not None:
            a1 += b":" + authzid
        ha1 = _hex(a1)

        def kd(a2: bytes) -> bytes:
            return _hex(ha1 + b":" + d["nonce"] + b":" + nc + b":" + cnonce + b":" + qop + b":" + _hex(a2))

        expected = kd(b"AUTHENTICATE:" + digest_uri)
        if not hmac.compare_digest(expected, d["response"].lower()):
            raise DigestMD5Error(f"wrong password for user {username!r}")
        self.username = username
        return kd(b":" + digest_uri)
