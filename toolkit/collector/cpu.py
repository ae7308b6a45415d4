"""inputs.cpu: ``cpu,cpu=cpu-total`` usage_* percentages from two /proc/stat samples.

Mirrors plugins/inputs/cpu/cpu.go: the first gather emits nothing (no previous
sample), usage_user excludes guest and usage_nice excludes guest_nice, the
total excludes guest/guest_nice (already inside user/nice), and an interval with
no elapsed CPU time is skipped. time_* counters only with collect_cpu_time.
"""

from __future__ import annotations

from typing import Any

import psutil

from vigil.lineprotocol import Point
from vigil.schema import CPU_TOTAL_TAG, RAW_CPU

_TIME_FIELDS = ("user", "system", "idle", "nice", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


def _total(t: Any) -> float:
    return t.user + t.system + t.nice + t.iowait + t.irq + t.softirq + t.steal + t.idle


class CpuInput:
    name = "cpu"

    def __init__(self, options: dict[str, Any]) -> None:
        self.percpu = bool(options.get("percpu", True))
        self.totalcpu = bool(options.get("totalcpu", True))
        self.collect_cpu_time = bool(options.get("collect_cpu_time", False))
        self.report_active = bool(options.get("report_active", False))
        self._last: dict[str, Any] = {}

    def _samples(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if self.percpu:
            out += [(f"cpu{i}", t) for i, t in enumerate(psutil.cpu_times(percpu=True))]
        if self.totalcpu:
            out.append((CPU_TOTAL_TAG, psutil.cpu_times(percpu=False)))
        return out

    def gather(self, time_ns: int) -> list[Point]:
        points: list[Point] = []
        for cpu, now in self._samples():
            tags = {"cpu": cpu}
            if self.collect_cpu_time:
                fields = {f"time_{k}": float(getattr(now, k, 0.0)) for k in _TIME_FIELDS}
                if self.report_active:
                    fields["time_active"] = _total(now) - now.idle
                points.append(Point(RAW_CPU, tags, fields, time_ns))
            last, self._last[cpu] = self._last.get(cpu), now
            if last is None:
                continue
            delta = _total(now) - _total(last)
            if delta <= 0:
                continue

            def pct(value: float, delta: float = delta) -> float:
                return 100.0 * value / delta

            fields = {
                "usage_user": pct(now.user - last.user - (now.guest - last.guest)),
                "usage_system": pct(now.system - last.system),
                "usage_idle": pct(now.idle - last.idle),
                "usage_nice": pct(now.nice - last.nice - (now.guest_nice - last.guest_nice)),
                "usage_iowait": pct(now.iowait - last.iowait),
                "usage_irq": pct(now.irq - last.irq),
                "usage_softirq": pct(now.softirq - last.softirq),
                "usage_steal": pct(now.steal - last.steal),
                "usage_guest": pct(now.guest - last.guest),
                "usage_guest_nice": pct(now.guest_nice - last.guest_nice),
            }
            if self.report_active:
                fields["usage_active"] = 100.0 - fields["usage_idle"]
            points.append(Point(RAW_CPU, tags, fields, time_ns))
        return points
