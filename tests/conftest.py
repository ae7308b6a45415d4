"""What every test shares: a quiet environment, and a marker for the kind of test from its folder.

The tests are sorted by what they need (docs/architecture.md):

* ``tests/unit`` — no server: pure functions, files, in-process DAG parsing (``pytest -m unit``);
* ``tests/integration`` — real InfluxDB, MLflow, Spark and Airflow started on free loopback ports
  (``tests/support/servers.py``);
* ``tests/live`` — the stress suite against the live local stack; it measures this machine, so the
  default options deselect it and ``scripts/test.sh`` runs it first, by itself (``-m live``).

``tests/support`` holds the helpers they import (``from support.detector_support import ...``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any test module imports great_expectations or mlflow.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

HERE = Path(__file__).resolve().parent
#: The folders of tests, each its marker.
KINDS = ("unit", "integration", "live")


def kind_of(path: Path) -> str | None:
    """The kind of a test file: the first folder under ``tests/`` (None outside the kinds)."""
    try:
        folder = path.resolve().relative_to(HERE).parts[0]
    except ValueError:
        return None
    return folder if folder in KINDS else None


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        kind = kind_of(Path(str(item.fspath)))
        if kind is not None:
            item.add_marker(getattr(pytest.mark, kind))
