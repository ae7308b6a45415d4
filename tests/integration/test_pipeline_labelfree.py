"""The batch loop on a fleet without labels, on a real InfluxDB and MLflow server.

1. Seeded history with ``vigil_labels`` dropped (what a real Telegraf fleet looks like): extract,
   validate (the label-rate check is skipped, saying so), train (injected-anomaly objective),
   evaluate (the served decision over the holdout), register and promote all run to the end, and
   MLflow holds the champion's injected-event recall and false alarms per host-day.
2. Operator feedback: alarms the champion raises on that history are marked false positives (the
   fleet's only labels); the retrain is promoted, and when the new champion back-tests the same
   window those windows stay quiet.
3. Bad input: a window too short to inject into is a clear error before anything is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest import backtest
from pipelines.common import PipelineError, mlflow_client, read_dataset, time_split
from pipelines.evaluate import evaluate
from pipelines.extract import extract
from pipelines.registry import promote, register
from pipelines.search import small_grid
from pipelines.synthetic import synthetic_history
from pipelines.train import train
from pipelines.validate import validate
from toolkit.seed import seed_history
from vigil.influx import InfluxClient
from vigil.labels import FALSE_POSITIVE, Label, add_labels
from vigil.pyfunc import load_champion
from vigil.schema import LABELS
from vigil.settings import Settings

FAMILIES = ("isolation_forest", "lof", "gaussian_mixture")
#: a Monday, 00:00 UTC (see the fixture)
FLEET_START = pd.Timestamp("2026-11-30T00:00:00Z")
SERVED = ("holdout_injected_event_recall", "holdout_false_alarms_per_host_day", "holdout_median_ttd_s")


@dataclass
class Fleet:
    settings: Settings
    start: pd.Timestamp
    end: pd.Timestamp
    seeded_labels: pd.DataFrame


@pytest.fixture(scope="module")
def fleet(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    s = mlflow_settings.model_copy(
        update={
            "run_dir": tmp_path_factory.mktemp("labelfree"),
            "influx_raw_db": "lf_raw",
            "influx_vigil_db": "lf_vigil",
            "model_name": "vigil-labelfree",
            "mlflow_experiment": "labelfree",
        }
    )
    client = InfluxClient(s.influx)
    # a fixed start, not "the last 12 hours": the synthetic load follows the hour of day and the
    # weekday, so a fleet seeded before "now" made this test's data, and the gates' verdicts on a
    # model retrained from two false positives, depend on when it ran (CI on a Monday morning was
    # refused as too fragile by 0.0007 F1; 2 of 9 start hours tried give a refusal)
    seeded = seed_history(
        client, s.influx, s.collection, start=FLEET_START, hours=12, hosts=5, seed=17, progress=False
    )
    client.query(s.influx.vigil_db, f'DROP MEASUREMENT "{LABELS.name}"', method="POST")
    yield Fleet(s, pd.Timestamp(seeded.start), pd.Timestamp(seeded.end), seeded.labels)
    client.drop_database(s.influx.raw_db)
    client.drop_database(s.influx.vigil_db)


def _retrain(s: Settings, start: pd.Timestamp, end: pd.Timestamp):
    ds = extract(s, start=start, end=end)
    report = validate(s, ds.path, now=end)
    trained = train(s, ds.path, families=FAMILIES, grid_overrides=small_grid(FAMILIES))
    ev = evaluate(s, trained.model_uri, ds.path)
    version = register(s.influx, s.mlflow, trained.run_id, validation_passed=report.success)
    return ds, report, trained, ev, version


def test_a_fleet_without_labels_retrains_end_to_end(fleet: Fleet) -> None:
    s = fleet.settings
    ds, report, trained, ev, version = _retrain(s, fleet.start, fleet.end)
    assert ds.labelled_rows == 0 and ds.label_windows == 0 and ds.raw_path.exists()
    assert report.success and any("label" in why for why in report.skipped)
    assert trained.best_metrics["val_injected_recall"] > 0.5
    assert trained.best_metrics["val_injected_events"] >= 10
    for key in SERVED:
        assert np.isfinite(ev.metrics[key]), key
    assert ev.metrics["holdout_real_events"] == 0  # nothing labelled anywhere
    decision = promote(s)
    assert decision.promoted and decision.reason == "no champion yet"
    assert load_champion(s.mlflow).version == version.version
    client = mlflow_client(s.mlflow)
    logged = client.get_run(trained.run_id).data.metrics
    for key in SERVED:
        assert logged[key] == pytest.approx(ev.metrics[key]), key
    tags = client.get_model_version(s.mlflow.model_name, str(version.version)).tags
    assert (
        "metric.holdout_injected_event_recall" in tags and "metric.holdout_false_alarms_per_host_day" in tags
    )
    params = client.get_run(trained.run_id).data.params
    assert params["objective"] == "injected" and params["train_label_sources"] == "operator,stress"
    # the hidden ground truth scores the label-free champion afterwards (never seen by training)
    print(
        f"\nlabel-free champion {trained.best_cell}: injected events caught "
        f"{ev.metrics['holdout_injected_event_recall']:.2f} of {ev.metrics['holdout_injected_events']:.0f}, "
        f"{ev.metrics['holdout_false_alarms_per_host_day']:.2f} false alarms per host-day"
    )


def test_operator_false_positives_are_learnt_and_stay_quiet(fleet: Fleet, tmp_path) -> None:
    s = fleet.settings
    split = time_split(
        read_dataset(extract(s, start=fleet.start, end=fleet.end, out_dir=tmp_path / "d").path)
    )
    warmup = split.validation_start - fleet.start  # judge from the validation period on, features as trained
    before = backtest(s, [f"{s.mlflow.model_name}@champion"], split.validation_start, split.holdout_start, warmup=warmup,
                      out_dir=tmp_path / "before")  # fmt: skip
    champion = before.models[0].model.version
    scores = pd.read_parquet(before.scores_path)
    windows = pd.read_csv(before.events_path, parse_dates=["start", "end"])
    alarms = scores[scores[f"alarm_v{champion}"] == 1]
    for row in windows[windows["source"] == "injected"].itertuples():  # what an operator sees is real data
        alarms = alarms[
            ~(
                (alarms["host"] == row.host)
                & (alarms["time"] >= row.start)
                & (alarms["time"] < row.end + pd.Timedelta(minutes=5))
            )
        ]
    assert len(alarms), "the champion raised no alarm on this history: nothing for an operator to dismiss"
    # the operator dismisses up to three of those alarm runs (one per host), the fleet's only labels
    runs = []
    for host, rows in alarms.groupby("host"):
        t = rows["time"].sort_values()
        first = t.iloc[0]
        last = t[t <= first + pd.Timedelta(minutes=10)].iloc[-1]
        runs.append(Label(str(host), first, last + pd.Timedelta(seconds=s.features.interval_s), FALSE_POSITIVE,
                          note="operator: expected batch job"))  # fmt: skip
    stored = add_labels(InfluxClient(s.influx), s.influx, runs[:3])

    ds, report, trained, ev, version = _retrain(s, fleet.start, fleet.end)
    assert ds.labelled_rows == 0 and ds.normal_rows > 0  # false positives are labels of normal rows
    assert report.success and report.skipped  # no anomaly label: the label-rate check is still skipped
    decision = promote(s)
    print(f"\nretrain with {len(stored)} false positives: {decision.reason}")
    assert decision.promoted and decision.version == version.version, decision.reason

    after = backtest(s, [f"{s.mlflow.model_name}@champion"], split.validation_start, split.holdout_start, warmup=warmup,
                     out_dir=tmp_path / "after")  # fmt: skip
    (judged,) = after.models
    assert judged.model.version == version.version
    assert judged.metrics["fp_windows"] == len(stored)
    assert judged.metrics["fp_window_alarms"] == 0  # not raised again
    new = pd.read_parquet(after.scores_path)
    for lab in stored:
        window = new[(new["host"] == lab.host) & (new["time"] >= lab.start) & (new["time"] < lab.end)]
        assert len(window) and (window[f"alarm_v{version.version}"] == 0).all(), lab


def test_a_window_too_short_to_inject_into_is_a_clear_error(fleet: Fleet, tmp_path) -> None:
    path, _ = synthetic_history(tmp_path, hosts=3, hours=0.6, seed=2)
    with pytest.raises(PipelineError, match="no host can take an injected anomaly"):
        train(fleet.settings, path, families=("gaussian_mixture",))
