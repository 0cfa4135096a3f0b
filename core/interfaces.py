"""The interfaces plugins implement, and the plain data they exchange with the core.

A backend plugin offers `BackendSpec`s through a collecting hook (see core.hookspecs); zoo.cfg
picks one by name and the core calls its factory. What the factory returns must satisfy the
matching Protocol below. Every method's threading rule is part of its contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.records import Id

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from core.txn import Txn


@dataclass(frozen=True)
class BackendSpec:
    """A named backend a plugin offers: `factory` builds it (its arguments depend on the family)."""

    name: str
    description: str
    factory: Callable[..., Any]


# -- persistence ------------------------------------------------------------------------------


class StoreError(Exception):
    """A store cannot do what was asked (unreadable, owned by another store, disk full...).
    The message is one line for the operator and names the file or directory."""


@dataclass(frozen=True)
class StoreInfo:
    """What a store holds, for the `zkserver` tool and the operations endpoints."""

    backend: str
    location: str
    first_zxid: int | None
    last_zxid: int | None
    snapshot_zxids: tuple[int, ...]
    log_bytes: int
    snapshot_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """Durable transaction log + snapshots + small metadata.

    Plain blocking calls. The core calls them from a single storage thread (or, for a lone
    append, the reactor), one at a time, so an implementation needs no locking of its own;
    except that a store with a true class attribute ``snapshots_aside`` gets its
    `save_snapshot` calls on a second thread, beside the others (it locks what it must: the
    sqlite store lets appends go on and makes truncate_after, purge and close wait). Txns pass as
    `(zxid, payload)` where the payload is ZooKeeper's log-entry bytes (TxnHeader + body
    [+ TxnDigest]); a store never decodes them. zxids given to `append` strictly increase.
    """

    def open(self) -> None:
        """Create or open the store's files under dataDir/<backend>/. Raise StoreError when the
        directory belongs to another store, is unreadable, or is not ours; overwrite nothing."""

    def append(self, txns: Sequence[tuple[int, bytes]]) -> None:
        """Make the batch durable (one sync for the whole batch, unless forceSync=no) before
        returning. On failure raise StoreError; nothing of the batch may be reported as stored."""

    def read_from(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Every logged txn with a zxid greater than `zxid`, in zxid order. A torn or corrupt
        tail record (crash mid-write) ends the iteration; it is never returned."""

    def last_zxid(self) -> int:
        """The highest zxid logged (0 when empty)."""

    def truncate_after(self, zxid: int) -> None:
        """Remove every logged txn whose zxid is greater than `zxid` (ZAB's TRUNC), durably."""

    def save_snapshot(self, zxid: int, chunks: Iterable[bytes]) -> None:
        """Store a (fuzzy) snapshot taken when the last applied txn was `zxid`; the chunks
        concatenate to ZooKeeper's snapshot serialization. Durable on return."""

    def load_snapshot(self) -> tuple[int, bytes] | None:
        """The newest complete snapshot as (zxid, bytes), or None. An incomplete or corrupt one
        is skipped in favour of the one before it (logged)."""

    def purge(self, retain_count: int) -> None:
        """Keep the newest `retain_count` snapshots and the log needed to replay after them."""

    def get_meta(self, key: str) -> bytes | None:
        """Small named values (acceptedEpoch, currentEpoch, ...)."""

    def put_meta(self, key: str, value: bytes) -> None:
        """Durably set a small named value."""

    def describe(self) -> StoreInfo:
        """What is stored."""

    def close(self) -> None:
        """Release files; after close the store is not used again."""


