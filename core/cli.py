"""The ``zkserver`` tool: inspect, dump and migrate a server's store, list the plugins.

``import --from-zookeeper`` and ``export --to-zookeeper`` are ``migrate`` with the ``zkfiles``
store (Apache ZooKeeper's own data directory) on one side; an export ends with a snapshot.

Every command works on a zoo.cfg (``-c``, default ``zoo.cfg``): its ``storage`` and ``dataDir``
select the store, built through the plugin manager and the backend's factory, as the server
does. Output is plain text on stdout, in the formats of ZooKeeper's own tools where there is
one (TxnLogToolkit for ``log``, SnapshotFormatter for ``snapshot``); notes and the progress bar
go to stderr. An operator error (a missing directory, the wrong store, a bad zoo.cfg) is one
line on stderr and exit status 1 (2 for a configuration or usage error), never a traceback.

The commands that only read (``info``, ``log``, ``snapshot``) refuse a dataDir that does not
exist or holds no directory of the configured store, so that a mistyped zoo.cfg never leaves
an empty store behind for the server to trip over.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import pluggy

from core import pluginmanager
from core.config import Config, ConfigError, load, parse
from core.interfaces import Store, StoreError
from core.jute import JuteError
from core.opcodes import OpCode
from core.records import ACL
from core.snapshot import deserialize, serialize
from core.tree import DataTree
from core.txn import Txn, decode_txn

#: Metadata a store keeps beside its log (ZAB's epochs); `migrate` copies these.
META_KEYS = ("acceptedEpoch", "currentEpoch")
#: Snapshot bytes per chunk handed to the target's save_snapshot by `migrate`.
SNAPSHOT_CHUNK = 1 << 20
#: Txns per append (one sync each) when `migrate` writes the target's log.
APPEND_BATCH = 1000

#: A store's directory under dataDir when it is not the backend's name: the ZooKeeper-files
#: store keeps ZooKeeper's own (ARCHITECTURE.md, "Hook families").
STORE_DIRS = {"zkfiles": "version-2"}
#: The backend `import --from-zookeeper` and `export --to-zookeeper` read and write.
ZOOKEEPER_STORE = "zkfiles"

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An operator error, said in one line."""


# -- the progress bar ---------------------------------------------------------------------


