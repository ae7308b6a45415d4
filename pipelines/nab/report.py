"""The NAB report: one table per profile (Vigil beside the published detectors, scored by
the same scorer on the same files) plus event-level metrics; Markdown and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.nab.events import EventMetrics
from pipelines.nab.scorer import PROFILES, ProfileResult

#: NAB's published whole-corpus standard/low-FP/low-FN scores (SCOREBOARD.md), for context only.
PUBLISHED_CORPUS = {
    "ARTime": (74.85, 65.15, 80.36),
    "numenta": (70.10, 63.12, 74.32),
    "contextOSE": (69.90, 66.98, 73.18),
    "randomCutForest": (51.72, 38.36, 59.75),
    "twitterADVec": (47.06, 33.61, 53.50),
    "null": (0.0, 0.0, 0.0),
}


@dataclass
class DetectorRow:
    name: str
    results: dict[str, ProfileResult]
    events: EventMetrics  # at the standard profile's optimal threshold
    own_alarms: EventMetrics | None = None  # Vigil only: at its own decision rule
    own_alarm_scores: dict[str, ProfileResult] | None = None


@dataclass
class NabReport:
    files: list[str]
    n_windows: int
    rows: list[DetectorRow]
    settings: dict[str, Any] = field(default_factory=dict)
    categories: list[dict[str, Any]] = field(default_factory=list)

    def sorted_rows(self, profile: str) -> list[DetectorRow]:
        return sorted(self.rows, key=lambda r: -r.results[profile].normalised)

    def to_json(self) -> dict[str, Any]:
        def enc(obj: Any) -> Any:
            if hasattr(obj, "__dataclass_fields__"):
                return {k: enc(v) for k, v in asdict(obj).items()}
            if isinstance(obj, dict):
                return {k: enc(v) for k, v in obj.items()}
            if isinstance(obj, float) and obj == float("inf"):
                return None
            return obj

        return {
            "files": self.files,
            "n_windows": self.n_windows,
            "settings": self.settings,
            "categories": self.categories,
            "detectors": {
                r.name: {
                    "profiles": {p: enc(asdict(v)) for p, v in r.results.items()},
                    "events_at_standard_threshold": enc(asdict(r.events)),
                    "own_alarms": enc(asdict(r.own_alarms)) if r.own_alarms else None,
                    "own_alarms_profiles": (
                        {p: enc(asdict(v)) for p, v in r.own_alarm_scores.items()}
                        if r.own_alarm_scores
                        else None
                    ),
                }
                for r in self.rows
            },
        }

    def to_markdown(self) -> str:
        lines = [
            "# Vigil on NAB",
            "",
            f"{len(self.files)} files, {self.n_windows} anomaly windows; every detector scored by Vigil's "
            "re-implementation of NAB's scorer on the same files (one optimised threshold per "
            "detector and profile). 0 = never alarms, 100 = perfect.",
            "",
        ]
        for profile in PROFILES:
            lines += [
                f"## Profile `{profile}`",
                "",
                "| detector | score (these files) | threshold | TP | FP | FN | published, whole corpus |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            idx = list(PROFILES).index(profile)
            for r in self.sorted_rows(profile):
                res = r.results[profile]
                pub = PUBLISHED_CORPUS.get(r.name)
                pub_s = f"{pub[idx]:.2f}" if pub else "—"
                thr = "—" if res.threshold == float("inf") else f"{res.threshold:.4g}"
                lines.append(
                    f"| {r.name} | {res.normalised:.2f} | {thr} | {res.tp} | {res.fp} | {res.fn} | {pub_s} |"
                )
            lines.append("")
        lines += [
            "## Events (at each detector's standard-profile threshold)",
            "",
            "| detector | windows caught | recall | FP | FP per 1,000 rows | median delay (rows / min) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.sorted_rows("standard"):
            lines.append(_event_row(r.name, r.events))
        own = [r for r in self.rows if r.own_alarms]
        if own:
            lines += [
                "",
                "## Vigil at its own decision rule (no threshold optimisation)",
                "",
                "The pages Vigil raises by itself (`alarm` of the combined decision: flagged, and not "
                "within the alarm grouping of an earlier page), scored as a 0/1 anomaly_score.",
                "",
                "| detector | windows caught | recall | FP | FP per 1,000 rows | median delay (rows / min) |"
                " standard | low FP | low FN |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for r in own:
                s = r.own_alarm_scores or {}
                extra = " | ".join(f"{s[p].normalised:.2f}" for p in PROFILES if p in s)
                lines.append(_event_row(r.name, r.own_alarms) + f" {extra} |")
        if self.categories:
            lines += [
                "",
                "## Vigil by category (at its standard-profile threshold)",
                "",
                "| category | files | windows caught | FP | raw score |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for c in self.categories:
                lines.append(
                    f"| {c['category']} | {c['files']} | {c['caught']}/{c['windows']} | {c['fp']} | {c['raw']:.2f} |"
                )
        if self.settings:
            lines += [
                "",
                "## Settings",
                "",
                "```json",
                json.dumps(self.settings, indent=2, default=str),
                "```",
            ]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        md, js = out_dir / "nab_report.md", out_dir / "nab_report.json"
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_json(), indent=2, default=str))
        return md, js


def _event_row(name: str, e: EventMetrics) -> str:
    delay = (
        "—" if e.median_delay_rows is None else f"{e.median_delay_rows:.0f} / {e.median_delay_minutes:.0f}"
    )
    return (
        f"| {name} | {e.caught}/{e.windows} | {e.recall:.2f} | {e.false_positives} | "
        f"{e.fp_per_1000:.2f} | {delay} |"
    )