# -- consensus --------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """A write (or sync) on its way to being ordered: what ZooKeeper's Request carries.

    `record` is the decoded request record (None for closeSession); `raw` the request body as
    received, so a follower can forward it unchanged; `auth` the connection's authenticated ids
    at the time of the request (for ACL checks where the txn is made)."""

    session_id: int
    cxid: int
    type: int
    record: Any
    raw: bytes
    auth: Sequence[Id]


class CommitSink(Protocol):
    """What a consensus backend delivers committed txns to (the server)."""

    def commit(self, txn: Txn) -> None:
        """Apply a committed txn: called on the reactor, exactly once per txn, in zxid order."""

    def synced(self, request: Request) -> None:
        """A sync request is complete: every write ordered before it is committed here."""


@runtime_checkable
class Consensus(Protocol):
    """Orders writes. Called on the reactor thread; must not block it.

    The backend turns each submitted Request into a Txn (with core.prep where txns are made:
    the standalone server or the leader), makes it durable through the Store, and hands every
    committed txn, in zxid order, to the server's `commit`. The server matches a committed txn
    to the waiting client by (clientId, cxid) and replies then."""

    role: str  # "standalone", "leader", "follower", "observer" or "looking"

    def start(self) -> Deferred[None] | None:
        """Recover and begin serving (the store is open, the tree restored)."""

    def stop(self) -> Deferred[None] | None:
        """Stop; writes already made durable stay durable."""

    def submit(self, request: Request) -> None:
        """Order a write or a createSession/closeSession (its txn comes back through `commit`),
        or a sync (type 9: no txn; `synced` is called once every write ordered before it is
        committed on this member)."""

    def is_serving(self) -> bool:
        """Whether clients may be served (a quorum is visible, or standalone)."""


# -- auth -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerInfo:
    """What an auth provider may know of the connection it authenticates."""

    host: str
    port: int
    secure: bool = False


@runtime_checkable
class AuthProvider(Protocol):
    """An ACL scheme (ZooKeeper's AuthenticationProvider). Called on the reactor; cheap calls."""

    scheme: str
    # ids of this scheme count for the `auth` ACL scheme (digest, sasl: yes; ip, world: no)
    is_authenticated: bool

    def authenticate(self, peer: PeerInfo, auth: bytes) -> list[Id] | None:
        """Handle an AuthPacket for this scheme: the ids it grants, or None for AUTHFAILED."""

    def matches(self, id: str, acl_id: str) -> bool:
        """Whether an authenticated id of this scheme satisfies an ACL entry's id."""

    def is_valid(self, acl_id: str) -> bool:
        """Whether `acl_id` is a well-formed id of this scheme, for setACL/create."""


class SaslServer(Protocol):
    """One connection's SASL exchange (javax.security.sasl.SaslServer as ZooKeeper's
    processSasl drives it), fed the token of each GetSASLRequest (op 102) in turn."""

    def step(self, token: bytes) -> tuple[bytes | None, list[Id] | None]:
        """Evaluate the client's token: the token for the SetSASLResponse (None: a null buffer)
        and, once the exchange completes with this step, the ids granted (else None). Raise
        ValueError when authentication fails (the server answers AUTHFAILED and closes)."""


@runtime_checkable
class SaslAuthProvider(AuthProvider, Protocol):
    """An AuthProvider that also authenticates with SASL (op 102). The core uses the provider
    of the ``sasl`` scheme, as ZooKeeper does; its ids are added to the connection's."""

    def sasl_server(self, peer: PeerInfo) -> SaslServer:
        """A fresh SaslServer for one connection (called at its first SASL packet)."""


# -- watch delivery ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A triggered watch: ZooKeeper's WatchedEvent plus the zxid of the txn that raised it
    (-1 for events raised by setWatches)."""

    type: int
    state: int
    path: str
    zxid: int


class Watcher(Protocol):
    """A watch holder: a client connection (or a plugin's stand-in for one)."""

    session_id: int

    def send_event(self, event: WatchEvent) -> None:
        """Write the notification to the client."""


class WatchDelivery(Protocol):
    """Receives each triggered event with its watchers, after READ-ACL filtering, on the
    reactor. Returns the watchers that remain to be delivered by the next one in the chain
    (return the list unchanged to observe only, [] to take over delivery)."""

    def deliver(self, event: WatchEvent, watchers: list[Watcher]) -> list[Watcher]:
        ...
