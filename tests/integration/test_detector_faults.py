"""InfluxDB stopped for ~30 s mid-run and started again: the detector keeps looping, buffers
(and spills to disk) what it cannot write, retries with backoff, catches up, and in the end
every host-interval is scored exactly once and every stats point is written (nothing lost).

A private influxd on free ports (the session one must stay up for the other tests).
"""

from __future__ import annotations

import time

import pandas as pd
from support.detector_support import detector_settings, predictions, stats

from detector.factory import build_detector
from toolkit.seed import seed_history
from toolkit.stack.influxdb import start_influxdb
from vigil.influx import InfluxClient
from vigil.processes import free_port, stop_process

OUTAGE_S = 30


def test_influxdb_outage_loses_nothing_and_scores_every_interval_once(settings, tmp_path):
    http_port, rpc_port = free_port(), free_port()
    record = start_influxdb(tmp_path / "svc", http_port, rpc_port, name="influx-outage")
    try:
        s = detector_settings(
            settings.model_copy(update={"influx_port": http_port}),
            tmp_path / "run",
            "outage_raw",
            "outage_vigil",
            mlflow_port=free_port(),  # no registry: online-only
            buffer_max_points=4,  # tiny: the outage must spill to disk
            detector_max_catchup_intervals=6,
            detector_history_hours=2 / 60,
        )
        client = InfluxClient(s.influx)
        now = pd.Timestamp.now(tz="UTC").floor("10s")
        seeded = seed_history(
            client,
            s.influx,
            s.collection,
            start=now - pd.Timedelta(minutes=12),
            hours=0.2,
            hosts=3,
            seed=9,
            anomalies=False,
            progress=False,
        )
        begin = seeded.start + pd.Timedelta(minutes=2)
        det = build_detector(s, start=begin)
        calls = 0
        for _ in range(5):  # part of the window before the outage
            det.run_once()
            calls += 1
        assert begin.value < det.watermark_ns < seeded.end.value

        stop_process(record)
        watermark = det.watermark_ns
        t_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < t_end:
            det.run_once()  # never raises
            calls += 1
            time.sleep(0.5)
        assert det.watermark_ns == watermark, "nothing read, nothing skipped"
        assert det.metrics.errors["influx_read_unavailable"] >= 1
        assert det.metrics.errors["influx_write_unavailable"] >= 1
        assert det.sink.spilled > 0, "past buffer_max_points the buffer spills to disk"
        health = det.health()
        assert not health["ready"] and any("influxdb" in r for r in health["reasons"])

        record = start_influxdb(tmp_path / "svc", http_port, rpc_port, name="influx-outage")
        deadline = time.monotonic() + 120
        while det.watermark_ns < seeded.end.value or det.sink.buffered > 1:  # 1: this loop's stats point
            assert time.monotonic() < deadline, det.health()
            det.run_once()
            calls += 1
            time.sleep(0.2)
        det.sink.flush(force=True)
        assert det.sink.buffered == 0 and det.health()["ready"]

        expected = list(pd.date_range(begin, seeded.end, freq="10s", inclusive="left"))
        pred = predictions(client, s.influx.vigil_db)
        assert not pred.duplicated(["host", "time", "source"]).any()
        for source in ("online", "combined"):
            for host, part in pred[pred["source"] == source].groupby("host"):
                assert list(part["time"].sort_values()) == expected, (source, host)
        assert len(stats(client, s.influx.vigil_db)) == calls, "every stats point buffered through the outage"
    finally:
        stop_process(record)
