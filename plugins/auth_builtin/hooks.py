"""Hook implementations of the built-in auth plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import hookimpl
from plugins.auth_builtin.digest import DigestProvider
from plugins.auth_builtin.ip import IpProvider

if TYPE_CHECKING:
    from core.interfaces import AuthProvider


@hookimpl
def zk_auth_providers(config: Any) -> list[AuthProvider]:
    """Offer the ``digest`` scheme (with the configured super digest, if any) and ``ip``."""
    return [DigestProvider(getattr(config, "super_digest", None)), IpProvider()]
