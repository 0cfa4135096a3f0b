"""SASL authentication (op 102) with DIGEST-MD5, as ZooKeeper 3.8 does it.

``hooks`` offers the ``sasl`` scheme (``SaslProvider``) when users are configured;
``digest_md5`` is the RFC 2831 server side; ``jaas`` reads JAAS login configuration files.
"""

from plugins.auth_sasl.digest_md5 import DigestMD5Error, DigestMD5Server
from plugins.auth_sasl.hooks import SaslProvider

__all__ = ["DigestMD5Error", "DigestMD5Server", "SaslProvider"]
