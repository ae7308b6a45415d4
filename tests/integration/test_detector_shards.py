"""Scale-out: two shards split the hosts by a stable hash; every host is scored exactly once."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
from support.detector_support import detector_settings, predictions

from detector.factory import build_detector
from detector.sharding import shard_of
from toolkit.seed import seed_history
from vigil.influx import InfluxClient
from vigil.processes import free_port


def test_shard_hash_is_stable_across_processes():
    hosts = [f"host-{i}" for i in range(50)]
    code = "from detector.sharding import shard_of; print([shard_of(f'host-{i}', 3) for i in range(50)])"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outs == {str([shard_of(h, 3) for h in hosts])}


def test_two_shards_score_every_host_exactly_once(settings, tmp_path):
    client = InfluxClient(settings.influx)
    dbs = ("shard_raw", "shard_vigil_0", "shard_vigil_1")
    for db in dbs:
        client.drop_database(db)
        client.create_database(db)
    try:
        start = pd.Timestamp("2026-02-01T00:00:00Z")
        hosts = [f"node-{i:02d}" for i in range(10)]
        s0 = detector_settings(
            settings,
            tmp_path / "r",
            "shard_raw",
            "shard_vigil_0",
            mlflow_port=free_port(),
            detector_history_hours=0.0,
        )
        seeded = seed_history(
            client,
            s0.influx,
            s0.collection,
            start=start,
            hours=0.1,
            hosts=hosts,
            anomalies=False,
            progress=False,
        )
        seen: list[pd.DataFrame] = []
        owned: list[set[str]] = []
        for index in (0, 1):
            s = s0.model_copy(
                update={"shard_index": index, "shard_count": 2, "influx_vigil_db": f"shard_vigil_{index}"}
            )
            det = build_detector(s, start=start)
            while det.watermark_ns < seeded.end.value:
                det.run_once(now=seeded.end.value / 1e9)
            det.checkpoint()
            owned.append(set(det.host_last_seen))
            seen.append(predictions(client, f"shard_vigil_{index}", "combined"))
        assert owned[0] and owned[1] and not owned[0] & owned[1]
        assert owned[0] | owned[1] == set(hosts)
        both = pd.concat(seen, ignore_index=True)
        assert not both.duplicated(["host", "time"]).any(), "a host-interval scored by both shards"
        n_intervals = int((seeded.end - start).total_seconds() // 10)
        assert both.groupby("host").size().to_dict() == {h: n_intervals for h in hosts}
    finally:
        for db in dbs:
            client.drop_database(db)
