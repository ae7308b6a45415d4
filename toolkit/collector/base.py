"""What every input module shares: the gatherer interface and small /proc helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from vigil.lineprotocol import Point

PROC = Path("/proc")


class Gatherer(Protocol):
    """One Telegraf input: ``gather`` returns this interval's points (host tag added by the loop).

    Gatherers keep the previous sample when Telegraf does (cpu usage, diskio io_util,
    procstat cpu_usage), so their first call returns what Telegraf's first gather returns.
    """

    name: str

    def gather(self, time_ns: int) -> list[Point]: ...


def read_text(path: Path) -> str | None:
    """File contents, or None if it vanished or is unreadable (processes come and go)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
