"""Where the task's shared reference data lives: beside the checkout (``../shared``), else ``/work/shared``."""

from __future__ import annotations

from pathlib import Path

from vigil.settings import PROJECT_ROOT

SHARED = next(
    (p for p in (PROJECT_ROOT.parent / "shared", Path("/work/shared")) if p.is_dir()),
    Path("/work/shared"),
)
