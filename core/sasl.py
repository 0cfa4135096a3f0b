"""SASL packets (op 102), as ZooKeeper 3.8's ZooKeeperServer.processSasl answers them.

A GetSASLRequest carries the client's token; the reply is a SetSASLResponse with the server's
token, zxid 0. The connection's exchange (a core.interfaces.SaslServer, from the ``sasl``
scheme's provider) lives in ``conn.sasl`` from its first SASL packet on; when it completes,
its ids join the connection's. On failure the reply is AUTHFAILED with a null token and the
connection is closed (no AuthFailed event, unlike a failed AuthPacket). Without a SASL
provider, ZooKeeper answers OK with a null token and keeps the connection, and so do we.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from core.connection import reply_frame
from core.errors import Code
from core.records import SaslToken

if TYPE_CHECKING:
    from core.connection import ServerConnection

log = Logger()

SCHEME = "sasl"
_NULL_TOKEN = SaslToken.encode(SaslToken(None))


def sasl_reply(conn: ServerConnection, xid: int, token: bytes) -> bytes:
    """Run one step of the connection's SASL exchange; the reply frame to send."""
    provider = conn.server.access.providers.get(SCHEME)
    sasl_server = getattr(provider, "sasl_server", None)
    if sasl_server is None:
        log.info("SASL packet from {host} but SASL is not configured", host=conn.peer.host)
        return reply_frame(xid, 0, 0, _NULL_TOKEN)
    if conn.sasl is None:
        conn.sasl = sasl_server(conn.peer)
    try:
        out, ids = conn.sasl.step(token)
    except ValueError as e:
        log.warn("Client {host}:{port} failed to SASL authenticate: {why}",
                 host=conn.peer.host, port=conn.peer.port, why=e)
        # Stop reading now; close once this reply (being sent by our caller) is written.
        conn.closing = True
        conn.server.reactor.callLater(0, conn.close)
        return reply_frame(xid, 0, Code.AUTHFAILED, _NULL_TOKEN)
    if ids:
        conn.add_auth_ids(ids)
        log.info("Session 0x{sid:x}: adding SASL authorization for {ids}",
                 sid=conn.session_id & (2**64 - 1), ids=", ".join(f"{i.scheme}:{i.id}" for i in ids))
    return reply_frame(xid, 0, 0, SaslToken.encode(SaslToken(out)))
