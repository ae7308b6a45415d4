"""inputs.mem: one ``mem`` point from /proc/meminfo, computed the way gopsutil does on Linux.

Byte values are Go uint64 -> integers on the wire; only used_percent and
available_percent are floats. ``cached`` includes SReclaimable and ``used`` is
total - free - buffers - cached (gopsutil ``VirtualMemory``).
"""

from __future__ import annotations

from toolkit.collector.base import PROC, read_text
from vigil.lineprotocol import Point
from vigil.schema import RAW_MEM

#: Telegraf field -> /proc/meminfo key (kB unless listed in _COUNTS).
_DIRECT = {
    "total": "MemTotal",
    "free": "MemFree",
    "buffered": "Buffers",
    "active": "Active",
    "inactive": "Inactive",
    "write_back": "Writeback",
    "write_back_tmp": "WritebackTmp",
    "dirty": "Dirty",
    "shared": "Shmem",
    "slab": "Slab",
    "sreclaimable": "SReclaimable",
    "sunreclaim": "SUnreclaim",
    "page_tables": "PageTables",
    "swap_cached": "SwapCached",
    "commit_limit": "CommitLimit",
    "committed_as": "Committed_AS",
    "high_total": "HighTotal",
    "high_free": "HighFree",
    "low_total": "LowTotal",
    "low_free": "LowFree",
    "swap_total": "SwapTotal",
    "swap_free": "SwapFree",
    "mapped": "Mapped",
    "vmalloc_total": "VmallocTotal",
    "vmalloc_used": "VmallocUsed",
    "vmalloc_chunk": "VmallocChunk",
    "huge_pages_total": "HugePages_Total",
    "huge_pages_free": "HugePages_Free",
    "huge_page_size": "Hugepagesize",
}
_COUNTS = {"HugePages_Total", "HugePages_Free"}


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as bytes (counts stay counts)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        value = int(parts[0])
        out[key.strip()] = value if key.strip() in _COUNTS or len(parts) == 1 else value * 1024
    return out


def mem_fields(info: dict[str, int]) -> dict[str, int | float]:
    fields: dict[str, int | float] = {name: int(info.get(key, 0)) for name, key in _DIRECT.items()}
    total = fields["total"]
    cached = info.get("Cached", 0) + info.get("SReclaimable", 0)
    fields["cached"] = int(cached)
    if "MemAvailable" in info:
        available = info["MemAvailable"]
    else:  # kernels before 3.14: gopsutil's estimate
        available = info.get("MemFree", 0) + info.get("Buffers", 0) + cached
    fields["available"] = int(available)
    used = total - fields["free"] - fields["buffered"] - cached
    fields["used"] = int(used)
    fields["used_percent"] = 100.0 * used / total if total else 0.0
    fields["available_percent"] = 100.0 * available / total if total else 0.0
    return fields


class MemInput:
    name = "mem"

    def gather(self, time_ns: int) -> list[Point]:
        text = read_text(PROC / "meminfo")
        if text is None:
            return []
        return [Point(RAW_MEM, {}, mem_fields(parse_meminfo(text)), time_ns)]
