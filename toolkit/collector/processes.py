"""inputs.processes (Linux): counts of processes by state, read from /proc/<pid>/stat.

Follows processes_notwindows.go: the field is ``zombies`` (plural; the README's
``zombie`` is stale), Linux adds dead/paging/total_threads/idle, and ``parked``
appears only when a parked task is seen. All integers.
"""

from __future__ import annotations

from toolkit.collector.base import PROC, read_text
from vigil.lineprotocol import Point
from vigil.schema import RAW_PROCESSES

_STATE_FIELD = {
    "R": "running",
    "S": "sleeping",
    "D": "blocked",
    "Z": "zombies",
    "X": "dead",
    "T": "stopped",
    "t": "stopped",
    "W": "paging",
    "I": "idle",
    "P": "parked",
}


def count_processes() -> dict[str, int]:
    fields = dict.fromkeys(
        ("blocked", "zombies", "stopped", "running", "sleeping", "total", "unknown"), 0
    ) | dict.fromkeys(("dead", "paging", "total_threads", "idle"), 0)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_text(entry / "stat")
        if not stat:
            continue
        # The command name sits in parentheses and may contain spaces: split after the last ')'.
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) < 18:
            continue
        field = _STATE_FIELD.get(rest[0], "unknown")
        fields[field] = fields.get(field, 0) + 1
        fields["total"] += 1
        fields["total_threads"] += int(rest[17])
    return fields


class ProcessesInput:
    name = "processes"

    def gather(self, time_ns: int) -> list[Point]:
        return [Point(RAW_PROCESSES, {}, count_processes(), time_ns)]
