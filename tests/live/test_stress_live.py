"""The stress suite against the live local stack — what ``vigil demo`` does, with short durations.

Real processes started by the stack manager (collector watching this machine and the target
app, the detector, the target app) on the session's real InfluxDB and MLflow; a champion trained,
registered and promoted by the real pipeline functions on seeded history (the Airflow path to the
same functions is covered by ``test_airflow_rest.py``). Then every scenario runs against the
running detector: each anomalous one must be detected and ``normal_busy_period`` must raise no
alarm, and every scenario must start on a quiet host. The measured table is printed (``-s``)
and written to the report folder.

Why the collector starts after training (as in ``vigil demo``): the monitored machine is the
one that seeds and trains; a baseline learnt during that minute of 100 % CPU has an inflated
spread for hours, and a later CPU spike looks small next to it (seen: cpu_spike missed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.evaluate import evaluate
from pipelines.extract import extract
from pipelines.registry import promote, register
from pipelines.search import FAMILIES, small_grid
from pipelines.train import train
from stress.runner import SUITE_ORDER, format_table, run_suite
from stress.scenarios import get_scenario
from toolkit.demo import DEMO_DURATION_S, DEMO_INTERVAL_S, DEMO_SETTLE_S, wait_detector_ready
from toolkit.seed import seed_history
from toolkit.stack import manager
from vigil.influx import InfluxClient
from vigil.processes import free_port
from vigil.settings import Settings

#: The demo's own load and rest per scenario (one definition, in toolkit.demo).
DURATION_S = DEMO_DURATION_S
SETTLE_S = DEMO_SETTLE_S


@pytest.fixture(scope="module")
def live(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    run_dir = tmp_path_factory.mktemp("live")
    s = mlflow_settings.model_copy(
        update={
            "run_dir": run_dir,
            "influx_raw_db": "live_raw",
            "influx_vigil_db": "live_vigil",
            "model_name": "vigil-live",
            "mlflow_experiment": "live",
            "hostname": "vigil-live-host",
            "detector_port": free_port(),
            "target_port": free_port(),
            "poll_interval_s": 2.0,
            "feature_interval_s": DEMO_INTERVAL_S,
            "collect_interval_s": float(DEMO_INTERVAL_S),
        }
    )
    client = InfluxClient(s.influx)
    for db in (s.influx.raw_db, s.influx.vigil_db):
        client.create_database(db)
    try:
        manager.up(s, only=["target"], echo=print)
        seeded = seed_history(
            client, s.influx, s.collection, hours=24, hosts=5, seed=s.random_seed, progress=False
        )
        ds = extract(s, start=seeded.start, end=seeded.end)
        # the retrain DAG's defaults: every family, the small grid
        trained = train(s, ds.path, families=tuple(FAMILIES), grid_overrides=small_grid(list(FAMILIES)))
        evaluate(s, trained.model_uri, ds.path, run_id=trained.run_id)
        version = register(s.influx, s.mlflow, trained.run_id, validation_passed=True).version
        assert promote(s, version=version).promoted
        manager.up(s, only=["detector", "collector"], echo=print)
        wait_detector_ready(s, str(version), print, timeout_s=600)
        yield s
    finally:
        manager.down(s, echo=print)
        for db in (s.influx.raw_db, s.influx.vigil_db):
            client.drop_database(db)


#: About 13 min in all: the module fixture (seed and train at the demo's 5 s interval, then the
#: host's 30-interval warm-up) and the suite (~9 min, resting until the host is quiet).
#: It measures the machine, so nothing else may load it meanwhile: ``scripts/test.sh`` runs it
#: first, by itself (``pytest -m live``), then everything else (after 30 min of other tests
#: their InfluxDB's compaction once raised a false alarm; docs/stress.md, Known limits).
@pytest.mark.live
@pytest.mark.timeout(2400)
def test_suite_against_the_live_stack_detects_every_anomaly_and_stays_quiet_when_busy(
    live: Settings, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    reports = run_suite(
        live,
        duration_s=DURATION_S,
        settle_s=SETTLE_S,
        stop_on_detect=True,
        out_dir=tmp_path / "suite",
        echo=print,
    )
    table = format_table(reports)
    print(f"\nsuite took {time.monotonic() - t0:.0f} s\n{table}")
    if os.environ.get("VIGIL_LIVE_REPORT_JSON"):  # bench/live_suite_bench.py reads every run's reports
        Path(os.environ["VIGIL_LIVE_REPORT_JSON"]).write_text(
            json.dumps([r.to_dict() for r in reports], default=str, indent=1)
        )
    assert [r.scenario for r in reports] == list(SUITE_ORDER)
    for r in reports:
        assert not r.load_errors, (r.scenario, r.load_errors)
        if get_scenario(r.scenario).anomalous:
            assert r.outcome == "detected", f"{r.scenario} not detected\n{table}"
            assert r.own_metric_alarms > 0, f"{r.scenario}: no alarm names its own metrics\n{table}"
            assert r.time_to_detect_s is not None and r.time_to_detect_s <= DURATION_S + 30
        else:
            assert r.outcome != "detected" and r.passed, f"{r.scenario} raised an alarm\n{table}"
        if r.rest_before_s is not None:
            assert r.quiet_before, f"{r.scenario} began on a host still alarming\n{table}"
    assert (tmp_path / "suite" / "suite.md").exists()
