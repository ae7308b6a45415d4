"""Which detector instance owns which host: a stable hash, the same in every process.

Why not ``hash()``: Python randomises string hashes per process (PYTHONHASHSEED), so two
detectors — or one detector before and after a restart — would disagree on who owns a host.

>>> shard_of("web-01", 2) == shard_of("web-01", 2)
True
>>> sorted({shard_of(f"h{i}", 3) for i in range(100)})
[0, 1, 2]
"""

from __future__ import annotations

import hashlib

import pandas as pd


def shard_of(host: str, shard_count: int) -> int:
    """The shard (0..shard_count-1) owning ``host``: first 8 bytes of its BLAKE2b digest, modulo."""
    if shard_count <= 1:
        return 0
    digest = hashlib.blake2b(host.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


class ShardFilter:
    """Keeps the rows of the hosts this instance owns; memoises the hash per host."""

    def __init__(self, shard_index: int, shard_count: int) -> None:
        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index must be in [0, {shard_count}), got {shard_index}")
        self.index, self.count = shard_index, shard_count
        self._owned: dict[str, bool] = {}

    def owns(self, host: str) -> bool:
        hit = self._owned.get(host)
        if hit is None:
            hit = self._owned[host] = shard_of(host, self.count) == self.index
        return hit

    def filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of ``frame`` (with a ``host`` column) owned by this shard."""
        if self.count == 1 or frame.empty or "host" not in frame.columns:
            return frame
        mask = frame["host"].astype(str).map(self.owns).to_numpy(dtype=bool)
        return frame[mask]
