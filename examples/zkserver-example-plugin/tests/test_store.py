"""zkserver's Store conformance suite, run on the appendlog store."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.testing.store_suite import MakeStore, StoreSuite, StubConfig
from zkserver_example.store import create_store


class TestAppendLogStore(StoreSuite):
    """Every test of the suite, on the appendlog store (durable, keeps files in dataDir)."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        def make(data_dir: Path) -> object:
            store = create_store(StubConfig(data_dir=data_dir))
            store.open()
            return store
        return make

    def corrupt_last_txn(self, data_dir: Path) -> None:
        """Flip the last byte of the log: the newest record's payload fails its CRC."""
        flip_last_byte(data_dir / "appendlog" / "log")

    def corrupt_newest_snapshot(self, data_dir: Path) -> None:
        """Flip the last byte of the newest snapshot file."""
        flip_last_byte(max((data_dir / "appendlog").glob("snapshot.*")))


def flip_last_byte(path: Path) -> None:
    """Damage a file as a bad disk would: invert its last byte."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
