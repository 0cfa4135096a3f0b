"""The Store conformance suite: what every ``core.interfaces.Store`` must do, as pytest tests.

A backend runs it by subclassing ``StoreSuite`` in one of its test modules, under a name pytest
collects (``Test...``), and providing one fixture, ``make_store``: a callable that builds the
store for a dataDir (an existing directory), opens it and returns it. The suite derives the rest
from it; a restart is ``close()`` followed by ``make_store`` on the same dataDir::

    import pytest
    from core.testing.store_suite import StoreSuite, StubConfig
    from mystore import create_store            # the factory of your BackendSpec

    class TestMyStore(StoreSuite):
        @pytest.fixture
        def make_store(self):
            def make(data_dir):
                store = create_store(StubConfig(data_dir=str(data_dir)))
                store.open()
                return store
            return make

Requirements, class attributes read by the tests (as in SQLAlchemy's suite), switch off what a
backend does not claim: ``durable = False`` (nothing survives close + reopen) skips the restart
tests; ``owns_data_dir = False`` (keeps no files under dataDir) skips the dataDir-refusal tests;
``keeps_zookeeper_files = True`` (the store's files are ZooKeeper's own ``version-2/``) skips
the refusal of a ZooKeeper dataDir, which is then its own; ``purges_whole_log_files = True``
(purge deletes whole log files, as ZooKeeper's PurgeTxnLog) lets txns older than the oldest
kept snapshot remain after a purge, while still requiring every txn after it.

Two optional hooks let the suite damage a store's files while the store is closed; the tests
that use them are skipped unless the subclass overrides them:

- ``corrupt_last_txn(data_dir)``: damage the bytes of the newest log record (a torn write);
  the store must then never return it, and must continue the log from the last good txn.
- ``corrupt_newest_snapshot(data_dir)``: damage the newest snapshot's bytes; ``load_snapshot``
  must fall back to the one before it.

For a backend's own extra tests the suite's fixtures are there too: ``data_dir`` (a fresh empty
directory), ``stores`` (a ``Stores``: ``open(data_dir)``, ``reopen(store)``, ``close(store)``;
whatever is still open is closed at teardown) and ``store`` (a store opened on ``data_dir``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.interfaces import Store, StoreError, StoreInfo

#: What a subclass's ``make_store`` fixture returns: dataDir -> an opened store.
MakeStore = Callable[[Path], Store]


@dataclass
class StubConfig:
    """The part of ``core.config.Config`` a store factory reads, for building stores in tests.

    `options` holds zoo.cfg's plugin keys as written there (``{"sqlite.url": "..."}``).
    """

    data_dir: str | Path | None = None
    data_log_dir: str | Path | None = None
    force_sync: bool = True
    options: dict[str, str] = field(default_factory=dict)

    def plugin_options(self, name: str) -> dict[str, str]:
        """The ``<name>.<key>`` options, keyed by ``<key>``."""
        prefix = name + "."
        return {k[len(prefix):]: v for k, v in self.options.items() if k.startswith(prefix)}


class Stores:
    """Opens stores with a backend's ``make_store``, restarts them, and closes them at the end."""

    def __init__(self, make_store: MakeStore) -> None:
        self._make_store = make_store
        self._open: dict[int, tuple[Store, Path]] = {}

    def open(self, data_dir: Path) -> Store:
        """A store opened on `data_dir`."""
        store = self._make_store(data_dir)
        self._open[id(store)] = (store, data_dir)
        return store

    def close(self, store: Store) -> Path:
        """Close `store`; return its dataDir."""
        _, data_dir = self._open.pop(id(store))
        store.close()
        return data_dir

    def reopen(self, store: Store) -> Store:
        """Close `store` and open its dataDir again: a restart."""
        return self.open(self.close(store))

    def close_all(self) -> None:
        """Close every store still open."""
        for store, _ in self._open.values():
            store.close()
        self._open.clear()


