"""docs/schema.md is exactly what ``python -m vigil.schema`` prints (one source of truth: the schema module)."""

from __future__ import annotations

import subprocess
import sys

from vigil.schema import VIGIL_MEASUREMENTS
from vigil.settings import PROJECT_ROOT


def test_docs_schema_md_is_generated_from_vigil_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "vigil.schema"], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    ).stdout
    on_disk = (PROJECT_ROOT / "docs" / "schema.md").read_text()
    assert on_disk == printed, "docs/schema.md is stale: run `python -m vigil.schema > docs/schema.md`"
    for measurement in VIGIL_MEASUREMENTS:
        assert f"## `{measurement.name}`" in on_disk
