"""A Store that keeps everything in process memory: nothing survives close()."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from core.interfaces import StoreError, StoreInfo

if TYPE_CHECKING:
    from core.config import Config


class MemoryStore:
    """The Store protocol over a list of txns and dicts; no files, no checksums."""

    def __init__(self) -> None:
        self._zxids: list[int] = []
        self._payloads: list[bytes] = []
        self._snapshots: dict[int, bytes] = {}
        self._meta: dict[str, bytes] = {}

    def open(self) -> None:
        """Nothing to open: the store starts empty."""

    def append(self, txns: Sequence[tuple[int, bytes]]) -> None:
        """Add the batch to the log."""
        if not txns:
            return
        if self._zxids and txns[0][0] <= self._zxids[-1]:
            raise ValueError(f"zxid {txns[0][0]:#x} is not above the last, {self._zxids[-1]:#x}")
        for zxid, payload in txns:
            self._zxids.append(zxid)
            self._payloads.append(bytes(payload))

    def read_from(self, zxid: int) -> Iterator[tuple[int, bytes]]:
        """Every txn above `zxid`, in zxid order (a copy of the log's state at the call)."""
        start = bisect.bisect_right(self._zxids, zxid)
        return iter(list(zip(self._zxids[start:], self._payloads[start:])))

    def last_zxid(self) -> int:
        """The highest zxid logged, 0 when the log is empty."""
        return self._zxids[-1] if self._zxids else 0

    def truncate_after(self, zxid: int) -> None:
        """Drop every txn and snapshot above `zxid`."""
        cut = bisect.bisect_right(self._zxids, zxid)
        del self._zxids[cut:], self._payloads[cut:]
        for z in [z for z in self._snapshots if z > zxid]:
            del self._snapshots[z]

    def save_snapshot(self, zxid: int, chunks: Iterable[bytes]) -> None:
        """Keep the concatenated chunks as the snapshot at `zxid` (replacing one there)."""
        self._snapshots[zxid] = b"".join(chunks)

    def load_snapshot(self) -> tuple[int, bytes] | None:
        """The newest snapshot, or None."""
        if not self._snapshots:
            return None
        zxid = max(self._snapshots)
        return zxid, self._snapshots[zxid]

    def purge(self, retain_count: int) -> None:
        """Keep the newest `retain_count` snapshots and the txns above the oldest of them."""
        if retain_count < 1:
            raise ValueError("retain_count must be at least 1")
        kept = sorted(self._snapshots)[-retain_count:]
        if not kept:
            return
        self._snapshots = {z: self._snapshots[z] for z in kept}
        cut = bisect.bisect_right(self._zxids, kept[0])
        del self._zxids[:cut], self._payloads[:cut]

    def get_meta(self, key: str) -> bytes | None:
        """The value stored under `key`, or None."""
        return self._meta.get(key)

    def put_meta(self, key: str, value: bytes) -> None:
        """Set `key` to `value`."""
        self._meta[key] = bytes(value)

    def describe(self) -> StoreInfo:
        """What the store holds."""
        return StoreInfo(
            backend="memory", location="process memory",
            first_zxid=self._zxids[0] if self._zxids else None,
            last_zxid=self._zxids[-1] if self._zxids else None,
            snapshot_zxids=tuple(sorted(self._snapshots)),
            log_bytes=sum(map(len, self._payloads)),
            snapshot_bytes=sum(map(len, self._snapshots.values())))

    def close(self) -> None:
        """Forget everything."""
        self._zxids.clear()
        self._payloads.clear()
        self._snapshots.clear()
        self._meta.clear()


def create_store(config: Config) -> MemoryStore:
    """The backend factory: a memory store takes no options."""
    options = config.plugin_options("memory")
    if options:
        raise StoreError(f"the memory store has no options (got memory.{min(options)})")
    return MemoryStore()
