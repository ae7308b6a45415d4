"""inputs.net: ``net,interface=<if>`` cumulative counters for interfaces that are up and not loopback.

All fields are Go uint64 counters -> integers; ``speed`` (Mbit/s) comes from
/sys/class/net/<if>/speed and is -1 where the driver has none (virtual NICs).
The ``interface=all`` protocol point was removed in Telegraf v1.37 and is not written.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import psutil

from toolkit.collector.base import read_text
from vigil.lineprotocol import Point
from vigil.schema import RAW_NET

SYS_NET = Path("/sys/class/net")


def link_speed(interface: str) -> int:
    text = read_text(SYS_NET / interface / "speed")
    try:
        return int(text.strip()) if text else -1
    except ValueError:
        return -1


class NetInput:
    name = "net"

    def __init__(self, options: dict[str, Any]) -> None:
        self.patterns: list[str] = list(options.get("interfaces", []))

    def _selected(self, name: str, stats: Any) -> bool:
        if self.patterns:
            return any(fnmatch.fnmatch(name, p) for p in self.patterns)
        flags = getattr(stats, "flags", "")
        return bool(stats.isup) and "loopback" not in flags and name != "lo"

    def gather(self, time_ns: int) -> list[Point]:
        counters = psutil.net_io_counters(pernic=True)
        stats = psutil.net_if_stats()
        points = []
        for name in sorted(counters):
            if name not in stats or not self._selected(name, stats[name]):
                continue
            c = counters[name]
            fields = {
                "bytes_sent": int(c.bytes_sent),
                "bytes_recv": int(c.bytes_recv),
                "packets_sent": int(c.packets_sent),
                "packets_recv": int(c.packets_recv),
                "err_in": int(c.errin),
                "err_out": int(c.errout),
                "drop_in": int(c.dropin),
                "drop_out": int(c.dropout),
                "speed": link_speed(name),
            }
            points.append(Point(RAW_NET, {"interface": name}, fields, time_ns))
        return points
