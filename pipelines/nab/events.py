"""Event-level view of alarms against NAB windows (what an operator feels, beside NAB's score).

Rows in the probationary period are ignored like NAB does. A window is *caught* when an
alarm falls inside it; every alarm outside all windows is a false positive; the delay
is from the window's first row to its first alarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.nab.scorer import FileLayout

MINUTES_PER_ROW = 5.0  # NAB's AWS series are 5-minute samples


@dataclass
class EventMetrics:
    windows: int
    caught: int
    recall: float
    false_positives: int
    scored_rows: int
    fp_per_1000: float
    median_delay_rows: float | None

    @property
    def median_delay_minutes(self) -> float | None:
        return None if self.median_delay_rows is None else self.median_delay_rows * MINUTES_PER_ROW


def event_metrics(layouts: Mapping[str, FileLayout], alarms: Mapping[str, Sequence[bool]]) -> EventMetrics:
    windows = caught = fps = rows = 0
    delays: list[int] = []
    for key, lay in layouts.items():
        a = np.asarray(alarms[key]).astype(bool) & lay.scored
        rows += int(lay.scored.sum())
        for left, right in lay.windows:
            windows += 1
            hits = np.flatnonzero(a[left : right + 1])
            if len(hits):
                caught += 1
                delays.append(int(hits[0]))
        fps += int((a & (lay.window_of < 0)).sum())
    return EventMetrics(
        windows=windows,
        caught=caught,
        recall=caught / windows if windows else 0.0,
        false_positives=fps,
        scored_rows=rows,
        fp_per_1000=1000.0 * fps / rows if rows else 0.0,
        median_delay_rows=float(np.median(delays)) if delays else None,
    )
