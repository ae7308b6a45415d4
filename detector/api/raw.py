"""Raw API rows as the frames the feature code takes, and the detector's counter totals they are
rated against."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detector.api.request_models import RAW_FIELDS
from vigil.features.source import QUERY_GROUPS, group_key_name

#: The device name API counters are filed under (a raw row carries totals, not per-device values).
API_DEVICE = "api"

#: Counter fields (cumulative) of the raw definitions.
COUNTER_FIELDS = sorted(
    {f for fields in RAW_FIELDS.values() for f, (agg, _) in fields.items() if agg == "last"}
)


def _counter_totals(
    last: dict[tuple[str, str, str], tuple[int, float]],
) -> dict[tuple[str, str], tuple[int, float]]:
    """(host, field) -> (time, total over devices) where every device was last read at one time.

    A raw API row carries totals over interfaces / disks, so its rate is taken against the sum
    of the host's last per-device readings; if they were read at different times the sum means
    nothing and the first row of that host gets no rate (its feature reads as baseline).
    """
    acc: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for (host, _device, field), reading in last.items():
        acc.setdefault((host, field), []).append(reading)
    out = {}
    for key, readings in acc.items():
        times = {t for t, _ in readings}
        if len(times) == 1:
            out[key] = (readings[0][0], float(sum(v for _, v in readings)))
    return out


def raw_frames(rows: list[Any], hosts: list[str], t_ns: np.ndarray) -> dict[str, pd.DataFrame]:
    """Raw API rows as the query-group frames ``vigil.features.base_metrics`` takes."""
    frames: dict[str, pd.DataFrame] = {}
    t_ns = np.asarray(t_ns, dtype=np.int64)
    for key, fields in QUERY_GROUPS.items():
        measurement, _where, per_tag = key
        parts = [getattr(row, measurement, None) for row in rows]
        have = [i for i, values in enumerate(parts) if values is not None]
        data: dict[str, Any] = {
            "host": [hosts[i] for i in have],
            "time": pd.to_datetime(t_ns[have], unit="ns", utc=True),
        }
        for f in fields:
            data[f.field] = np.array(
                [np.nan if (v := getattr(parts[i], f.field, None)) is None else v for i in have], dtype=float
            )
        if per_tag:
            data[per_tag] = API_DEVICE
        frames[group_key_name(key)] = pd.DataFrame(data)
    return frames
