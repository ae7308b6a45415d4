"""Schema parity between what Vigil writes and what the real Telegraf writes.

Compares parsed line protocol — measurement, tag keys, field names, field types —
never raw lines (Telegraf orders fields randomly and prints whole floats
without a decimal point). The reference is the real agent's output in
``telegraf/fixtures/telegraf_samples.lp`` (README "Example Output" lines), read
with the strict parser: lines after a ``# !invalid-lp next N line(s)`` marker
must be rejected and are not used.

Differences are allowed only when listed in :func:`allowed_differences`, each
with its reason; several are derived from ``telegraf.conf`` (an option that is
off explains the fields it would add), the rest from Telegraf's code where the
READMEs are stale (``shared/reference/TELEGRAF_SCHEMA.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.collector.config import CollectorConfig
from vigil.lineprotocol import LineProtocolError, ParsedLine, parse_line
from vigil.settings import PROJECT_ROOT

FIXTURE = PROJECT_ROOT / "telegraf" / "fixtures" / "telegraf_samples.lp"

_MARKER = re.compile(r"^#\s*!invalid-lp next (\d+) line")
_PLUGIN = re.compile(r"^#\s*plugin:\s*(\S+)")

#: Fixture lines that current Telegraf no longer writes: (measurement, tag key, tag value) -> reason.
STALE_FIXTURE_LINES = {
    (
        "net",
        "interface",
        "all",
    ): "net protocol counters (interface=all) were removed in Telegraf v1.37.0 (PR #17742)",
}


@dataclass
class MeasurementSchema:
    tag_keys: set[str] = field(default_factory=set)
    fields: dict[str, str] = field(default_factory=dict)  # name -> integer|float|string|boolean

    def add(self, line: ParsedLine) -> None:
        self.tag_keys |= set(line.tags)
        for name, kind in line.field_types.items():
            known = self.fields.setdefault(name, kind)
            if known != kind:
                raise ValueError(f"{line.measurement}.{name} written as both {known} and {kind}")


Schema = dict[str, MeasurementSchema]


def schema_from_lines(lines: Iterable[str | ParsedLine]) -> Schema:
    schema: Schema = {}
    for line in lines:
        parsed = parse_line(line) if isinstance(line, str) else line
        schema.setdefault(parsed.measurement, MeasurementSchema()).add(parsed)
    return schema


@dataclass
class FixtureSamples:
    """The fixture file split into what it holds, by plugin."""

    valid: dict[str, list[ParsedLine]]  # plugin -> parsed valid lines (stale ones excluded)
    invalid: list[str]  # lines under an !invalid-lp marker
    stale: list[tuple[str, str]]  # (line, reason)

    def schema(self, plugins: Iterable[str]) -> Schema:
        return schema_from_lines(line for p in plugins for line in self.valid.get(p, []))


def read_fixture(path: Path = FIXTURE) -> FixtureSamples:
    valid: dict[str, list[ParsedLine]] = {}
    invalid: list[str] = []
    stale: list[tuple[str, str]] = []
    plugin = ""
    skip = 0
    for raw in path.read_text(encoding="utf-8").splitlines():
        if skip:
            invalid.append(raw)
            skip -= 1
            continue
        if not raw.strip():
            continue
        if raw.startswith("#"):
            if m := _MARKER.match(raw):
                skip = int(m.group(1))
            elif m := _PLUGIN.match(raw):
                plugin = m.group(1)
            continue
        parsed = parse_line(raw)  # a valid sample that does not parse is a parser bug: raise
        reason = next(
            (
                r
                for (meas, k, v), r in STALE_FIXTURE_LINES.items()
                if parsed.measurement == meas and parsed.tags.get(k) == v
            ),
            None,
        )
        if reason:
            stale.append((raw, reason))
        else:
            valid.setdefault(plugin, []).append(parsed)
    return FixtureSamples(valid, invalid, stale)


def rejects(line: str) -> bool:
    """True if the strict parser refuses ``line``."""
    try:
        parse_line(line)
    except LineProtocolError:
        return True
    return False


@dataclass
class Allowance:
    """Documented differences for one measurement: name -> reason (extra fields also carry their type)."""

    extra_fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (type, reason)
    missing_fields: dict[str, str] = field(default_factory=dict)
    extra_tags: dict[str, str] = field(default_factory=dict)
    missing_tags: dict[str, str] = field(default_factory=dict)


_CPU_FIELDS = ("user", "system", "idle", "nice", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")
_MEM_EXTENDED = ("active_anon", "active_file", "inactive_anon", "inactive_file", "percpu", "unevictable")
_LIMIT_FIELDS = ("memory_data", "memory_stack", "memory_locked")


def allowed_differences(config: CollectorConfig, omit_hostname: bool = False) -> dict[str, Allowance]:
    """Every accepted difference between the local writer and the Telegraf samples, with its reason."""
    out = {
        m: Allowance()
        for m in ("cpu", "mem", "net", "diskio", "system", "processes", "procstat", "procstat_lookup")
    }
    if not omit_hostname:
        for m in out:
            out[m].extra_tags["host"] = (
                "the agent adds host to every metric (omit_hostname = false); some README samples were trimmed"
            )
    cpu = config.inputs.get("cpu", [{}])[0]
    if not cpu.get("collect_cpu_time", False):
        for f in _CPU_FIELDS:
            out["cpu"].missing_fields[f"time_{f}"] = "collect_cpu_time = false in telegraf.conf"
        out["cpu"].missing_fields["time_active"] = "collect_cpu_time = false in telegraf.conf"
    if not cpu.get("report_active", False):
        out["cpu"].missing_fields["usage_active"] = "report_active = false in telegraf.conf"
    if not config.option("mem", "collect_extended", False):
        for f in _MEM_EXTENDED:
            out["mem"].missing_fields[f] = "collect_extended = false in telegraf.conf"
    for f in ("n_physical_cpus", "n_users", "n_unique_users"):
        out["system"].missing_fields[f] = (
            "omitted where it cannot be read (no utmp / no topology in containers)"
        )
    out["net"].extra_fields["speed"] = (
        "integer",
        "current net code writes speed (Mbit/s, -1 unknown); README lacks it",
    )
    for f in ("io_util", "io_await", "io_svctm"):
        out["diskio"].extra_fields[f] = (
            "float",
            "computed from the previous gather; the README block showing it is invalid line protocol",
        )
    out["processes"].missing_fields["zombie"] = "README is stale: the code writes 'zombies'"
    out["processes"].extra_fields["zombies"] = ("integer", "the code's name for zombie processes")
    out["processes"].extra_fields["unknown"] = ("integer", "processes_notwindows.go always writes unknown")
    out["processes"].extra_fields["idle"] = ("integer", "Linux: processes_notwindows.go writes idle")
    out["processes"].extra_fields["parked"] = ("integer", "Linux: written only when a parked task is seen")
    spec = config.procstat[0] if config.procstat else None
    props = spec.properties if spec else ()
    if "mmap" not in props:
        out["procstat"].missing_fields["memory_swap"] = "from the mmap property, off in telegraf.conf"
    if "limits" not in props:
        for f in _LIMIT_FIELDS:
            out["procstat"].missing_fields[f] = "from the limits property, off in telegraf.conf"
    root = "reading /proc/<pid>/fd and /io needs the same user or root; the README host had neither"
    out["procstat"].extra_fields["num_fds"] = ("integer", root)
    for f in ("read_count", "write_count", "read_bytes", "write_bytes"):
        out["procstat"].extra_fields[f] = ("integer", root)
    for f in ("disk_read_bytes", "disk_write_bytes"):
        out["procstat"].extra_fields[f] = ("integer", "Linux total-I/O fix-up in current process.go")
    out["procstat"].extra_fields["cpu_usage"] = (
        "float",
        "needs a previous sample; the README line is a first gather",
    )
    tagged = set(spec.tag_with) if spec else set()
    for f, kind in (("cmdline", "string"), ("ppid", "integer"), ("status", "string")):
        if f not in tagged:
            out["procstat"].extra_fields[f] = (
                kind,
                "current process.go writes it as a field unless tag_with lists it",
            )
    if "user" not in tagged:
        out["procstat"].missing_tags["user"] = 'user is a tag only with tag_with = ["user"]'
        out["procstat"].extra_fields["user"] = (
            "string",
            "current process.go writes user as a field by default",
        )
    return out


def compare(
    actual: Schema,
    expected: Schema,
    allowances: dict[str, Allowance],
    *,
    measurements: Iterable[str],
    subset: bool = False,
) -> list[str]:
    """Problems (empty = parity) for each measurement; ``subset`` accepts any missing field (the seeder)."""
    problems: list[str] = []
    for m in measurements:
        if m not in actual:
            problems.append(f"{m}: not written")
            continue
        if m not in expected:
            problems.append(f"{m}: no Telegraf sample to compare with")
            continue
        got, want, allow = actual[m], expected[m], allowances.get(m, Allowance())
        for tag in sorted(got.tag_keys - want.tag_keys):
            if tag not in allow.extra_tags:
                problems.append(f"{m}: tag {tag!r} not written by Telegraf")
        for tag in sorted(want.tag_keys - got.tag_keys):
            if tag not in allow.missing_tags:
                problems.append(f"{m}: missing tag {tag!r}")
        for name, kind in sorted(got.fields.items()):
            if name in want.fields:
                if want.fields[name] != kind:
                    problems.append(f"{m}.{name}: type {kind}, Telegraf writes {want.fields[name]}")
            elif name not in allow.extra_fields:
                problems.append(f"{m}.{name}: field not written by Telegraf")
            elif allow.extra_fields[name][0] != kind:
                problems.append(f"{m}.{name}: type {kind}, Telegraf writes {allow.extra_fields[name][0]}")
        if not subset:
            for name in sorted(set(want.fields) - set(got.fields)):
                if name not in allow.missing_fields:
                    problems.append(f"{m}.{name}: Telegraf writes it, the collector does not")
    return problems