def payload(zxid: int) -> bytes:
    """A txn's bytes for tests: varied lengths and byte values, determined by the zxid."""
    return bytes([zxid % 251]) * (zxid % 40) + zxid.to_bytes(8, "big")


def txns(*zxids: int) -> list[tuple[int, bytes]]:
    """A batch of txns with the given zxids."""
    return [(z, payload(z)) for z in zxids]


class StoreSuite:
    """The conformance tests; subclass it with a ``make_store`` fixture (see the module)."""

    durable: bool = True
    owns_data_dir: bool = True
    keeps_zookeeper_files: bool = False
    purges_whole_log_files: bool = False

    # -- what a subclass provides -------------------------------------------------------------

    @pytest.fixture
    def make_store(self) -> MakeStore:
        """dataDir -> a store opened there. A subclass must override this fixture."""
        pytest.fail(f"{type(self).__name__} must provide a make_store fixture")

    def corrupt_last_txn(self, data_dir: Path) -> None:
        """Damage the newest log record's bytes on disk (the store is closed)."""
        pytest.skip("the backend offers no way to corrupt its last txn")

    def corrupt_newest_snapshot(self, data_dir: Path) -> None:
        """Damage the newest snapshot's bytes on disk (the store is closed)."""
        pytest.skip("the backend offers no way to corrupt its newest snapshot")

    # -- the suite's fixtures -----------------------------------------------------------------

    @pytest.fixture
    def data_dir(self, tmp_path: Path) -> Path:
        """A fresh, empty dataDir."""
        path = tmp_path / "data"
        path.mkdir()
        return path

    @pytest.fixture
    def stores(self, make_store: MakeStore) -> Iterator[Stores]:
        """Opens, restarts and finally closes the test's stores."""
        stores = Stores(make_store)
        yield stores
        stores.close_all()

    @pytest.fixture
    def store(self, stores: Stores, data_dir: Path) -> Store:
        """A store opened on an empty dataDir."""
        return stores.open(data_dir)

    def _require_durable(self) -> None:
        if not self.durable:
            pytest.skip("the backend is not durable (durable = False)")

    # -- an empty store -----------------------------------------------------------------------

    def test_satisfies_the_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_empty_store(self, store: Store) -> None:
        assert store.last_zxid() == 0
        assert list(store.read_from(0)) == []
        assert store.load_snapshot() is None
        assert store.get_meta("currentEpoch") is None
        info = store.describe()
        assert (info.first_zxid, info.last_zxid, info.snapshot_zxids) == (None, None, ())

    def test_empty_store_tolerates_truncate_and_purge(self, store: Store) -> None:
        store.truncate_after(0)
        store.purge(3)
        assert store.last_zxid() == 0
        assert list(store.read_from(0)) == []

    # -- append and read_from -----------------------------------------------------------------

    def test_append_then_read_in_order(self, store: Store) -> None:
        for batch in (txns(1, 2, 3), txns(4), txns(5, 6, 7, 8, 9)):
            store.append(batch)
        assert list(store.read_from(0)) == txns(*range(1, 10))
        assert store.last_zxid() == 9

    def test_read_from_returns_an_iterator(self, store: Store) -> None:
        store.append(txns(1, 2))
        it = store.read_from(0)
        assert isinstance(it, Iterator)
        assert next(it) == txns(1)[0]

    def test_read_from_bounds(self, store: Store) -> None:
        store.append(txns(10, 20))
        store.append(txns(30))
        assert list(store.read_from(-1)) == txns(10, 20, 30)
        assert list(store.read_from(9)) == txns(10, 20, 30)
        assert list(store.read_from(10)) == txns(20, 30)
        assert list(store.read_from(15)) == txns(20, 30)
        assert list(store.read_from(20)) == txns(30)
        assert list(store.read_from(30)) == []
        assert list(store.read_from(99)) == []

    def test_zxids_order_as_numbers(self, store: Store) -> None:
        zxids = [255, 256, 65535, 65536, (1 << 32) | 1, (1 << 32) | 256, (7 << 32) | 1,
                 2**63 - 1]
        store.append(txns(*zxids[:3]))
        store.append(txns(*zxids[3:5]))
        store.append(txns(*zxids[5:]))
        assert list(store.read_from(0)) == txns(*zxids)
        assert list(store.read_from(1 << 32)) == txns(*zxids[4:])
        assert store.last_zxid() == 2**63 - 1

    def test_empty_batch_stores_nothing(self, store: Store) -> None:
        store.append([])
        assert store.last_zxid() == 0
        store.append(txns(1))
        store.append([])
        assert list(store.read_from(0)) == txns(1)

    def test_payloads_round_trip(self, store: Store) -> None:
        batch = [(1, b""), (2, bytes(range(256))), (3, b"\x00" * 10),
                 (4, random.Random(4).randbytes(1 << 20))]
        store.append(batch)
        assert list(store.read_from(0)) == batch

    def test_log_survives_reopen(self, store: Store, stores: Stores) -> None:
        self._require_durable()
        store.append(txns(1, 2, 3))
        store.append(txns(4))
        store = stores.reopen(store)
        assert list(store.read_from(0)) == txns(1, 2, 3, 4)
        assert store.last_zxid() == 4
        store.append(txns(5, 6))
        store = stores.reopen(store)
        assert list(store.read_from(0)) == txns(1, 2, 3, 4, 5, 6)
        assert store.last_zxid() == 6

    # -- truncate_after -----------------------------------------------------------------------

    def test_truncate_within_a_batch(self, store: Store) -> None:
        store.append(txns(1, 2, 3, 4, 5))
        store.append(txns(6, 7))
        store.truncate_after(3)
        assert list(store.read_from(0)) == txns(1, 2, 3)
        assert store.last_zxid() == 3
        again = [(4, b"four, again"), (5, b"five, again")]
        store.append(again)
        assert list(store.read_from(0)) == txns(1, 2, 3) + again

    def test_truncate_across_batches(self, store: Store) -> None:
        for batch in (txns(1, 2, 3), txns(4, 5, 6), txns(7, 8, 9)):
            store.append(batch)
        store.truncate_after(5)
        assert list(store.read_from(0)) == txns(1, 2, 3, 4, 5)
        store.truncate_after(9)
        assert list(store.read_from(0)) == txns(1, 2, 3, 4, 5)
        store.truncate_after(0)
        assert list(store.read_from(0)) == []
        assert store.last_zxid() == 0
        store.append(txns(1))
        assert list(store.read_from(0)) == txns(1)

    def test_truncate_removes_the_snapshots_above(self, store: Store) -> None:
        store.append(txns(*range(1, 21)))
        for zxid in (5, 10, 15):
            store.save_snapshot(zxid, [b"state at %d" % zxid])
        store.truncate_after(12)
        assert store.load_snapshot() == (10, b"state at 10")
        assert store.describe().snapshot_zxids == (5, 10)
        assert list(store.read_from(10)) == txns(11, 12)

    def test_truncate_survives_reopen(self, store: Store, stores: Stores) -> None:
        self._require_durable()
        store.append(txns(1, 2, 3))
        store.append(txns(4, 5))
        store.save_snapshot(4, [b"four"])
        store.truncate_after(2)
        store = stores.reopen(store)
        assert list(store.read_from(0)) == txns(1, 2)
        assert store.last_zxid() == 2
        assert store.load_snapshot() is None

    # -- snapshots ----------------------------------------------------------------------------

    def test_newest_snapshot_is_loaded(self, store: Store) -> None:
        store.save_snapshot(10, [b"ten"])
        store.save_snapshot(20, (chunk for chunk in [b"twe", b"", b"nty"]))
        store.save_snapshot(15, [b"fifteen"])
        assert store.load_snapshot() == (20, b"twenty")
        assert store.describe().snapshot_zxids == (10, 15, 20)

    def test_snapshot_at_the_same_zxid_is_replaced(self, store: Store) -> None:
        store.save_snapshot(10, [b"first"])
        store.save_snapshot(10, [b"sec", b"ond"])
        assert store.load_snapshot() == (10, b"second")
        assert store.describe().snapshot_zxids == (10,)

    def test_empty_snapshot(self, store: Store) -> None:
        store.save_snapshot(3, [])
        assert store.load_snapshot() == (3, b"")

    def test_large_snapshot(self, store: Store, stores: Stores) -> None:
        data = random.Random(5).randbytes(5 << 20)
        chunk = 64 << 10
        store.save_snapshot(7, (data[i:i + chunk] for i in range(0, len(data), chunk)))
        assert store.load_snapshot() == (7, data)
        assert store.describe().snapshot_bytes >= len(data)
        if self.durable:
            store = stores.reopen(store)
            assert store.load_snapshot() == (7, data)

    def test_snapshots_survive_reopen(self, store: Store, stores: Stores) -> None:
        self._require_durable()
        store.save_snapshot(10, [b"ten"])
        store.save_snapshot(20, [b"twenty"])
        store = stores.reopen(store)
        assert store.load_snapshot() == (20, b"twenty")
        assert store.describe().snapshot_zxids == (10, 20)

    def test_corrupt_newest_snapshot_falls_back(self, store: Store, stores: Stores) -> None:
        store.save_snapshot(10, [b"ten", b" and more"])
        store.save_snapshot(20, [b"twenty", b" and more"])
        data_dir = stores.close(store)
        self.corrupt_newest_snapshot(data_dir)
        store = stores.open(data_dir)
        assert store.load_snapshot() == (10, b"ten and more")

    def test_corrupt_only_snapshot_loads_none(self, store: Store, stores: Stores) -> None:
        store.save_snapshot(10, [b"ten"])
        data_dir = stores.close(store)
        self.corrupt_newest_snapshot(data_dir)
        store = stores.open(data_dir)
        assert store.load_snapshot() is None

    # -- purge --------------------------------------------------------------------------------

    def _log_and_snapshots(self, store: Store) -> None:
        """Txns 1..50 in batches of 7 (so cuts fall inside batches), snapshots at 10..40."""
        for first in range(1, 51, 7):
            store.append(txns(*range(first, min(first + 7, 51))))
        for zxid in (10, 20, 30, 40):
            store.save_snapshot(zxid, [b"state at %d" % zxid])

    def _assert_log_after(self, store: Store, zxid: int, last: int = 50) -> None:
        """The log holds every txn after `zxid` up to `last` (and, unless the store purges
        whole files, nothing before)."""
        logged = list(store.read_from(0))
        if self.purges_whole_log_files and logged and logged[0][0] <= zxid:
            assert logged == txns(*range(logged[0][0], last + 1))
        else:
            assert logged == txns(*range(zxid + 1, last + 1))

    def test_purge(self, store: Store) -> None:
        self._log_and_snapshots(store)
        store.purge(2)
        assert store.describe().snapshot_zxids == (30, 40)
        self._assert_log_after(store, 30)
        assert store.load_snapshot() == (40, b"state at 40")
        assert store.last_zxid() == 50
        store.purge(1)
        assert store.describe().snapshot_zxids == (40,)
        self._assert_log_after(store, 40)

    def test_purge_keeps_all_of_fewer_snapshots(self, store: Store) -> None:
        self._log_and_snapshots(store)
        store.purge(5)
        assert store.describe().snapshot_zxids == (10, 20, 30, 40)
        self._assert_log_after(store, 10)

    def test_purge_without_snapshots_keeps_the_log(self, store: Store) -> None:
        store.append(txns(1, 2, 3))
        store.purge(1)
        assert list(store.read_from(0)) == txns(1, 2, 3)

    def test_purge_survives_reopen(self, store: Store, stores: Stores) -> None:
        self._require_durable()
        self._log_and_snapshots(store)
        store.purge(1)
        store = stores.reopen(store)
        assert store.describe().snapshot_zxids == (40,)
        self._assert_log_after(store, 40)
        assert store.last_zxid() == 50

    # -- metadata -----------------------------------------------------------------------------

    def test_meta(self, store: Store) -> None:
        store.put_meta("acceptedEpoch", b"1")
        store.put_meta("currentEpoch", b"\x00\xff")
        store.put_meta("acceptedEpoch", b"2")
        assert store.get_meta("acceptedEpoch") == b"2"
        assert store.get_meta("currentEpoch") == b"\x00\xff"
        assert store.get_meta("other") is None

    def test_meta_survives_reopen(self, store: Store, stores: Stores) -> None:
        self._require_durable()
        store.put_meta("acceptedEpoch", b"1")
        store.put_meta("acceptedEpoch", b"2")
        store = stores.reopen(store)
        assert store.get_meta("acceptedEpoch") == b"2"

    # -- describe -----------------------------------------------------------------------------

    def test_describe(self, store: Store) -> None:
        store.append(txns(1, 2, 3))
        store.append(txns(4))
        store.save_snapshot(2, [b"two"])
        store.save_snapshot(4, [b"four", b"!"])
        info = store.describe()
        assert isinstance(info, StoreInfo)
        assert info.backend and isinstance(info.location, str)
        assert (info.first_zxid, info.last_zxid, info.snapshot_zxids) == (1, 4, (2, 4))
        assert info.log_bytes >= sum(len(p) for _, p in txns(1, 2, 3, 4))
        assert info.snapshot_bytes >= len(b"two") + len(b"four!")

    # -- damage and foreign files -------------------------------------------------------------

    def test_corrupt_last_txn_is_never_returned(self, store: Store, stores: Stores) -> None:
        store.append(txns(1, 2, 3))
        store.append(txns(4))
        store.append(txns(5))
        data_dir = stores.close(store)
        self.corrupt_last_txn(data_dir)
        store = stores.open(data_dir)
        assert list(store.read_from(0)) == txns(1, 2, 3, 4)
        assert store.last_zxid() == 4
        store.append([(5, b"five, again")])
        store = stores.reopen(store)
        assert list(store.read_from(3)) == txns(4) + [(5, b"five, again")]

    def test_refuses_a_zookeeper_data_dir(self, stores: Stores, tmp_path: Path) -> None:
        if not self.owns_data_dir:
            pytest.skip("the backend keeps no files under dataDir (owns_data_dir = False)")
        if self.keeps_zookeeper_files:
            pytest.skip("ZooKeeper's version-2/ is this store's own (keeps_zookeeper_files)")
        data_dir = tmp_path / "zk"
        (data_dir / "version-2").mkdir(parents=True)
        (data_dir / "version-2" / "log.100000001").write_bytes(b"ZKLG")
        with pytest.raises(StoreError) as raised:
            stores.open(data_dir)
        message = str(raised.value)
        assert "version-2" in message and "\n" not in message
        assert os.listdir(data_dir) == ["version-2"]
        assert os.listdir(data_dir / "version-2") == ["log.100000001"]
        assert (data_dir / "version-2" / "log.100000001").read_bytes() == b"ZKLG"

    def test_refuses_another_stores_data_dir(self, stores: Stores, tmp_path: Path) -> None:
        if not self.owns_data_dir:
            pytest.skip("the backend keeps no files under dataDir (owns_data_dir = False)")
        data_dir = tmp_path / "other"
        (data_dir / "elsewhere").mkdir(parents=True)
        (data_dir / "elsewhere" / "STORE").write_text("elsewhere\n")
        with pytest.raises(StoreError) as raised:
            stores.open(data_dir)
        message = str(raised.value)
        assert "elsewhere" in message and "\n" not in message
        assert os.listdir(data_dir) == ["elsewhere"]
        assert os.listdir(data_dir / "elsewhere") == ["STORE"]
