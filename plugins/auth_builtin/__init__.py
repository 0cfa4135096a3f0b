"""Built-in ACL schemes: ``digest`` and ``ip``, with ZooKeeper 3.8's semantics.

``hooks`` registers them through ``zk_auth_providers``; ``digest`` and ``ip`` hold the
providers and the helpers other code may want (``digest_id``, ``generate_digest``,
``host_address``).
"""

from plugins.auth_builtin.digest import DigestProvider, digest_id, generate_digest
from plugins.auth_builtin.ip import IpProvider, host_address

__all__ = ["DigestProvider", "IpProvider", "digest_id", "generate_digest", "host_address"]