class Progress:
    """A one-line text bar, ``label [#####.....] 45% 450/1000``, redrawn in place on `stream`.

    Drawn only when `stream` is a terminal (a log file gets no bar), at most every
    `interval` seconds; `close` draws the final state and ends the line.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 30,
                 interval: float = 0.1) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interval = interval
        self.shown = self.stream.isatty()
        self._drawn_at = 0.0

    def advance(self, count: int = 1) -> None:
        """Count `count` more units done; redraw when the interval has passed."""
        self.done += count
        now = time.monotonic()
        if self.shown and now - self._drawn_at >= self.interval:
            self._draw()
            self._drawn_at = now

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.shown:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {self.done}/{self.total}")
        self.stream.flush()


# -- opening a store ----------------------------------------------------------------------


def open_store(config: Config, pm: pluggy.PluginManager, existing: bool) -> Store:
    """The store zoo.cfg selects, built by its backend's factory and opened.

    With `existing`, refuse (CliError) a dataDir that is missing or has no directory of the
    configured store (``dataDir/<storage>/``), unless the backend has options of its own in
    zoo.cfg (e.g. ``sqlite.url``), which may place its data elsewhere.
    """
    spec = pluginmanager.pick(pluginmanager.storage_backends(pm), config.storage, "storage",
                              config)
    if existing and config.data_dir is not None:
        data_dir = config.data_dir
        if not data_dir.is_dir():
            raise CliError(f"dataDir {data_dir} (from {config.source}) does not exist")
        store_dir = STORE_DIRS.get(config.storage, config.storage)
        if not config.plugin_options(config.storage) and not (data_dir / store_dir).is_dir():
            held = sorted(e.name for e in data_dir.iterdir() if e.is_dir())
            holds = f"it holds {', '.join(held)}" if held else "it is empty"
            raise CliError(f"no {config.storage} store in dataDir {data_dir} ({holds}); "
                           f"is storage= in {config.source} right?")
    store: Store = spec.factory(config)
    store.open()
    return store


# -- txns as text (ZooKeeper's TxnLogToolkit) ---------------------------------------------


def format_txn(txn: Txn) -> str:
    """One line as TxnLogToolkit prints a log entry:
    ``<time> session 0x.. cxid 0x.. zxid 0x.. <type> <fields>``.

    Fields as TxnLogToolkit writes them (create: ``path,data,[acl],ephemeral,parentCVersion``;
    setData: ``path,data,version``; others jute's CSV form), except that everything stays on
    one line (ACLs without Java's line break, control characters escaped) and a multi's
    sub-txns are decoded (``create:...;setData:...``) where Java prints their raw bytes.
    """
    return (f"{_java_time(txn.time)} session {_hex(txn.clientId)} cxid {_hex(txn.cxid)} "
            f"zxid {_hex(txn.zxid)} {_op_name(txn.type)} {_fields(txn.type, txn.body)}").rstrip()


def _java_time(ms: int) -> str:
    """Java's SHORT date, LONG time format in en_US, UTC: ``11/26/26, 10:57:44 AM UTC``."""
    t = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return (f"{t.month}/{t.day}/{t.year % 100:02d}, {(t.hour - 1) % 12 + 1}:{t.minute:02d}:"
            f"{t.second:02d} {'AM' if t.hour < 12 else 'PM'} UTC")


def _hex(value: int) -> str:
    """Java's Long.toHexString: two's complement for negative values."""
    return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def _op_name(op: int) -> str:
    """The op code's name as ZooKeeper spells it (Request.op2String, mostly)."""
    try:
        return OpCode(op).name
    except ValueError:
        return f"unknown({op})"


def _fields(op: int, body: Any) -> str:
    """A txn body (or a multi's sub-txn) as TxnLogToolkit's field text."""
    if body is None:
        return ""
    if op == OpCode.multi:
        return ";".join(f"{_op_name(t)}:{_fields(t, sub)}" for t, sub in body)
    if op in (OpCode.create, OpCode.create2):
        return (f"{body.path},{_text(body.data)},{_acl(body.acl)},{str(body.ephemeral).lower()},"
                f"{body.parentCVersion}")
    if op == OpCode.createContainer:
        return f"{body.path},{_text(body.data)},{_acl(body.acl)},{body.parentCVersion}"
    if op == OpCode.createTTL:
        return (f"{body.path},{_text(body.data)},{_acl(body.acl)},{body.parentCVersion},"
                f"{body.ttl}")
    if op in (OpCode.setData, OpCode.reconfig):
        return f"{body.path},{_text(body.data)},{body.version}"
    return _csv(body, nested=False)


def _text(data: bytes | None) -> str:
    """Data as Java's new String(data, UTF-8), with control characters escaped."""
    if not data:
        return ""
    text = data.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in text)


def _acl(acl: Sequence[ACL] | None) -> str:
    """A CreateTxn's ACL list as Java's List.toString of ACL records, on one line."""
    return "[" + ", ".join(_csv(a, nested=False) for a in acl or ()) + "]"


_CSV_ESCAPES = str.maketrans({",": "%2C", "}": "%7D", "\n": "%0A", "\r": "%0D", "\0": "%00",
                              "%": "%25"})


def _csv(value: Any, nested: bool = True) -> str:
    """jute's CsvOutputArchive form of a record or field (a Record's toString)."""
    if hasattr(value, "_jute_fields"):
        inner = ",".join(_csv(getattr(value, name)) for name, _ in value._jute_fields)
        return f"s{{{inner}}}" if nested else inner
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.translate(_CSV_ESCAPES)
    if isinstance(value, bytes):
        return "#" + value.hex()
    if isinstance(value, (list, tuple)):
        return "v{" + ",".join(_csv(v) for v in value) + "}"
    return ""  # a null string, buffer or vector


# -- trees as text (ZooKeeper's SnapshotFormatter) ----------------------------------------


def format_tree(tree: DataTree, sessions: dict[int, int], zxid: int) -> Iterator[str]:
    """SnapshotFormatter's lines: every znode (pre-order, children sorted) with its persisted
    stat and data length, then the sessions with their ephemeral counts, then the zxid."""
    yield f"ZNode Details (count={len(tree.nodes)}):"
    stack = ["/"]
    while stack:
        path = stack.pop()
        node = tree.nodes[path]
        yield "----"
        yield path
        yield f"  cZxid = 0x{node.czxid:014x}"
        yield f"  ctime = {_java_date(node.ctime)}"
        yield f"  mZxid = 0x{node.mzxid:014x}"
        yield f"  mtime = {_java_date(node.mtime)}"
        yield f"  pZxid = 0x{node.pzxid:014x}"
        yield f"  cversion = {node.cversion}"
        yield f"  dataVersion = {node.version}"
        yield f"  aclVersion = {node.aversion}"
        yield f"  ephemeralOwner = 0x{node.ephemeral_owner & 0xFFFFFFFFFFFFFFFF:014x}"
        yield f"  dataLength = {len(node.data)}"
        prefix = "" if path == "/" else path
        stack.extend(f"{prefix}/{child}" for child in sorted(node.children, reverse=True))
    yield "----"
    yield "Session Details (sid, timeout, ephemeralCount):"
    for sid, timeout in sorted(sessions.items()):
        yield f"{_hex(sid)}, {timeout}, {len(tree.ephemerals.get(sid, ()))}"
    yield "----"
    yield f"Last zxid: {_hex(zxid)}"


def _java_date(ms: int) -> str:
    """Java's Date.toString in UTC: ``Thu Jan 01 00:00:00 UTC 1970``."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")


def rebuild(store: Store, zxid: int) -> tuple[DataTree, dict[int, int]]:
    """The tree and sessions as they were at `zxid`: the newest snapshot, then the log
    replayed up to `zxid`, as the server recovers (an empty tree when there is no snapshot)."""
    snapshot = store.load_snapshot()
    sessions: dict[int, int] = {}
    if snapshot is None:
        start, tree = 0, DataTree()
    else:
        start = snapshot[0]
        tree, sessions, _ = deserialize(snapshot[1])
    if zxid < start:
        raise CliError(f"zxid {_hex(zxid)} is before the newest snapshot, {_hex(start)}: the "
                       f"store loads only its newest snapshot")
    last = start
    for txn_zxid, payload in store.read_from(start):
        if txn_zxid > zxid:
            break
        txn = decode_txn(payload)
        tree.apply(txn)
        if txn.type == OpCode.createSession:
            sessions[txn.clientId] = txn.body.timeOut
        elif txn.type == OpCode.closeSession:
            sessions.pop(txn.clientId, None)
        last = txn_zxid
    if last != zxid:
        raise CliError(f"the store has no txn with zxid {_hex(zxid)} (the log goes up to "
                       f"{_hex(store.last_zxid())})")
    tree.last_zxid = zxid
    return tree, sessions


# -- the commands -------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    """Print the store's describe()."""
    store = open_store(load(args.config), pm, existing=True)
    try:
        info = store.describe()
    finally:
        store.close()
    snaps = " ".join(_hex(z) for z in info.snapshot_zxids) or "none"
    rows = [
        ("backend", info.backend),
        ("location", info.location),
        ("first zxid", _zxid_text(info.first_zxid)),
        ("last zxid", _zxid_text(info.last_zxid)),
        ("snapshots", f"{len(info.snapshot_zxids)}: {snaps}" if info.snapshot_zxids else "none"),
        ("log size", _size(info.log_bytes)),
        ("snapshot size", _size(info.snapshot_bytes)),
        *((str(k), str(v)) for k, v in sorted(info.extra.items())),
    ]
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        print(f"{key + ':':<{width}} {value}")
    return 0


def _zxid_text(zxid: int | None) -> str:
    """A zxid with its epoch and counter, or "none"."""
    if not zxid:
        return "none"
    return f"{_hex(zxid)} (epoch {zxid >> 32}, counter {zxid & 0xFFFFFFFF})"


def _size(n: int) -> str:
    """A byte count, led by a binary unit when it is 1 KiB or more: ``3.5 MiB (3649398 bytes)``."""
    units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    value = float(n)
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{n} bytes" if units[0] == "bytes" else f"{value:.1f} {units[0]} ({n} bytes)"


def cmd_log(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    """Print every logged txn from zxid `--from` on (inclusive), one per line."""
    store = open_store(load(args.config), pm, existing=True)
    count = bad = 0
    try:
        for zxid, payload in store.read_from(max(args.start - 1, 0)):
            try:
                line = format_txn(decode_txn(payload))
            except (JuteError, ValueError) as e:
                line = f"zxid {_hex(zxid)} undecodable txn of {len(payload)} bytes: {e}"
                bad += 1
            print(line)
            count += 1
    finally:
        store.close()
    print(f"{count} txns" + (f", {bad} undecodable" if bad else ""), file=sys.stderr)
    return EXIT_ERROR if bad else 0


def cmd_snapshot(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    """Print the newest snapshot, or the state at `--zxid`, as SnapshotFormatter does."""
    store = open_store(load(args.config), pm, existing=True)
    try:
        if args.zxid is not None:
            tree, sessions = rebuild(store, args.zxid)
            zxid = args.zxid
        else:
            snapshot = store.load_snapshot()
            if snapshot is None:
                raise CliError(f"no snapshot in {store.describe().location}; --zxid rebuilds "
                               f"the tree at a zxid from the log")
            zxid = snapshot[0]
            tree, sessions, _ = deserialize(snapshot[1])
    finally:
        store.close()
    for line in format_tree(tree, sessions, zxid):
        print(line)
    return 0


def cmd_migrate(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    """Copy the newest snapshot, every txn after it and the epochs into an empty store."""
    return migrate(load(args.config), load(args.to), pm, args.to)


def cmd_import(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    """`migrate` from an Apache ZooKeeper data directory (the zkfiles store) into zoo.cfg's."""
    source = zookeeper_config(args.from_zookeeper, args.log_dir, "--from-zookeeper")
    return migrate(source, load(args.config), pm, args.config)


def cmd_export(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    """`migrate` from zoo.cfg's store into an Apache ZooKeeper data directory (the zkfiles
    store), ending with a snapshot of the last state: ZooKeeper 3.8 will not start on a log
    without one (quorum.md 4.4)."""
    target = zookeeper_config(args.to_zookeeper, args.log_dir, "--to-zookeeper")
    return migrate(load(args.config), target, pm, args.to_zookeeper, final_snapshot=True)


def zookeeper_config(data_dir: str, log_dir: str | None, source: str) -> Config:
    """The configuration of the zkfiles store on a ZooKeeper dataDir (and dataLogDir)."""
    lines = [f"storage={ZOOKEEPER_STORE}", f"dataDir={os.path.abspath(data_dir)}", "clientPort=0"]
    if log_dir is not None:
        lines.append(f"dataLogDir={os.path.abspath(log_dir)}")
    return parse("".join(line + "\n" for line in lines), source)


def migrate(source_config: Config, target_config: Config, pm: pluggy.PluginManager,
            target_name: str, final_snapshot: bool = False) -> int:
    """Copy `source_config`'s store into `target_config`'s, which must be empty (see `_copy`)."""
    if _same_store(source_config, target_config):
        raise CliError(f"{source_config.source} and {target_name} select the same store")
    source = open_store(source_config, pm, existing=True)
    try:
        target = open_store(target_config, pm, existing=False)
        try:
            _refuse_non_empty(target, target_name)
            _copy(source, target, final_snapshot)
        finally:
            target.close()
    finally:
        source.close()
    return 0


def _same_store(a: Config, b: Config) -> bool:
    """Whether two configurations select the same store (same backend, dataDir, options)."""
    def where(c: Config) -> tuple[Any, ...]:
        data_dir = c.data_dir.resolve() if c.data_dir is not None else None
        return c.storage, data_dir, sorted(c.plugin_options(c.storage).items())
    return a.storage != "memory" and where(a) == where(b)


def _refuse_non_empty(store: Store, source: str) -> None:
    """Raise CliError when `store` holds txns, snapshots or epochs."""
    info = store.describe()
    held = []
    if store.last_zxid():
        held.append(f"txns up to {_hex(store.last_zxid())}")
    if info.snapshot_zxids:
        held.append(f"{len(info.snapshot_zxids)} snapshot(s)")
    held.extend(key for key in META_KEYS if store.get_meta(key) is not None)
    if held:
        raise CliError(f"the target store {info.location} (from {source}) is not empty: it "
                       f"holds {', '.join(held)}; migrate writes only into an empty store")


def _copy(source: Store, target: Store, final_snapshot: bool = False) -> None:
    """Meta first, then the snapshot, then the log in batches: an interrupted copy leaves a
    consistent prefix of the source's history. With `final_snapshot`, end with a snapshot of
    the state at the last txn (rebuilt as `rebuild` does) unless the copied one is it."""
    for key in META_KEYS:
        value = source.get_meta(key)
        if value is not None:
            target.put_meta(key, value)
    snapshot = source.load_snapshot()
    start = 0
    if snapshot is not None:
        start, data = snapshot
        bar = Progress(f"snapshot {_hex(start)}", len(data))
        target.save_snapshot(start, _chunks(data, bar))
        bar.close()
    total = sum(1 for _ in source.read_from(start))
    bar = Progress("txns", total)
    first = last = 0
    for batch in _batches(source.read_from(start), APPEND_BATCH):
        target.append(batch)
        bar.advance(len(batch))
        first, last = first or batch[0][0], batch[-1][0]
    bar.close()
    if last and target.last_zxid() != last:
        raise CliError(f"the target's log ends at {_hex(target.last_zxid())} after the copy, "
                       f"not at {_hex(last)}")
    source_info, target_info = source.describe(), target.describe()
    what = f"snapshot {_hex(start)} of {_size(len(snapshot[1]))}" if snapshot else "no snapshot"
    txns = f"{bar.done} txns {_hex(first)}-{_hex(last)}" if last else "no txns"
    made = ""
    if final_snapshot and (snapshot is None or last):
        zxid = last or start
        tree, sessions = rebuild(source, zxid)
        data = b"".join(serialize(tree, sessions, zxid))
        bar = Progress(f"snapshot {_hex(zxid)}", len(data))
        target.save_snapshot(zxid, _chunks(data, bar))
        bar.close()
        made = f", then wrote snapshot {_hex(zxid)} of {_size(len(data))}"
    print(f"copied {what} and {txns} from {source_info.backend} {source_info.location} "
          f"to {target_info.backend} {target_info.location}{made}")


def _chunks(data: bytes, bar: Progress) -> Iterator[bytes]:
    """`data` in SNAPSHOT_CHUNK pieces, advancing `bar` as each is taken."""
    for offset in range(0, len(data), SNAPSHOT_CHUNK):
        chunk = data[offset:offset + SNAPSHOT_CHUNK]
        yield chunk
        bar.advance(len(chunk))


def _batches(txns: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    """`txns` in lists of `size` (the last one shorter)."""
    batch: list[tuple[int, bytes]] = []
    for txn in txns:
        batch.append(txn)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_plugins(args: argparse.Namespace, pm: pluggy.PluginManager) -> int:
    """List the installed plugins, what each offers, and what zoo.cfg selects."""
    config = load(args.config) if args.config else parse("storage=memory\nclientPort=0\n",
                                                          "<defaults>")
    selected = {("storage", config.storage), ("consensus", config.consensus)} \
        if args.config else set()
    rows = []
    eps = importlib.metadata.entry_points(group=pluginmanager.ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda ep: ep.name):
        plugin = pm.get_plugin(ep.name)
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "-"
        offers = []
        for family, hook in (("storage", "zk_storage_backends"),
                             ("consensus", "zk_consensus_backends")):
            for spec in _offered(pm, plugin, hook, {}):
                mark = " (selected)" if (family, spec.name) in selected else ""
                offers.append(f"{family} {spec.name}{mark}")
        offers.extend(f"auth {p.scheme}"
                      for p in _offered(pm, plugin, "zk_auth_providers", {"config": config}))
        rows.append((ep.name, dist, ep.value, ", ".join(offers) or "-"))
    header = ("plugin", "distribution", "module", "offers")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + "  " + row[3])
    if args.config:
        for key in ("storage", "consensus"):
            backends = (pluginmanager.storage_backends(pm) if key == "storage"
                        else pluginmanager.consensus_backends(pm))
            pluginmanager.pick(backends, getattr(config, key), key, config)
        print(f"{args.config} selects storage={config.storage}, consensus={config.consensus}")
    return 0


def _offered(pm: pluggy.PluginManager, plugin: object, hook: str,
             kwargs: dict[str, Any]) -> list[Any]:
    """What `plugin`'s own implementation of `hook` answers (empty when it has none)."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin is plugin:
            try:
                return list(impl.function(**kwargs) or ())
            except Exception as e:  # a plugin's bug, named rather than a traceback
                raise pluginmanager.PluginError(
                    f"plugin {impl.plugin_name}: {hook} failed: {e!r}") from e
    return []


# -- the command line ---------------------------------------------------------------------


def _zxid(text: str) -> int:
    """A zxid argument: hex with 0x, or decimal."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a zxid (0x1f or 31), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a zxid >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``zkserver`` argument parser, one subcommand per command."""
    parser = argparse.ArgumentParser(
        prog="zkserver", description="Inspect, dump and migrate a zkserver store; list plugins. "
        "The server itself runs as: twistd -n --pidfile= zkserver -c zoo.cfg")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[..., int], help: str,
                config: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if config:
            sub.add_argument("-c", "--config", default="zoo.cfg", metavar="ZOO_CFG",
                             help="the server's zoo.cfg: storage= and dataDir= select the store "
                             "(default: zoo.cfg)")
        sub.set_defaults(run=run)
        return sub

    command("info", cmd_info, "what the store holds: backend, location, zxids, snapshots, sizes")
    log = command("log", cmd_log, "the logged txns, one per line, as ZooKeeper's TxnLogToolkit")
    log.add_argument("--from", dest="start", type=_zxid, default=0, metavar="ZXID",
                     help="start at this zxid (inclusive)")
    snap = command("snapshot", cmd_snapshot,
                   "the newest snapshot's tree and sessions, as ZooKeeper's SnapshotFormatter")
    snap.add_argument("--zxid", type=_zxid, metavar="ZXID",
                      help="the tree at this zxid instead: the newest snapshot with the log "
                      "replayed up to ZXID")
    migrate = command("migrate", cmd_migrate,
                      "copy the newest snapshot, every txn after it and the epochs into the "
                      "empty store of another zoo.cfg")
    migrate.add_argument("--to", required=True, metavar="ZOO_CFG",
                         help="the zoo.cfg of the target store, which must be empty")
    imp = command("import", cmd_import,
                  "migrate an Apache ZooKeeper data directory into the empty store of zoo.cfg")
    imp.add_argument("--from-zookeeper", required=True, metavar="DATADIR",
                     help="ZooKeeper's dataDir (holding version-2/)")
    imp.add_argument("--log-dir", metavar="DATALOGDIR",
                     help="ZooKeeper's dataLogDir, when it is not the dataDir")
    exp = command("export", cmd_export,
                  "migrate zoo.cfg's store into an empty Apache ZooKeeper data directory, "
                  "ending with a snapshot")
    exp.add_argument("--to-zookeeper", required=True, metavar="DATADIR",
                     help="the dataDir for ZooKeeper (version-2/ is written there)")
    exp.add_argument("--log-dir", metavar="DATALOGDIR",
                     help="a dataLogDir for ZooKeeper's logs, when it is not the dataDir")
    plugins = command("plugins", cmd_plugins,
                      "the installed plugins, what each offers, and what zoo.cfg selects",
                      config=False)
    plugins.add_argument("-c", "--config", metavar="ZOO_CFG",
                         help="mark the backends this zoo.cfg selects")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0, 1 for an error, 2 for a usage or
    configuration error)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args, pluginmanager.build_plugin_manager()))
    except ConfigError as e:
        return _fail(str(e), EXIT_USAGE)
    except (CliError, StoreError, pluginmanager.PluginError) as e:
        return _fail(str(e), EXIT_ERROR)
    except ValueError as e:  # a corrupt snapshot or txn
        return _fail(f"unreadable store contents: {e}", EXIT_ERROR)
    except BrokenPipeError:  # `zkserver log | head`: the reader has gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as e:
        return _fail(str(e), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_ERROR)


def _fail(message: str, status: int) -> int:
    """Say `message` on stderr, one line; return `status`."""
    print(f"zkserver: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
