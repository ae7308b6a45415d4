"""Doctests of the packages, collected by ``--doctest-modules`` (pyproject.toml's pytest options).

The examples in docstrings are documentation; running them keeps them true. Only the modules that
hold an example (``>>>``) are collected, so collecting doctests never imports a module just to find
it has none (some import Spark, MLflow or Airflow, and ``detector.cli`` makes its process lean on
import). Test files are collected as usual.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

ROOT = Path(__file__).resolve().parent
#: Packages whose doctests run (the core, the product parts and the tooling; ``dags/`` has none).
DOCTEST_PACKAGES = ("vigil", "detector", "pipelines", "stress", "toolkit")


def has_doctest(path: Path) -> bool:
    return ">>>" in path.read_text(encoding="utf-8")


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:  # noqa: ANN001 - pytest's hook
    path = Path(collection_path)
    if path.suffix != ".py" or not path.is_file():
        return None
    try:
        package = path.resolve().relative_to(ROOT).parts[0]
    except ValueError:
        return None
    if package in DOCTEST_PACKAGES and not has_doctest(path):
        return True
    return None
