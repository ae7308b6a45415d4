"""The stack through its real CLI: ``vigil`` in a subprocess, an environment of free ports, and a
run folder whose services are stopped whatever the test did (shared by the stack tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from toolkit.stack.services import SERVICE_NAMES
from vigil.processes import free_port, read_record, stop_process
from vigil.settings import Settings


def vigil(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stack_env(run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "AIRFLOW"))}
    env.update(
        VIGIL_RUN_DIR=str(run_dir),
        VIGIL_INFLUX__PORT=str(free_port()),
        VIGIL_INFLUX__RPC_PORT=str(free_port()),
        VIGIL_MLFLOW__PORT=str(free_port()),
        VIGIL_AIRFLOW__PORT=str(free_port()),
        VIGIL_DETECTOR__PORT=str(free_port()),
        VIGIL_STRESS__TARGET_PORT=str(free_port()),
        VIGIL_COLLECTION__INTERVAL_S="1",
    )
    return env


@pytest.fixture()
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run folder whose services are stopped whatever the test did."""
    yield tmp_path / "run"
    for name in SERVICE_NAMES:
        record = read_record(tmp_path / "run", name)
        if record is not None:
            stop_process(record, timeout_s=5)


def settings_of(env: dict[str, str]) -> Settings:
    """The settings a child process started with ``env`` reads (the environment only, no .env)."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings(_env_file=None)
