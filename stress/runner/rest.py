"""The suite's rest between scenarios: until the detector sees the host quiet again, and what
keeps it alarming meanwhile."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from stress.report import combined_of, fetch_predictions, top_features
from stress.runner.watch import Echo
from vigil.influx import InfluxClient, InfluxError
from vigil.settings import InfluxSettings

#: The suite's rest ends when this many of the detector's newest intervals, all begun after the
#: previous load ended, have no alarm: the next scenario then starts from a quiet host, and
#: its alarms are its own (the features' short window keeps a load's trace for a minute).
QUIET_INTERVALS = 2
#: ...but a rest never lasts longer than this; a scenario that starts on a host still alarming
#: says so in its report (``quiet_before``).
MAX_REST_S = 150.0


def _combined_since(
    client: InfluxClient, influx: InfluxSettings, host: str, since_ns: int
) -> pd.DataFrame | None:
    """The detector's combined predictions of ``host`` from ``since_ns`` on (None if unreadable)."""
    try:
        return combined_of(
            fetch_predictions(client, influx.vigil_db, host, since_ns, time.time_ns() + 60 * 10**9)
        )
    except InfluxError:
        return None


def quiet_since(client: InfluxClient, influx: InfluxSettings, host: str, since_ns: int) -> int | None:
    """Start (ns) of the oldest of the detector's last :data:`QUIET_INTERVALS` combined intervals
    of ``host`` begun at or after ``since_ns``, if those exist and none alarms; else None."""
    frame = _combined_since(client, influx, host, since_ns)
    if frame is None:
        return None
    recent = frame.tail(QUIET_INTERVALS)
    if len(recent) < QUIET_INTERVALS or (recent["is_anomaly"] == 1).any():
        return None
    return int(recent["time"].astype("int64").iloc[0])


@dataclass(frozen=True)
class Rest:
    """How a rest between two scenarios ended."""

    seconds: float
    quiet: bool
    quiet_since_ns: int  # where the host's quiet began (the rest's end if it never was quiet)


def rest_until_quiet(
    influx: InfluxSettings,
    host: str,
    since_ns: int,
    *,
    min_s: float,
    max_s: float = MAX_REST_S,
    echo: Echo = print,
    client: InfluxClient | None = None,
) -> Rest:
    """Rest at least ``min_s``, then until the host is quiet (:func:`quiet_since`), at most ``max_s``.

    Why not a fixed rest: how long a load's trace keeps a host alarming depends on the load; a
    fixed 10 s let a scenario be "detected" on the previous one's tail (seen: memory_leak
    flagged on ``cpu_busy_vol`` 3 s in). The next scenario's lookback for false alarms starts
    where the quiet began, so the previous tail is not counted against it.
    """
    client = client or InfluxClient(influx)
    began = time.monotonic()
    last_echo = began
    time.sleep(min_s)
    while True:
        rested = time.monotonic() - began
        since = quiet_since(client, influx, host, since_ns)
        if since is not None:
            echo(f"rested {rested:.0f} s: the detector sees {host} quiet again")
            return Rest(rested, True, since)
        if rested >= max_s:
            echo(f"rested {rested:.0f} s: {host} still alarming (or not scored yet), starting anyway")
            return Rest(rested, False, time.time_ns())
        if time.monotonic() - last_echo >= 10:
            last_echo = time.monotonic()
            echo(
                f"resting until {host} is quiet again ({rested:.0f}/{max_s:g} s)"
                + alarm_summary(client, influx, host, since_ns)
            )
        time.sleep(min(1.0, max(0.2, max_s - rested)))  # a cheap query; 1 s keeps the rest tight


def alarm_summary(client: InfluxClient, influx: InfluxSettings, host: str, since_ns: int) -> str:
    """``"; 3 alarms since, naming net_rx_vol x3, ..."`` for a rest's progress line ("" if none).

    Why: a rest that never ends must say what keeps the host alarming, in the log people read
    (the suite's reports only look at each scenario's own window)."""
    frame = _combined_since(client, influx, host, since_ns)
    if frame is None:
        return ""
    alarms = frame[frame["is_anomaly"] == 1] if not frame.empty else frame
    if alarms.empty:
        return ""
    named = ", ".join(f"{f['feature']} x{f['alarms']}" for f in top_features(alarms))
    return f"; {len(alarms)} alarmed interval(s) since, naming {named or 'no feature'}"
