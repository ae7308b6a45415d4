"""inputs.system, legacy layout: three ``system`` points with one timestamp (InfluxDB merges them).

1. load1/5/15 (float), n_cpus, n_physical_cpus, n_users, n_unique_users (int; users
   omitted when utmp cannot be read); 2. uptime (int seconds, grows until reboot);
3. uptime_format (string, deprecated but still written in legacy mode).
"""

from __future__ import annotations

import os
import time

import psutil

from vigil.lineprotocol import Point
from vigil.schema import RAW_SYSTEM


def format_uptime(seconds: int) -> str:
    """Telegraf's ``formatUptime``: ``"14 days, 11:07"`` / ``"1 day,  2:03"`` / ``" 2:03"``."""
    days, rest = divmod(seconds // 60, 60 * 24)
    hours, minutes = divmod(rest, 60)
    out = ""
    if days:
        out = f"{days} day{'s' if days != 1 else ''}, "
    return out + f"{hours:2d}:{minutes:02d}"


class SystemInput:
    name = "system"

    def gather(self, time_ns: int) -> list[Point]:
        load1, load5, load15 = os.getloadavg()
        gauges: dict[str, int | float] = {
            "load1": float(load1),
            "load5": float(load5),
            "load15": float(load15),
            "n_cpus": int(psutil.cpu_count(logical=True) or 0),
        }
        physical = psutil.cpu_count(logical=False)
        if physical:
            gauges["n_physical_cpus"] = int(physical)
        try:
            users = psutil.users()
            gauges["n_users"] = len(users)
            gauges["n_unique_users"] = len({u.name for u in users})
        except OSError:
            pass
        uptime = int(time.time() - psutil.boot_time())
        return [
            Point(RAW_SYSTEM, {}, gauges, time_ns),
            Point(RAW_SYSTEM, {}, {"uptime": uptime}, time_ns),
            Point(RAW_SYSTEM, {}, {"uptime_format": format_uptime(uptime)}, time_ns),
        ]
