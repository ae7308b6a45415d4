"""Watching the detector while a scenario runs: which host, how long alarms still count, and the
polls of its combined predictions (during the load, then until they cover the grace period)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from stress.report import Window, combined_of, fetch_predictions
from stress.scenarios import Scenario
from vigil.influx import InfluxClient, InfluxError
from vigil.settings import CollectionSettings, DetectorSettings, FeatureSettings, InfluxSettings, Settings

Echo = Callable[[str], None]


def monitored_host(collection: CollectionSettings) -> str:
    """The host tag the collector writes for this machine."""
    return collection.hostname or socket.gethostname()


def default_grace_s(features: FeatureSettings) -> float:
    """Alarms this long after the load still count: three intervals, at least 30 s."""
    return max(30.0, 3.0 * features.interval_s)


def default_max_lag_s(features: FeatureSettings, detector: DetectorSettings) -> float:
    """How long to wait past the grace for the detector's predictions to arrive."""
    return features.interval_s + detector.allowed_lateness_s + 2 * detector.poll_interval_s


@dataclass
class _Watch:
    """What the runner's polls have seen so far."""

    detected_at_s: float | None = None  # seconds since the window start when first seen
    covered_until_ns: int | None = None


def _poll(
    client: InfluxClient,
    influx: InfluxSettings,
    features: FeatureSettings,
    host: str,
    start_ns: int,
    detect_end_ns: int,
    began: float,
    watch: _Watch,
) -> None:
    """One poll of the combined predictions since the window start; updates ``watch``."""
    interval_ns = int(features.interval_s * 1e9)
    try:
        frame = combined_of(
            fetch_predictions(
                client, influx.vigil_db, host, start_ns - interval_ns, detect_end_ns + 3600 * 10**9
            )
        )
    except InfluxError:
        return  # InfluxDB hiccup: the next poll tries again, the final report re-reads everything
    if frame.empty:
        return
    t_ns = frame["time"].astype("int64")
    watch.covered_until_ns = int(t_ns.max())
    hits = frame[(frame["is_anomaly"] == 1) & (t_ns + interval_ns > start_ns) & (t_ns < detect_end_ns)]
    if not hits.empty and watch.detected_at_s is None:
        watch.detected_at_s = time.monotonic() - began


class _Detected(Exception):
    """Raised inside the load wait to end it early (``stop_on_detect``)."""


def _wait_for_predictions(
    client: InfluxClient,
    settings: Settings,
    scenario: Scenario,
    host: str,
    window: Window,
    began: float,
    watch: _Watch,
    max_lag_s: float,
    echo: Echo,
) -> None:
    """Poll until the predictions cover the grace period (or, for an anomaly, an alarm is seen
    and the predictions reach the window's end), giving up ``max_lag_s`` after the grace."""
    interval_ns = int(settings.features.interval_s * 1e9)
    give_up = time.time() + (window.detect_end_ns - time.time_ns()) / 1e9 + max_lag_s
    last_echo = 0.0
    while True:
        _poll(
            client,
            settings.influx,
            settings.features,
            host,
            window.start_ns,
            window.detect_end_ns,
            began,
            watch,
        )
        covered = watch.covered_until_ns
        if covered is not None and covered + interval_ns >= window.detect_end_ns:
            return
        if (
            scenario.anomalous
            and watch.detected_at_s is not None
            and covered is not None
            and covered + interval_ns >= window.end_ns
        ):
            return
        if time.time() >= give_up:
            seen = pd.Timestamp(covered, unit="ns", tz="UTC").isoformat() if covered else "nothing"
            echo(f"[{scenario.name}] stopped waiting: predictions cover until {seen}")
            return
        if time.monotonic() - last_echo >= 10:
            last_echo = time.monotonic()
            left = give_up - time.time()
            state = "alarm seen" if watch.detected_at_s is not None else "no alarm yet"
            echo(f"[{scenario.name}] waiting for the detector ({state}, at most {left:.0f} s more)")
        time.sleep(min(settings.detector.poll_interval_s, max(0.2, give_up - time.time())))
