"""Merge the reports of ``vigil evaluate nab`` runs (one per --detector) into one Markdown table set.

    .venv/bin/python bench/nab_docs_table.py OUT_COMBINED OUT_ONLINE OUT_BATCH > table.md

The first report supplies the published detectors' rows; the others add their Vigil rows.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    parts = re.split(r"(?m)^(## .*)$", text)
    return parts[0], [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)]


def merge(folders: list[Path]) -> str:
    texts = [(f / "nab_report.md").read_text() for f in folders]
    head, secs = sections(texts[0])
    others = [dict(sections(t)[1]) for t in texts[1:]]
    out = [head.replace("# Vigil on NAB\n", "").strip(), ""]
    for title, body in secs:
        if title.startswith("## Settings"):
            continue
        lines = body.strip("\n").split("\n")
        table = [line for line in lines if line.startswith("| ")]
        extra = [line for o in others for line in o.get(title, "").split("\n") if line.startswith("| vigil")]
        rows = table[2:] + extra if table else []
        if title.startswith("## Profile"):
            rows.sort(key=lambda line: -float(line.split("|")[2]))
        text = [line for line in lines if not line.startswith("| ")]
        out += ["#" + title, "", "\n".join(text).strip("\n"), "", "\n".join(table[:2] + rows), ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(merge([Path(a) for a in sys.argv[1:]]))
