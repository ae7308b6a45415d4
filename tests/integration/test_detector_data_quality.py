"""The data-quality guard end to end: values that cannot be real, written straight into a real
InfluxDB, read by a real detector.

* The corpus of issue 21 (``usage_idle=1e300``, ``usage_user=-5``, ``used_percent=-1e300``, a
  counter going backwards, points from the future, the largest double, negative gauges, zero
  CPUs) lands on host ``corpus`` as *extra* points beside the same good data as its twin
  ``twin``: the detector's base metrics of the two must then be identical, interval by
  interval, except where a counter reading was dropped (that interval has no rate). Every bad
  value is counted per host and kind (``/metrics``, ``vigil_detector_stats``), written as a
  ``vigil_data_quality`` event, and the baseline state stays finite with no RuntimeWarning.
* A point stamped beyond the wall clock + tolerance is counted once and kept out when its
  interval is read, while a real reading of that interval is scored (in real time, 2 s tolerance).
* A host whose data is mostly bad gets a data-quality incident and does not alarm, while a
  control host with the same (good) spike does.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.detector_support import detector_settings, fresh_databases, predictions, stats

from detector.factory import build_detector
from detector.service import Detector
from vigil import schema
from vigil.features import FeatureBuilder
from vigil.influx import InfluxClient, quote_ident
from vigil.processes import free_port
from vigil.settings import Settings

START = pd.Timestamp("2026-05-04T00:00:00Z")
T0 = int(START.value // 10**9)
STEP = 10


def t_of(i: int) -> int:
    return T0 + STEP * i


def good_lines(host: str, i: int, *, mem: float | None = None) -> list[str]:
    """One gather of a healthy host at interval ``i`` (the same numbers for every host)."""
    t = t_of(i)
    used = 40 + i % 2 if mem is None else mem
    return [
        f"cpu,cpu=cpu-total,host={host} usage_idle={90 - i % 3},usage_iowait=1.0,usage_user=5 {t}",
        f"mem,host={host} used_percent={used} {t}",
        f"system,host={host} load1=0.5,n_cpus=4i {t}",
        f"processes,host={host} total=200i {t}",
        f"net,host={host},interface=eth0 bytes_recv={1000 * i + 10**6}i,bytes_sent={500 * i + 10**6}i {t}",
        f"diskio,host={host},name=sda read_bytes={4000 * i}i,write_bytes={8000 * i}i {t}",
    ]


def corpus_lines(wall_s: int) -> list[str]:
    """Issue 21's bad values, each an extra point 5 s into its interval (or a day ahead of the
    wall clock: "the future" is what the detector cannot have observed yet)."""
    h = "host=corpus"
    return [
        f"cpu,cpu=cpu-total,{h} usage_idle=1e300,usage_iowait=1.0 {t_of(10) + 5}",
        f"cpu,cpu=cpu-total,{h} usage_user=-5 {t_of(12) + 5}",  # a field Vigil does not read
        f"mem,{h} used_percent=-1e300 {t_of(14) + 5}",
        f"mem,{h} used_percent=1.7976931348623157e308 {t_of(16) + 5}",  # the largest double
        f"system,{h} load1=-0.5,n_cpus=0i {t_of(18) + 5}",
        f"processes,{h} total=-3i {t_of(20) + 5}",
        # a counter that goes backwards for one reading (the newest of its interval), then returns
        f"net,{h},interface=eth0 bytes_recv=5i,bytes_sent={500 * 22 + 10**6}i {t_of(22) + 5}",
        f"diskio,{h},name=sda read_bytes=-7i,write_bytes={8000 * 24}i {t_of(24) + 5}",
        f"mem,{h} used_percent=55 {wall_s + 86_400}",  # a day in the future
    ]


def dq_counts(det: Detector) -> dict[tuple[str, str], float]:
    """(host, kind) -> values, as /metrics renders the data-quality counter."""
    text = det.metrics.render().decode()
    return {
        (s.labels["host"], s.labels["kind"]): s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "vigil_detector_data_quality"
        for s in fam.samples
        if s.name.endswith("_total")
    }


def assert_baseline_finite(builder: FeatureBuilder) -> None:
    """Means and variances of every host's baselines are finite; the short windows hold only
    finite values or NaN (= missing), never inf."""
    _, _, _, state, *_ = builder.state()
    for name in ("mu", "var", "mu_vol", "var_vol"):
        arr = getattr(state, name)
        assert np.isfinite(arr).all(), (name, arr[~np.isfinite(arr)][:5])
    for name in ("buf_x", "buf_z"):
        assert not np.isinf(getattr(state, name)).any(), name


def run_until(det: Detector, end: pd.Timestamp) -> None:
    while det.watermark_ns < end.value:
        det.run_once(now=end.value / 1e9)


def recording(det: Detector) -> list[pd.DataFrame]:
    """Every base-metric frame the detector's feature update produces (observation only)."""
    seen: list[pd.DataFrame] = []
    update = det.pipeline.update

    def update_and_keep(raw):
        base, features = update(raw)
        seen.append(base)
        return base, features

    det.pipeline.update = update_and_keep
    return seen


