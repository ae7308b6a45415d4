"""The suite's table: one row per scenario report, as text or Markdown."""

from __future__ import annotations

from stress.report import DetectionReport

SUITE_COLUMNS = (
    "scenario",
    "expected",
    "outcome",
    "pass",
    "time to detect s",
    "peak score",
    "false alarms",
    "alarmed after load",
    "top feature",
    "own-metric alarms",
    "rest before s",
)


def table_rows(reports: list[DetectionReport]) -> list[tuple[str, ...]]:
    rows = []
    for r in reports:
        ttd = f"{r.time_to_detect_s:g}" if r.time_to_detect_s is not None and r.anomalous else "—"
        peak = f"{r.peak_score:.3g}" if r.peak_score is not None else "—"
        top = r.top_features[0]["feature"] if r.top_features else "—"
        expected = "alarm" if r.anomalous else "no alarm"
        own = f"{r.own_metric_alarms}/{r.alarms_in_window}" if r.alarms_in_window else "—"
        rest = (
            "—"
            if r.rest_before_s is None
            else f"{r.rest_before_s:g}" + ("" if r.quiet_before else " (not quiet)")
        )
        rows.append(
            (
                r.scenario,
                expected,
                r.outcome,
                "yes" if r.passed else "NO",
                ttd,
                peak,
                str(r.false_alarms),
                f"{r.alarmed_after_end}/{len(r.after_end)}" if r.after_end else "—",
                top,
                own,
                rest,
            )
        )
    return rows


def format_table(reports: list[DetectionReport], markdown: bool = False) -> str:
    rows = table_rows(reports)
    if markdown:
        out = ["| " + " | ".join(SUITE_COLUMNS) + " |", "|" + " --- |" * len(SUITE_COLUMNS)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(out)
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(SUITE_COLUMNS)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(SUITE_COLUMNS, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)
