"""inputs.diskio: ``diskio,name=<dev>`` counters from /proc/diskstats (as gopsutil reads them).

Counters are integers (bytes = sectors x 512, times in ms); io_util, io_await and
io_svctm are floats computed from the previous sample, so the first gather has
none of them, and io_await/io_svctm only appear when some I/O completed.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from toolkit.collector.base import PROC, read_text
from vigil.lineprotocol import Point
from vigil.schema import RAW_DISKIO

SECTOR = 512


def parse_diskstats(text: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 14:
            continue
        v = [int(x) for x in f[3:14]]
        out[f[2]] = {
            "reads": v[0],
            "merged_reads": v[1],
            "read_bytes": v[2] * SECTOR,
            "read_time": v[3],
            "writes": v[4],
            "merged_writes": v[5],
            "write_bytes": v[6] * SECTOR,
            "write_time": v[7],
            "iops_in_progress": v[8],
            "io_time": v[9],
            "weighted_io_time": v[10],
        }
    return out


class DiskioInput:
    name = "diskio"

    def __init__(self, options: dict[str, Any]) -> None:
        self.devices: list[str] = list(options.get("devices", []))
        self._last: dict[str, dict[str, int]] = {}
        self._last_time: float | None = None

    def gather(self, time_ns: int) -> list[Point]:
        text = read_text(PROC / "diskstats")
        if text is None:
            return []
        now = time.monotonic()
        stats = parse_diskstats(text)
        points = []
        for name, counters in stats.items():
            if self.devices and not any(fnmatch.fnmatch(name, p) for p in self.devices):
                continue
            fields: dict[str, int | float] = dict(counters)
            last = self._last.get(name)
            if last is not None and self._last_time is not None:
                d_count = counters["reads"] + counters["writes"] - last["reads"] - last["writes"]
                d_time = (
                    counters["read_time"] + counters["write_time"] - last["read_time"] - last["write_time"]
                )
                d_io = counters["io_time"] - last["io_time"]
                if d_count > 0:
                    fields["io_await"] = float(d_time) / d_count
                    fields["io_svctm"] = float(d_io) / d_count
                elapsed_ms = (now - self._last_time) * 1000.0
                if elapsed_ms > 0:
                    fields["io_util"] = 100.0 * d_io / elapsed_ms
            points.append(Point(RAW_DISKIO, {"name": name}, fields, time_ns))
        self._last, self._last_time = stats, now
        return points
