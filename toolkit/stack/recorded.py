"""The settings each local service was started with, kept in the run folder and reused on restart.

Why: the demo starts the collector and the detector at a 5 s interval. A user who later runs
``vigil up`` from a plain shell (after a crash, a ``kill -9``, a reboot) has none of the demo's
settings in the environment; restarting with the defaults silently changed the detector to
10 s while the collector kept writing every 5 s (two points per interval, a duplicate warning
every interval). So ``vigil up`` writes ``RUN/settings/NAME.json`` with the ``VIGIL_*``
environment a service was started with, and a later start of that service reuses it, except
for the settings the user gives explicitly (environment or ``.env``), whose changes it names.

Secrets are never written: they always come from the environment of the ``up`` that starts
the service. ``run_dir`` is not recorded either (it is where the records live).

>>> env_value(True), env_value(5.0), env_value(None) is None
('true', '5.0', True)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from vigil.settings import (
    Settings,
    flat_field,
    flat_get,
    flat_names,
    flat_set,
    is_explicit,
    legacy_env_name,
    new_env_name,
)

#: Fields never recorded nor reused: where the records live, and anything secret.
NOT_RECORDED = frozenset({"run_dir"})


def env_value(value: Any) -> str | None:
    """A setting's value as its ``VIGIL_*`` variable spells it (None: not exported)."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, Path):
        value = value.resolve()
    return str(value)


def env_name(field_name: str) -> str:
    """The variable a setting (by its flat name) is exported as: the sectioned name."""
    return new_env_name(field_name)


def recordable(field_name: str) -> bool:
    """Whether a setting is written to (and reused from) a record: not secret, not the run folder."""
    if field_name in NOT_RECORDED:
        return False
    annotation = flat_field(field_name).annotation
    return "SecretStr" not in str(annotation)


#: variable -> flat setting name; records written before sections used the legacy names
_FIELD_BY_ENV = {legacy_env_name(f): f for f in flat_names()} | {env_name(f): f for f in flat_names()}


def settings_file(run_dir: Path, name: str) -> Path:
    return run_dir / "settings" / f"{name}.json"


@dataclass
class Recorded:
    """What ``up`` wrote when it started a service: its ``VIGIL_*`` environment (no secrets)."""

    service: str
    started_at: float
    env: dict[str, str]

    def values(self) -> dict[str, str]:
        """setting name -> recorded value (as the environment variable spelt it)."""
        return {_FIELD_BY_ENV[k]: v for k, v in self.env.items() if k in _FIELD_BY_ENV}


def write(run_dir: Path, name: str, child_env: dict[str, str]) -> Path:
    """Record the ``VIGIL_*`` variables a service was started with (atomically, secrets left out)."""
    env = {k: v for k, v in sorted(child_env.items()) if k in _FIELD_BY_ENV and recordable(_FIELD_BY_ENV[k])}
    path = settings_file(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"service": name, "started_at": time.time(), "env": env}, indent=1))
    tmp.replace(path)
    return path


def read(run_dir: Path, name: str) -> Recorded | None:
    """The record of ``name``, or None (absent or unreadable: the service starts from the
    current settings, as it did before records existed)."""
    path = settings_file(run_dir, name)
    try:
        data = json.loads(path.read_text())
        return Recorded(str(data["service"]), float(data["started_at"]), dict(data["env"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Effective:
    """The settings a (re)start of one service uses, and how they differ from the shell's.

    ``reused``: recorded values kept because the user did not set them (name -> (recorded,
    what the current settings alone would give)). ``changed``: values the user set explicitly
    that differ from the record (name -> (recorded, new)).
    """

    settings: Settings
    recorded: Recorded | None = None
    reused: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    changed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    problem: str | None = None

    def describe(self, path: Path) -> list[str]:
        """Lines for ``up`` to print: which recorded settings it kept, and what the user changed."""
        lines = [f"{self.problem} ({path}): starting from your settings"] if self.problem else []
        if self.reused:
            kept = ", ".join(f"{k}={old}" for k, (old, _) in sorted(self.reused.items()))
            lines.append(f"reusing the settings of its last start ({path}): {kept}")
        if self.changed:
            diff = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in sorted(self.changed.items()))
            lines.append(f"settings changed since its last start: {diff}")
        return lines


def effective(current: Settings, name: str, explicit_wins: bool = True) -> Effective:
    """Merge the record of ``name`` (if any) with ``current``: explicit settings win.

    A setting counts as explicit when it is in ``current.model_fields_set``: given in the
    environment, in ``.env``, or in code (the demo's interval, a test's ports). With
    ``explicit_wins=False`` the record wins everywhere: what a running service runs with.
    """
    rec = read(current.run_dir, name)
    if rec is None:
        return Effective(current)
    explicit = {f for f in flat_names() if is_explicit(current, f)} if explicit_wins else set()
    values: dict[str, Any] = {}
    reused: dict[str, tuple[str, str | None]] = {}
    changed: dict[str, tuple[str | None, str | None]] = {}
    recorded = rec.values()
    for fname in flat_names():
        if not recordable(fname):
            continue
        now = env_value(flat_get(current, fname))
        old = recorded.get(fname)
        if fname in explicit or (old is None and not explicit_wins):
            values[fname] = flat_get(current, fname)
            if old != now:
                changed[fname] = (old, now)
        elif old is not None:
            values[fname] = old
            if old != now:
                reused[fname] = (old, now)
        else:
            values[fname] = flat_get(current, fname)
    try:
        merged = Settings(_env_file=None, run_dir=current.run_dir, **values)
    except ValidationError as exc:  # a record from an older Vigil whose values no longer validate
        return Effective(current, rec, problem=f"recorded settings not reused ({exc.error_count()} invalid)")
    for fname in flat_names():  # secrets: always the current ones
        if not recordable(fname):
            flat_set(merged, fname, flat_get(current, fname))
    return Effective(merged, rec, reused, changed)


def running(current: Settings, name: str) -> Settings:
    """The settings a service started by ``up`` runs with: its record (secrets from ``current``)."""
    return effective(current, name, explicit_wins=False).settings
