"""The stress scenarios, as data, and the registry that turns one into concrete loads.

A scenario is a list of load templates whose parameters are given at intensity
1.0; ``intensity`` (0 < i <= 1) scales the parameters a template names in
``scaled``, and :func:`stress.loadgen.clamp_params` caps the result again in the
child process. Adding a scenario means adding one :class:`Scenario` entry here.

``anomalous=False`` marks a scenario that must NOT raise an alarm
(``normal_busy_period``: the false-positive check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``workers`` values resolved against the machine.
PER_CPU = "per_cpu"
TWICE_PER_CPU = "twice_per_cpu"
MAX_WORKERS = 16
#: Load kinds that act on the target app. ``users`` is not a child process: it makes the app's
#: own everyday users busier (:class:`stress.load.BusierUsers`); the others are
#: :data:`stress.loadgen.KINDS`.
USERS = "users"
TARGET_KINDS = ("http", "net", USERS)


@dataclass(frozen=True)
class LoadTemplate:
    """One load of a scenario: ``kind`` is a generator from :data:`stress.loadgen.KINDS`, or
    :data:`USERS`."""

    kind: str
    params: dict[str, Any]
    scaled: tuple[str, ...] = ()
    workers: int | str = 1  # an int, PER_CPU or TWICE_PER_CPU: processes running this load


@dataclass(frozen=True)
class LoadSpec:
    """A resolved load: what one child process runs."""

    kind: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # the LABELS "kind" tag
    description: str
    loads: tuple[LoadTemplate, ...]
    metrics: tuple[str, ...]  # base metrics (vigil.features) the scenario should move: plotted in reports
    default_duration_s: float = 60.0
    max_duration_s: float = 600.0
    default_intensity: float = 1.0
    anomalous: bool = True
    severity: float = 1.0
    needs_target: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs_target", any(t.kind in TARGET_KINDS for t in self.loads))


def _workers(value: int | str) -> int:
    cpus = os.cpu_count() or 1
    n = {PER_CPU: cpus, TWICE_PER_CPU: 2 * cpus}.get(value, value) if isinstance(value, str) else value
    return max(1, min(int(n), MAX_WORKERS))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "cpu_spike",
            "spike",
            "Every core busy at 95% x intensity for a short burst.",
            (LoadTemplate("cpu", {"duty": 0.95}, ("duty",), PER_CPU),),
            ("cpu_busy", "load_per_cpu"),
            default_duration_s=60,
        ),
        Scenario(
            "cpu_saturation",
            "saturation",
            "Twice as many busy processes as cores: run queue and load average climb and stay up.",
            (LoadTemplate("cpu", {"duty": 1.0}, ("duty",), TWICE_PER_CPU),),
            ("cpu_busy", "load_per_cpu", "procs_total"),
            default_duration_s=120,
        ),
        Scenario(
            "memory_leak",
            "leak",
            "Resident memory grows linearly over the whole window (a slow leak), then is freed.",
            (LoadTemplate("memory", {"target_mb": 2048, "ramp_s": -1}, ("target_mb",)),),
            ("mem_used_pct",),
            default_duration_s=150,
        ),
        Scenario(
            "memory_spike",
            "spike",
            "Several GiB allocated within seconds, held, then freed.",
            (LoadTemplate("memory", {"target_mb": 3072, "ramp_s": 3}, ("target_mb",)),),
            ("mem_used_pct",),
            default_duration_s=60,
        ),
        Scenario(
            "http_flood",
            "flood",
            "A request flood on the target app: rps and concurrency scale with intensity.",
            (
                LoadTemplate(
                    "http",
                    {"rps": 600, "concurrency": 16, "paths": ["/api/items?n=50", "/api/compute?ms=2"]},
                    ("rps", "concurrency"),
                ),
            ),
            ("cpu_busy", "load_per_cpu", "net_rx", "net_tx"),
            default_duration_s=60,
        ),
        Scenario(
            "network_burst",
            "burst",
            "Large uploads and downloads against the target app (loopback) at tens of MB/s.",
            (LoadTemplate("net", {"bytes_per_s": 80 * 2**20, "chunk_kb": 1024}, ("bytes_per_s",)),),
            ("net_rx", "net_tx", "cpu_busy"),
            default_duration_s=60,
        ),
        Scenario(
            "disk_io_burst",
            "burst",
            "fsync'ed writes and uncached reads of a temp file at tens of MB/s.",
            (LoadTemplate("disk", {"mb_per_s": 60, "max_file_mb": 128}, ("mb_per_s",)),),
            ("disk_write", "disk_read", "cpu_iowait"),
            default_duration_s=60,
        ),
        Scenario(
            "normal_busy_period",
            "normal",
            "Busier than usual: the target app's everyday users send a few more ordinary requests "
            "per second (from inside the app, no new process): must NOT alarm.",
            (LoadTemplate("users", {"extra_rps": 8.0}, ("extra_rps",)),),
            ("cpu_busy", "net_rx"),
            default_duration_s=120,
            anomalous=False,
            severity=0.0,
        ),
    )
}

SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIO_NAMES)}") from None


def check_run_args(
    scenario: Scenario, duration_s: float | None, intensity: float | None
) -> tuple[float, float]:
    """Validate duration and intensity: bad input is an error, not silently clamped."""
    duration = scenario.default_duration_s if duration_s is None else float(duration_s)
    level = scenario.default_intensity if intensity is None else float(intensity)
    if not 0 < duration <= scenario.max_duration_s:
        raise ValueError(
            f"{scenario.name}: duration must be in (0, {scenario.max_duration_s:g}] s, got {duration:g}"
        )
    if not 0 < level <= 1:
        raise ValueError(f"{scenario.name}: intensity must be in (0, 1], got {level:g}")
    return duration, level


def plan_loads(
    scenario: Scenario, duration_s: float, intensity: float, *, target_url: str, tmp_dir: Path
) -> list[LoadSpec]:
    """The concrete loads for a run (one per child process, or a busier-users period); caps are
    applied again where each load runs (the generator process, or the target app)."""
    specs: list[LoadSpec] = []
    for template in scenario.loads:
        params = dict(template.params)
        for key in template.scaled:
            params[key] = params[key] * intensity
        if "concurrency" in params:
            params["concurrency"] = max(1, round(params["concurrency"]))
        if params.get("ramp_s") == -1:
            params["ramp_s"] = duration_s  # ramp over the whole window
        params["duration_s"] = duration_s
        if template.kind in TARGET_KINDS:
            params["url"] = target_url
        if template.kind == "disk":
            params["dir"] = str(tmp_dir)
        specs += [LoadSpec(template.kind, dict(params)) for _ in range(_workers(template.workers))]
    return specs
