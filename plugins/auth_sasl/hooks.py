"""Hook implementations of the SASL auth plugin: the ``sasl`` scheme with DIGEST-MD5.

Configuration (zoo.cfg; the scheme is offered only when at least one user is configured):

- ``sasl.jaasConfig=<path>``: a JAAS file whose ``Server`` section lists users as options
  ``user_<name>="<password>"`` (what ZooKeeper reads from the file named by the JVM property
  ``java.security.auth.login.config``). Without the key, the environment variable
  ``ZKSERVER_JAAS_CONFIG`` names the file. A named file that cannot be read, or that has no
  ``Server`` section, stops start-up, as it stops ZooKeeper's.
- ``sasl.user.<name>=<password>``: more users (these win over the JAAS file's).
- Super users: ``sasl.superUser=<name>``, or ZooKeeper's ``zookeeper.superUser[.<x>]=<name>``
  (also without the ``zookeeper.`` prefix, which is how zoo.cfg sets it for ZooKeeper): a user
  of that name is granted ``super`` besides ``sasl:<name>``.
- ``sasl.superPassword`` (ZooKeeper's ``zookeeper.SASLAuthenticationProvider.superPassword``,
  also without the prefix): replaces the password of the user ``super``, if there is one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from core import hookimpl
from core.config import ConfigError
from core.interfaces import PeerInfo
from core.records import Id
from plugins.auth_sasl import jaas
from plugins.auth_sasl.digest_md5 import DigestMD5Server

if TYPE_CHECKING:
    from core.interfaces import AuthProvider

JAAS_ENV = "ZKSERVER_JAAS_CONFIG"
SERVER_SECTION = "Server"  # ZooKeeper's default login context (zookeeper.sasl.serverconfig)
_SUPER_USER = re.compile(r"(?:zookeeper\.)?superUser(?:\..*)?|sasl\.superUser")
_SUPER_PASSWORD_KEYS = ("sasl.superPassword", "zookeeper.SASLAuthenticationProvider.superPassword",
                        "SASLAuthenticationProvider.superPassword")
# Java's KerberosName: service[/host]@realm; a name without '@' is a bare service name.
_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


class SaslProvider:
    """The ``sasl`` scheme, as ZooKeeper's SASLAuthenticationProvider, with DIGEST-MD5 logins."""

    scheme = "sasl"
    is_authenticated = True

    def __init__(self, users: Mapping[str, str], super_users: Iterable[str] = ()) -> None:
        self.users = dict(users)
        self.super_users = frozenset(super_users)

    def authenticate(self, peer: PeerInfo, auth: bytes) -> list[Id] | None:
        """An AuthPacket for ``sasl`` always fails, as in ZooKeeper: SASL goes through op 102."""
        return None

    def matches(self, id: str, acl_id: str) -> bool:
        """Equality; the id ``super`` matches every ``sasl`` ACL entry (as ZooKeeper's)."""
        return id == "super" or id == acl_id

    def is_valid(self, acl_id: str) -> bool:
        """ZooKeeper's rule (a parsable Kerberos name): no '@' at all, or exactly
        ``service[/host]@realm`` with no further '/' or '@'. The empty id is valid, as there."""
        return "@" not in acl_id or _KERBEROS_NAME.fullmatch(acl_id) is not None

    def grant(self, user: str) -> list[Id]:
        """The ids of an authenticated user: ``sasl:<user>``, and ``super`` for a super user."""
        ids = [Id(self.scheme, user)]
        if user in self.super_users:
            ids.append(Id("super", ""))
        return ids

    def sasl_server(self, peer: PeerInfo) -> DigestMD5Server:
        """A DIGEST-MD5 exchange for one connection."""
        return DigestMD5Server(self.users.get, self.grant)


def read_users(config: Any, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The configured DIGEST-MD5 users (name -> password). Raises ConfigError."""
    environ = os.environ if environ is None else environ
    raw: Mapping[str, str] = config.raw
    users: dict[str, str] = {}
    path = raw.get("sasl.jaasConfig")
    where = "sasl.jaasConfig"
    if path is None and environ.get(JAAS_ENV):
        path, where = environ[JAAS_ENV], JAAS_ENV
    if path is not None:
        try:
            sections = jaas.load(path)
        except jaas.JaasError as e:
            raise _error(config, where, str(e)) from e
        if SERVER_SECTION not in sections:
            raise _error(config, where, f"no JAAS configuration section named '{SERVER_SECTION}' in {path!r}")
        users.update(jaas.digest_users(sections[SERVER_SECTION]))
    for key, password in raw.items():
        if key.startswith("sasl.user."):
            name = key[len("sasl.user."):]
            if not name:
                raise _error(config, key, "a user name is needed after 'sasl.user.'")
            users[name] = password
    if "super" in users:
        for key in _SUPER_PASSWORD_KEYS:
            if key in raw:
                users["super"] = raw[key]
    return users


def read_super_users(config: Any) -> set[str]:
    """The names given by the super user keys."""
    return {value for key, value in config.raw.items() if _SUPER_USER.fullmatch(key) and value}


def _error(config: Any, key: str, message: str) -> ConfigError:
    if key in config.raw and hasattr(config, "error"):
        return config.error(key, message)
    return ConfigError(f"{key}: {message}", key=key)


@hookimpl
def zk_auth_providers(config: Any) -> list[AuthProvider]:
    """Offer the ``sasl`` scheme when DIGEST-MD5 users are configured, else nothing."""
    users = read_users(config)
    if not users:
        return []
    return [SaslProvider(users, read_super_users(config))]
