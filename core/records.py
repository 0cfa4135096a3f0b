"""Every jute record the server speaks, in zookeeper.jute's names and field order.

The client protocol (``org.apache.zookeeper.proto``), the data records (``data``) and the
transaction records (``txn``) that go to the store and, later, between ensemble members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from core.jute import Int, Long, Record, VectorTable, record

# -- data -----------------------------------------------------------------------------------


@record
class Id(Record):
    scheme: str
    id: str


@record
class ACL(Record):
    perms: Int
    id: Id


# The ACL lists of creates and setACLs, interned by their bytes (core.jute.VectorTable): a
# client sends the same few lists over and over; decoded, they are shared tuples.
ACL_LISTS = VectorTable()
AclList = Annotated[Sequence[ACL] | None, ACL_LISTS]


@record
class Stat(Record):
    czxid: Long
    mzxid: Long
    ctime: Long
    mtime: Long
    version: Int
    cversion: Int
    aversion: Int
    ephemeralOwner: Long
    dataLength: Int
    numChildren: Int
    pzxid: Long


@record
class StatPersisted(Record):
    czxid: Long
    mzxid: Long
    ctime: Long
    mtime: Long
    version: Int
    cversion: Int
    aversion: Int
    ephemeralOwner: Long
    pzxid: Long


# -- connection -------------------------------------------------------------------------------


@record
class ConnectRequest(Record):
    protocolVersion: Int
    lastZxidSeen: Long
    timeOut: Int
    sessionId: Long
    passwd: bytes | None


@record
class ConnectResponse(Record):
    protocolVersion: Int
    timeOut: Int
    sessionId: Long
    passwd: bytes | None


@record
class RequestHeader(Record):
    xid: Int
    type: Int


@record
class ReplyHeader(Record):
    xid: Int
    zxid: Long
    err: Int


@record
class WatcherEvent(Record):
    type: Int
    state: Int
    path: str | None


@record
class AuthPacket(Record):
    type: Int
    scheme: str | None
    auth: bytes | None


@record
class MultiHeader(Record):
    type: Int
    done: bool
    err: Int


@record
class ErrorResponse(Record):
    err: Int


# -- requests and responses -------------------------------------------------------------------


@record
class CreateRequest(Record):
    path: str | None
    data: bytes | None
    acl: AclList
    flags: Int


@record
class CreateTTLRequest(Record):
    path: str | None
    data: bytes | None
    acl: AclList
    flags: Int
    ttl: Long


@record
class CreateResponse(Record):
    path: str | None


@record
class Create2Response(Record):
    path: str | None
    stat: Stat


@record
class DeleteRequest(Record):
    path: str | None
    version: Int


@record
class PathWatchRequest(Record):
    """ExistsRequest, GetDataRequest, GetChildrenRequest and GetChildren2Request: one layout."""

    path: str | None
    watch: bool


@record
class StatResponse(Record):
    """ExistsResponse, SetDataResponse and SetACLResponse: one layout."""

    stat: Stat


@record
class GetDataResponse(Record):
    data: bytes | None
    stat: Stat


@record
class SetDataRequest(Record):
    path: str | None
    data: bytes | None
    version: Int


@record
class PathRequest(Record):
    """GetACLRequest, SyncRequest, SyncResponse, GetAllChildrenNumberRequest,
    GetEphemeralsRequest (prefixPath) and deleteContainer's body (3.9): one layout."""

    path: str | None


@record
class GetACLResponse(Record):
    acl: list[ACL] | None
    stat: Stat


@record
class SetACLRequest(Record):
    path: str | None
    acl: AclList
    version: Int


@record
class GetChildrenResponse(Record):
    children: list[str] | None


@record
class GetChildren2Response(Record):
    children: list[str] | None
    stat: Stat


@record
class CheckVersionRequest(Record):
    path: str | None
    version: Int


@record
class GetAllChildrenNumberResponse(Record):
    totalNumber: Int


@record
class GetEphemeralsResponse(Record):
    ephemerals: list[str] | None


@record
class SetWatches(Record):
    relativeZxid: Long
    dataWatches: list[str] | None
    existWatches: list[str] | None
    childWatches: list[str] | None


@record
class SetWatches2(Record):
    relativeZxid: Long
    dataWatches: list[str] | None
    existWatches: list[str] | None
    childWatches: list[str] | None
    persistentWatches: list[str] | None
    persistentRecursiveWatches: list[str] | None


@record
class AddWatchRequest(Record):
    path: str | None
    mode: Int


@record
class WatchTypeRequest(Record):
    """CheckWatchesRequest and RemoveWatchesRequest: one layout."""

    path: str | None
    type: Int


@record
class SaslToken(Record):
    """GetSASLRequest and SetSASLResponse: one layout."""

    token: bytes | None


@record
class ReconfigRequest(Record):
    joiningServers: str | None
    leavingServers: str | None
    newMembers: str | None
    curConfigId: Long


@record
class ClientInfo(Record):
    authScheme: str | None
    user: str | None


@record
class WhoAmIResponse(Record):
    clientInfo: list[ClientInfo] | None


# -- transactions -----------------------------------------------------------------------------


@record
class TxnHeader(Record):
    clientId: Long
    cxid: Int
    zxid: Long
    time: Long
    type: Int


@record
class TxnDigest(Record):
    version: Int
    treeDigest: Long


@record
class CreateTxn(Record):
    path: str | None
    data: bytes | None
    acl: AclList
    ephemeral: bool
    parentCVersion: Int


@record
class CreateContainerTxn(Record):
    path: str | None
    data: bytes | None
    acl: AclList
    parentCVersion: Int


@record
class CreateTTLTxn(Record):
    path: str | None
    data: bytes | None
    acl: AclList
    parentCVersion: Int
    ttl: Long


@record
class DeleteTxn(Record):
    path: str | None


@record
class SetDataTxn(Record):
    path: str | None
    data: bytes | None
    version: Int


@record
class SetACLTxn(Record):
    path: str | None
    acl: AclList
    version: Int


@record
class CheckVersionTxn(Record):
    path: str | None
    version: Int


@record
class CreateSessionTxn(Record):
    timeOut: Int


@record
class CloseSessionTxn(Record):
    paths2Delete: list[str] | None


@record
class ErrorTxn(Record):
    err: Int


@record
class SubTxn(Record):
    """One entry of a MultiTxn: the sub-txn's type and its serialized body. (jute: Txn)"""

    type: Int
    data: bytes | None


@record
class MultiTxn(Record):
    txns: list[SubTxn] | None
