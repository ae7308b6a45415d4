"""What the collector takes from ``telegraf/telegraf.conf``: one config for both agents.

Reading the real agent's file (instead of repeating its options in Vigil's
settings) means a change there, e.g. another procstat pattern, changes what the
local stand-in collects too, and the parity test sees the same inputs.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.settings import PROJECT_ROOT, DetectorSettings, InfluxSettings

#: The deployed agent's configuration file.
TELEGRAF_CONF = PROJECT_ROOT / "telegraf" / "telegraf.conf"

#: Inputs the local collector can read on this machine (docker, prometheus, internal cannot: see README).
LOCAL_INPUTS = ("cpu", "mem", "net", "diskio", "system", "processes", "procstat")

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def expand_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace Telegraf's ``${VAR}`` / ``${VAR:-default}`` with ``values[VAR]`` or the default.

    ``values`` comes from :class:`Settings` (the only reader of the environment), so the
    collector and the real agent resolve the same names.
    """

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = values.get(name)
        return value if value not in (None, "") else (default or "")

    return _PLACEHOLDER.sub(repl, text)


def placeholder_values(influx: InfluxSettings, detector: DetectorSettings) -> dict[str, str]:
    """The ``VIGIL_*`` names telegraf.conf uses, resolved from settings.

    They are the flat names (``VIGIL_INFLUX_URL``, not ``VIGIL_INFLUX__URL``): Telegraf reads them
    from its own environment, which docker-compose.yml sets with those names; Vigil's settings accept
    them as aliases (vigil/settings.py, ``LEGACY_NAMES``).
    """
    return {
        "VIGIL_INFLUX_URL": influx.base_url,
        "VIGIL_INFLUX_RAW_DB": influx.raw_db,
        "VIGIL_INFLUX_USERNAME": influx.username,
        "VIGIL_DETECTOR_METRICS_URL": f"{detector.url}/metrics",
    }


@dataclass(frozen=True)
class ProcstatSpec:
    """One ``[[inputs.procstat]]`` block (only the selectors the collector supports)."""

    pattern: str | None = None
    exe: str | None = None
    pid_file: str | None = None
    pid_finder: str = "pgrep"
    properties: tuple[str, ...] = ("cpu", "limits", "memory", "mmap")
    tag_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class CollectorConfig:
    """The parts of telegraf.conf the collector follows."""

    interval_s: float = 10.0
    buffer_limit: int = 10000
    batch_size: int = 1000
    inputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    procstat: tuple[ProcstatSpec, ...] = ()

    def enabled(self, name: str) -> bool:
        return name in self.inputs

    def option(self, name: str, key: str, default: Any) -> Any:
        """An input's option (first block), or Telegraf's default."""
        blocks = self.inputs.get(name) or [{}]
        return blocks[0].get(key, default)

    @property
    def local_inputs(self) -> list[str]:
        return [name for name in LOCAL_INPUTS if name in self.inputs]


def _duration_s(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", text)
    if not match:
        raise ValueError(f"unsupported duration {text!r} in telegraf.conf")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    return float(match.group(1)) * scale


def parse_config(text: str, values: Mapping[str, str] | None = None) -> CollectorConfig:
    """Parse telegraf.conf text (placeholders resolved first, as Telegraf does before TOML parsing)."""
    data = tomllib.loads(expand_placeholders(text, values or {}))
    agent = data.get("agent", {})
    inputs: dict[str, list[dict[str, Any]]] = {
        name: (blocks if isinstance(blocks, list) else [blocks])
        for name, blocks in data.get("inputs", {}).items()
    }
    specs = []
    for block in inputs.get("procstat", []):
        specs.append(
            ProcstatSpec(
                pattern=block.get("pattern") or None,
                exe=block.get("exe") or None,
                pid_file=block.get("pid_file") or None,
                pid_finder=block.get("pid_finder", "pgrep"),
                properties=tuple(block.get("properties", ProcstatSpec.properties)),
                tag_with=tuple(block.get("tag_with", ())),
            )
        )
    return CollectorConfig(
        interval_s=_duration_s(agent.get("interval", "10s")),
        buffer_limit=int(agent.get("metric_buffer_limit", 10000)),
        batch_size=int(agent.get("metric_batch_size", 1000)),
        inputs=inputs,
        procstat=tuple(specs),
    )


def load_config(
    influx: InfluxSettings, detector: DetectorSettings, path: Path | None = None
) -> CollectorConfig:
    """Load telegraf.conf (default: the project's) with placeholders resolved from settings."""
    conf_path = path or TELEGRAF_CONF
    return parse_config(conf_path.read_text(encoding="utf-8"), placeholder_values(influx, detector))
