"""One small conversion shared by readers of user- or InfluxDB-supplied values."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` if that is a finite number, else None (NaN, inf, text, None).

    Why None rather than NaN: the callers put the value into JSON (API answers, reports),
    where NaN is not valid.

    >>> finite_or_none("1.5"), finite_or_none(float("nan")), finite_or_none("x"), finite_or_none(None)
    (1.5, None, None, None)
    """
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
