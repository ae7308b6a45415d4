"""inputs.procstat: per-process ``procstat`` points and one ``procstat_lookup`` point per selector.

Mirrors the current plugin (gopsutil v4 ``process.go``, properties cpu+memory):
integer counters/gauges, float cpu_time_* / cpu_usage / memory_usage, the
``pid``/``ppid`` integer fields and ``cmdline``/``status`` string fields unless
``tag_with`` lists them, ``user`` as a tag only when ``tag_with`` has it, and
``process_name`` always a tag. cpu_usage needs a previous sample (absent on a
process's first gather). read_bytes/write_bytes are the total I/O (rchar/wchar,
Telegraf's Linux fix-up) and disk_read_bytes/disk_write_bytes the storage I/O.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import psutil

from toolkit.collector.config import ProcstatSpec
from vigil.lineprotocol import Point
from vigil.schema import RAW_PROCSTAT, RAW_PROCSTAT_LOOKUP

#: psutil status -> gopsutil v4 status string (what Telegraf writes in the ``status`` field).
_STATUS = {
    psutil.STATUS_RUNNING: "running",
    psutil.STATUS_SLEEPING: "sleep",
    psutil.STATUS_DISK_SLEEP: "blocked",
    psutil.STATUS_STOPPED: "stop",
    psutil.STATUS_TRACING_STOP: "stop",
    psutil.STATUS_ZOMBIE: "zombie",
    psutil.STATUS_DEAD: "zombie",
    psutil.STATUS_IDLE: "idle",
    psutil.STATUS_WAKING: "wait",
    psutil.STATUS_PARKED: "wait",
}


def find_pids(spec: ProcstatSpec) -> list[int]:
    """PIDs the selector matches (pgrep semantics: ``-f`` regex on the command line, or exe name)."""
    me = os.getpid()
    if spec.pid_file:
        try:
            return [int(Path(spec.pid_file).read_text().strip())]
        except (OSError, ValueError):
            return []
    regex = re.compile(spec.pattern or spec.exe or "")
    pids = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if proc.info["pid"] == me:
            continue
        target = " ".join(proc.info["cmdline"] or []) if spec.pattern else (proc.info["name"] or "")
        if target and regex.search(target):
            pids.append(proc.info["pid"])
    return sorted(pids)


def selector_tags(spec: ProcstatSpec) -> dict[str, str]:
    if spec.pid_file:
        return {"pidfile": spec.pid_file}
    if spec.pattern:
        return {"pattern": spec.pattern}
    return {"exe": spec.exe or ""}


class ProcstatInput:
    name = "procstat"

    def __init__(self, specs: tuple[ProcstatSpec, ...]) -> None:
        self.specs = specs
        self._procs: dict[int, psutil.Process] = {}
        self._last_cpu: dict[int, tuple[float, float]] = {}

    def _process(self, pid: int) -> psutil.Process:
        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            proc = self._procs[pid] = psutil.Process(pid)
            self._last_cpu.pop(pid, None)
        return proc

    def _metric(self, proc: psutil.Process, spec: ProcstatSpec, time_ns: int) -> Point:
        fields: dict[str, int | float | str] = {}
        tags = selector_tags(spec)
        with proc.oneshot():
            fields["num_threads"] = int(proc.num_threads())
            try:
                fields["num_fds"] = int(proc.num_fds())
            except psutil.AccessDenied:
                pass
            ctx = proc.num_ctx_switches()
            fields["voluntary_context_switches"] = int(ctx.voluntary)
            fields["involuntary_context_switches"] = int(ctx.involuntary)
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
            rest = stat[stat.rfind(")") + 2 :].split()
            fields["minor_faults"] = int(rest[7])
            fields["child_minor_faults"] = int(rest[8])
            fields["major_faults"] = int(rest[9])
            fields["child_major_faults"] = int(rest[10])
            try:
                io = proc.io_counters()
                fields["read_count"] = int(io.read_count)
                fields["write_count"] = int(io.write_count)
                fields["read_bytes"] = int(io.read_chars)
                fields["write_bytes"] = int(io.write_chars)
                fields["disk_read_bytes"] = int(io.read_bytes)
                fields["disk_write_bytes"] = int(io.write_bytes)
            except (psutil.AccessDenied, AttributeError):
                pass
            fields["created_at"] = int(round(proc.create_time() * 1000)) * 1_000_000
            if "cpu" in spec.properties:
                times = proc.cpu_times()
                iowait = float(getattr(times, "iowait", 0.0))
                fields["cpu_time_user"] = float(times.user)
                fields["cpu_time_system"] = float(times.system)
                fields["cpu_time_iowait"] = iowait
                total, now = times.user + times.system + iowait, time.monotonic()
                last = self._last_cpu.get(proc.pid)
                self._last_cpu[proc.pid] = (total, now)
                if last is not None and now > last[1]:
                    fields["cpu_usage"] = 100.0 * (total - last[0]) / (now - last[1])
            if "memory" in spec.properties:
                mem = proc.memory_info()
                fields["memory_rss"] = int(mem.rss)
                fields["memory_vms"] = int(mem.vms)
                fields["memory_usage"] = float(proc.memory_percent())
            self._tag_or_field(tags, fields, spec, "cmdline", " ".join(proc.cmdline()))
            self._tag_or_field(tags, fields, spec, "pid", proc.pid)
            self._tag_or_field(tags, fields, spec, "ppid", proc.ppid())
            self._tag_or_field(tags, fields, spec, "status", _STATUS.get(proc.status(), ""))
            self._tag_or_field(tags, fields, spec, "user", proc.username())
            tags.setdefault("process_name", proc.name())
        return Point(RAW_PROCSTAT, tags, fields, time_ns)

    @staticmethod
    def _tag_or_field(
        tags: dict[str, str],
        fields: dict[str, int | float | str],
        spec: ProcstatSpec,
        key: str,
        value: object,
    ) -> None:
        """Telegraf's ``tag_with``: the listed properties become tags, the others stay fields."""
        if key in spec.tag_with:
            tags[key] = str(value)
        elif isinstance(value, int):
            fields[key] = value
        elif value != "":
            fields[key] = str(value)

    def gather(self, time_ns: int) -> list[Point]:
        points: list[Point] = []
        seen: set[int] = set()
        for spec in self.specs:
            pids = find_pids(spec)
            running = 0
            for pid in pids:
                try:
                    points.append(self._metric(self._process(pid), spec, time_ns))
                    running += 1
                    seen.add(pid)
                except (psutil.Error, OSError, IndexError):
                    continue  # the process ended between lookup and read: Telegraf skips it too
            lookup_tags = selector_tags(spec) | {"pid_finder": spec.pid_finder, "result": "success"}
            points.append(
                Point(
                    RAW_PROCSTAT_LOOKUP,
                    lookup_tags,
                    {"pid_count": len(pids), "running": running, "result_code": 0},
                    time_ns,
                )
            )
        for pid in list(self._procs):
            if pid not in seen:
                self._procs.pop(pid, None)
                self._last_cpu.pop(pid, None)
        return points