@pytest.fixture()
def dbs(settings: Settings):
    client = InfluxClient(settings.influx)
    with fresh_databases(client, "dq_raw", "dq_vigil"):
        yield client


def test_the_corpus_is_kept_out_counted_and_never_reaches_a_baseline(
    dbs: InfluxClient, settings: Settings, tmp_path: Path
) -> None:
    client = dbs
    n1, n2 = 40, 80  # phase 1: intervals [0, 40); phase 2 written after phase 1 was read
    end1, end2 = START + pd.Timedelta(seconds=STEP * n1), START + pd.Timedelta(seconds=STEP * n2)
    client.write_lines(
        "dq_raw",
        [ln for i in range(n1) for h in ("corpus", "twin") for ln in good_lines(h, i)]
        + corpus_lines(int(time.time())),
        precision="s",
    )
    s = detector_settings(
        settings,
        tmp_path,
        "dq_raw",
        "dq_vigil",
        mlflow_port=free_port(),  # nothing listens: online-only
        detector_history_hours=0.0,
        detector_max_catchup_intervals=6,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = build_detector(s, start=START)
        bases = recording(det)
        run_until(det, end1)
        assert_baseline_finite(det.pipeline.builder)
        client.write_lines(
            "dq_raw",
            [ln for i in range(n1, n2) for h in ("corpus", "twin") for ln in good_lines(h, i)],
            precision="s",
        )
        run_until(det, end2)
        det.run_once(now=end2.value / 1e9)
    ours = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not ours, [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]
    assert_baseline_finite(det.pipeline.builder)

    # every bad value counted once, per host and kind; usage_user is not read at all
    assert dq_counts(det) == {
        ("corpus", "out_of_range"): 7.0,  # usage_idle, used_percent x2, load1, n_cpus, total, read_bytes
        ("corpus", "counter_backwards"): 1.0,
        ("corpus", "future_time"): 1.0,  # found on every iteration, counted once
    }
    assert det.health()["data_quality"]["incident_hosts"] == 0  # a few bad values: no incident

    # the same good data gives the same base metrics: the bad values never reached them
    base = pd.concat(bases, ignore_index=True)
    metrics = [c for c in base.columns if c not in ("host", "time")]
    corpus = base[base["host"] == "corpus"].set_index("time")[metrics].sort_index()
    twin = base[base["host"] == "twin"].set_index("time")[metrics].sort_index()
    assert len(corpus) == len(twin) == n2
    dropped = corpus.index == pd.Timestamp(t_of(22), unit="s", tz="UTC")
    assert corpus.loc[dropped, "net_rx"].isna().all()  # the backward reading's interval has no rate
    pd.testing.assert_frame_equal(corpus[~dropped], twin[~dropped])
    # the rate after it spans the dropped reading: the twin's rate, not a burst from 5 bytes
    after = pd.Timestamp(t_of(23), unit="s", tz="UTC")
    assert corpus.at[after, "net_rx"] == twin.at[after, "net_rx"]

    # predictions: finite, and the corpus host alarms no more than its twin
    pred = predictions(client, "dq_vigil", "combined")
    assert np.isfinite(pred["score"].to_numpy(float)).all()
    alarms = pred[pred["is_anomaly"] == 1].groupby("host").size().to_dict()
    assert alarms.get("corpus", 0) <= alarms.get("twin", 0), alarms

    # events in vigil_data_quality, filed where they were found
    events = client.query_df("dq_vigil", f"SELECT * FROM {quote_ident(schema.DATA_QUALITY.name)}")
    by = {(r.kind, r.field): r for r in events.itertuples()}
    assert set(events["host"]) == {"corpus"}
    assert by[("out_of_range", "cpu.usage_idle")].value == 1e300
    assert by[("out_of_range", "mem.used_percent")].count == 1  # two, in two intervals
    mem = events[(events["field"] == "mem.used_percent") & (events["kind"] == "out_of_range")]
    assert sorted(mem["value"]) == [-1e300, 1.7976931348623157e308]
    assert by[("counter_backwards", "net.bytes_recv")].value == 5
    assert by[("counter_backwards", "net.bytes_recv")].time == pd.Timestamp(t_of(22), unit="s", tz="UTC")
    future = events[events["kind"] == "future_time"]
    assert len(future) == 1 and int(future["count"].iloc[0]) == 1
    assert future["time"].iloc[0] <= pd.Timestamp.now(tz="UTC")  # filed when found, not a day ahead
    stat = stats(client, "dq_vigil").sort_values("time").iloc[-1]
    assert (stat["dq_values"], stat["dq_out_of_range"], stat["dq_future_time"], stat["dq_hosts"]) == (
        9,
        7,
        1,
        1,
    )
    assert stat["dq_incidents"] == 0


def test_a_host_with_mostly_bad_data_gets_a_data_quality_incident_not_an_alarm(
    dbs: InfluxClient, settings: Settings, tmp_path: Path
) -> None:
    """Both hosts have 49 h of healthy history (so their own per-series evidence is mature: the
    detector runs online-only here); at intervals [50, 56) ``spiky`` and ``broken`` both report
    memory at 99 % (from 40), and ``broken`` sends impossible values in every other field.
    ``spiky`` alarms (the control); ``broken`` has a data-quality incident instead, which closes
    once its data is good again."""
    client = dbs
    fleet: list[str] = []
    bad_from, bad_to, n = 50, 56, 75
    lines = []
    for i in range(-49 * 360, 0, 6):  # one gather a minute for 49 h before START (no counters)
        for h in ("spiky", "broken"):
            lines += [ln for ln in good_lines(h, i) if not ln.startswith(("net,", "diskio,"))]
    for i in range(n):
        spike = 99.0 if bad_from <= i < bad_to else None
        for h in fleet:
            lines += good_lines(h, i)
        lines += good_lines("spiky", i, mem=spike)
        if spike is None:
            lines += good_lines("broken", i)
        else:
            t = t_of(i)
            lines += [
                f"cpu,cpu=cpu-total,host=broken usage_idle=150,usage_iowait=-1 {t}",
                f"mem,host=broken used_percent=99 {t}",
                f"system,host=broken load1=-1,n_cpus=0i {t}",
                f"processes,host=broken total=-1i {t}",
                f"net,host=broken,interface=eth0 bytes_recv=-1i,bytes_sent=-1i {t}",
                f"diskio,host=broken,name=sda read_bytes=-1i,write_bytes=-1i {t}",
            ]
    client.write_lines("dq_raw", lines, precision="s")
    s = detector_settings(
        settings,
        tmp_path,
        "dq_raw",
        "dq_vigil",
        mlflow_port=free_port(),
        detector_history_hours=50.0,
        detector_max_catchup_intervals=2,
    )
    det = build_detector(s, start=START)
    during = START + pd.Timedelta(seconds=STEP * (bad_from + 4))
    run_until(det, during)
    health = det.health()["data_quality"]
    assert health["incidents"] == ["broken"] and health["incident_hosts"] == 1
    assert "vigil_detector_data_quality_incidents 1.0" in det.metrics.render().decode()
    run_until(det, START + pd.Timedelta(seconds=STEP * n))
    assert det.health()["data_quality"]["incident_hosts"] == 0

    pred = predictions(client, "dq_vigil", "combined")
    spike_window = pred[(pred["time"] >= START + pd.Timedelta(seconds=STEP * bad_from))]
    alarms = spike_window[spike_window["is_anomaly"] == 1].groupby("host").size().to_dict()
    assert alarms.get("spiky", 0) >= 1, f"the control must alarm, or this test proves nothing: {alarms}"
    assert alarms.get("broken", 0) == 0, alarms

    q = f"SELECT * FROM {quote_ident(schema.DATA_QUALITY.name)} WHERE {quote_ident('kind')} = 'incident'"
    incident = client.query_df("dq_vigil", q).sort_values("time")
    assert set(incident["host"]) == {"broken"}
    assert incident["state"].tolist()[0] == "open" and incident["state"].tolist()[-1] == "closed"
    opened = incident[incident["state"] == "open"].iloc[0]
    assert opened["time"] == START + pd.Timedelta(seconds=STEP * bad_from)
    assert opened["share"] == pytest.approx(0.9)  # 9 of its 10 values per gather were bad
    assert "out_of_range" in opened["detail"]
    closed = incident[incident["state"] == "closed"].iloc[0]
    assert closed["time"] < START + pd.Timedelta(seconds=STEP * (bad_to + 6))  # within a window of good data
    assert (det.metrics.dq_incidents, det.metrics.dq_hosts) == (0, {"broken"})


def test_a_point_from_the_future_is_counted_once_and_kept_out_when_its_time_comes(
    dbs: InfluxClient, settings: Settings, tmp_path: Path
) -> None:
    """Real time (at most ~20 s): the detector's look-out finds a point stamped 7-17 s ahead of the
    wall clock (tolerance 2 s); once its interval is over and read, that point is kept out and the
    host's real reading of the interval is what gets scored — like a host that reported at once.

    The history ends at most 2 s after ``wall`` (the tolerance), so no history point can ever be
    taken for a future one however the wall clock falls in its interval."""
    client = dbs
    wall = time.time()
    t_future = int((wall + 2) // STEP * STEP + STEP)  # last history point t_future - STEP <= wall + 2
    start = pd.Timestamp(t_future - 12 * STEP, unit="s", tz="UTC")
    history = [
        f"mem,host={h} used_percent={40 + k % 2} {t_future - STEP * (12 - k)}"
        for k in range(12)
        for h in ("a", "b")
    ]
    client.write_lines("dq_raw", [*history, f"mem,host=a used_percent=77 {t_future + 5}"], precision="s")
    s = detector_settings(
        settings,
        tmp_path,
        "dq_raw",
        "dq_vigil",
        mlflow_port=free_port(),
        detector_history_hours=0.0,
        data_quality_future_tolerance_s=2.0,
    )
    det = build_detector(s, start=start)
    bases = recording(det)
    while det.watermark_ns < t_future * 10**9:
        det.run_once()  # the wall clock: catches up to the interval before the future point
    assert dq_counts(det) == {("a", "future_time"): 1.0}
    det.run_once()
    assert dq_counts(det) == {("a", "future_time"): 1.0}  # seen again by the look-out: still once
    time.sleep(max(0.0, t_future + STEP + 0.5 - time.time()))  # until its interval is over
    client.write_lines(
        "dq_raw", [f"mem,host={h} used_percent=40 {t_future}" for h in ("a", "b")], precision="s"
    )
    while det.watermark_ns < (t_future + STEP) * 10**9:
        det.run_once()
    base = pd.concat(bases, ignore_index=True)
    at = base[base["time"] == pd.Timestamp(t_future, unit="s", tz="UTC")].set_index("host")["mem_used_pct"]
    assert at.to_dict() == {"a": 40.0, "b": 40.0}  # not (40 + 77) / 2 for a
    assert dq_counts(det) == {("a", "future_time"): 1.0}
    assert not det.quality.future.points  # forgotten once its interval was read
