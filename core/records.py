"""Every jute record the server speaks, in zookeeper.jute's names and field order.

The client protocol (``org.apache.zookeeper.proto``), the data records (``data``) and the
transaction records (``txn``) that go to the store and, later, between ensemble members.
"""

from __future__ import annotations

from core.jute import Int, Long, record

# -- data -----------------------------------------------------------------------------------


@record
class Id:
    scheme: str
    id: str


@record
class ACL:
    perms: Int
    id: Id


@record
class Stat:
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
class StatPersisted:
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
class ConnectRequest:
    protocolVersion: Int
    lastZxidSeen: Long
    timeOut: Int
    sessionId: Long
    passwd: bytes | None


@record
class ConnectResponse:
    protocolVersion: Int
    timeOut: Int
    sessionId: Long
    passwd: bytes | None


@record
class RequestHeader:
    xid: Int
    type: Int


@record
class ReplyHeader:
    xid: Int
    zxid: Long
    err: Int


@record
class WatcherEvent:
    type: Int
    state: Int
    path: str | None


@record
class AuthPacket:
    type: Int
    scheme: str | None
    auth: bytes | None


@record
class MultiHeader:
    type: Int
    done: bool
    err: Int


@record
class ErrorResponse:
    err: Int


# -- requests and responses -------------------------------------------------------------------


@record
class CreateRequest:
    path: str | None
    data: bytes | None
    acl: list[ACL] | None
    flags: Int


@record
class CreateTTLRequest:
    path: str | None
    data: bytes | None
    acl: list[ACL] | None
    flags: Int
    ttl: Long


@record
class CreateResponse:
    path: str | None


@record
class Create2Response:
    path: str | None
    stat: Stat


@record
class DeleteRequest:
    path: str | None
    version: Int


@record
class PathWatchRequest:
    """ExistsRequest, GetDataRequest, GetChildrenRequest and GetChildren2Request: one layout."""

    path: str | None
    watch: bool


@record
class StatResponse:
    """ExistsResponse, SetDataResponse and SetACLResponse: one layout."""

    stat: Stat


@record
class GetDataResponse:
    data: bytes | None
    stat: Stat


@record
class SetDataRequest:
    path: str | None
    data: bytes | None
    version: Int


@record
class PathRequest:
    """GetACLRequest, SyncRequest, SyncResponse, GetAllChildrenNumberRequest,
    GetEphemeralsRequest (prefixPath) and deleteContainer's body (3.9): one layout."""

    path: str | None


@record
class GetACLResponse:
    acl: list[ACL] | None
    stat: Stat


@record
class SetACLRequest:
    path: str | None
    acl: list[ACL] | None
    version: Int


@record
class GetChildrenResponse:
    children: list[str] | None


@record
class GetChildren2Response:
    children: list[str] | None
    stat: Stat


@record
class CheckVersionRequest:
    path: str | None
    version: Int


@record
class GetAllChildrenNumberResponse:
    totalNumber: Int


@record
class GetEphemeralsResponse:
    ephemerals: list[str] | None


@record
class SetWatches:
    relativeZxid: Long
    dataWatches: list[str] | None
    existWatches: list[str] | None
    childWatches: list[str] | None


@record
class SetWatches2:
    relativeZxid: Long
    dataWatches: list[str] | None
    existWatches: list[str] | None
    childWatches: list[str] | None
    persistentWatches: list[str] | None
    persistentRecursiveWatches: list[str] | None


@record
class AddWatchRequest:
    path: str | None
    mode: Int


@record
class WatchTypeRequest:
    """CheckWatchesRequest and RemoveWatchesRequest: one layout."""

    path: str | None
    type: Int


@record
class SaslToken:
    """GetSASLRequest and SetSASLResponse: one layout."""

    token: bytes | None


@record
class ReconfigRequest:
    joiningServers: str | None
    leavingServers: str | None
    newMembers: str | None
    curConfigId: Long


@record
class ClientInfo:
    authScheme: str | None
    user: str | None


@record
class WhoAmIResponse:
    clientInfo: list[ClientInfo] | None


# -- transactions -----------------------------------------------------------------------------


@record
class TxnHeader:
    clientId: Long
    cxid: Int
    zxid: Long
    time: Long
    type: Int


@record
class TxnDigest:
    version: Int
    treeDigest: Long


@record
class CreateTxn:
    path: str | None
    data: bytes | None
    acl: list[ACL] | None
    ephemeral: bool
    parentCVersion: Int


@record
class CreateContainerTxn:
    path: str | None
    data: bytes | None
    acl: list[ACL] | None
    parentCVersion: Int


@record
class CreateTTLTxn:
    path: str | None
    data: bytes | None
    acl: list[ACL] | None
    parentCVersion: Int
    ttl: Long


@record
class DeleteTxn:
    path: str | None


@record
class SetDataTxn:
    path: str | None
    data: bytes | None
    version: Int


@record
class SetACLTxn:
    path: str | None
    acl: list[ACL] | None
    version: Int


@record
class CheckVersionTxn:
    path: str | None
    version: Int


@record
class CreateSessionTxn:
    timeOut: Int


@record
class CloseSessionTxn:
    paths2Delete: list[str] | None


@record
class ErrorTxn:
    err: Int


@record
class SubTxn:
    """One entry of a MultiTxn: the sub-txn's type and its serialized body. (jute: Txn)"""

    type: Int
    data: bytes | None


@record
class MultiTxn:
    txns: list[SubTxn] | None
