"""End to end on a real InfluxDB and MLflow server: seed -> extract -> validate -> train -> evaluate
-> register -> promote -> drift; then a deliberately worse challenger is rejected, a forced
promotion is recorded, and rollback restores the previous champion.

The seeded history carries labels (source=seed): validate checks their rate, but training never
sees them (``VIGIL_TRAINING__LABEL_SOURCES``: operator and stress only) — they only score the
label-free champion's served decision on the holdout afterwards."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.drift import drift
from pipelines.evaluate import PRIMARY_METRIC, evaluate
from pipelines.extract import extract
from pipelines.registry import promote, register, rollback
from pipelines.train import train
from pipelines.validate import validate
from toolkit.seed import seed_history
from vigil.features import FEATURE_COLUMNS
from vigil.influx import InfluxClient
from vigil.pyfunc import load_champion
from vigil.schema import DRIFT, DRIFT_SUMMARY, MODEL_EVENTS
from vigil.settings import Settings


@pytest.fixture(scope="module")
def e2e_settings(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return mlflow_settings.model_copy(
        update={
            "run_dir": tmp_path_factory.mktemp("pipeline_e2e"),
            "influx_raw_db": "p2e_raw",
            "influx_vigil_db": "p2e_vigil",
            "model_name": "vigil-e2e",
            "mlflow_experiment": "pipeline-e2e",
        }
    )


def _events(client: InfluxClient, settings: Settings) -> pd.DataFrame:
    return client.query_df(settings.influx.vigil_db, f'SELECT * FROM "{MODEL_EVENTS.name}"')


def test_batch_loop_end_to_end(e2e_settings: Settings) -> None:
    settings = e2e_settings
    client = InfluxClient(settings.influx)
    seeded = seed_history(
        client, settings.influx, settings.collection, hours=16, hosts=6, seed=11, progress=False
    )
    assert len(seeded.labels) >= 6

    # extract: features + labels, content-hashed parquet
    ds = extract(settings, start=seeded.start, end=seeded.end)
    frame = pd.read_parquet(ds.path)
    assert ds.rows == len(frame) == 6 * 16 * 360 and ds.labelled_rows > 0
    assert ds.path.name.startswith(f"features-{ds.dataset_hash[:16]}")

    report = validate(settings, ds.path)
    assert report.success

    # train (scikit-learn grid, label-free) -> evaluate (served decision) -> register -> promote
    good = train(settings, ds.path, engine="sklearn")
    assert len(good.results) == 8 and good.best_family in {"isolation_forest", "lof", "gaussian_mixture"}
    assert good.best_metrics["val_injected_recall"] > 0.8
    ev = evaluate(settings, good.model_uri, ds.path)
    recall = ev.metrics[PRIMARY_METRIC]
    seeded = ev.metrics["holdout_real_event_recall"]
    print(
        f"\nchampion {good.best_cell}: served decision on the holdout catches {seeded:.2f} of "
        f"{ev.metrics['holdout_real_events']:.0f} seeded events (never seen in training) and "
        f"{ev.metrics['holdout_injected_event_recall']:.2f} of {ev.metrics['holdout_injected_events']:.0f} "
        f"injected ones, {ev.metrics['holdout_false_alarms_per_host_day']:.2f} false alarms per host-day, "
        f"median time to detect {ev.metrics['holdout_median_ttd_s']:.0f} s"
    )
    assert ev.metrics["holdout_real_events"] >= 2 and seeded >= 0.75
    assert ev.png_path.exists() and ev.png_path.stat().st_size > 10_000
    v1 = register(settings.influx, settings.mlflow, good.run_id, validation_passed=report.success)
    first = promote(settings)
    assert first.promoted and first.version == v1.version and first.reason == "no champion yet"
    champion = load_champion(settings.mlflow)
    assert champion.version == v1.version
    served = champion.predict(frame.head(50))
    assert {"score", "threshold", "is_anomaly", "top1_feature"} <= set(served.columns)

    # drift: the champion's own training data found through its tags, vs. a shifted copy
    current = frame.copy()
    current[FEATURE_COLUMNS[0]] = current[FEATURE_COLUMNS[0]] + 3.0
    current_path = ds.path.with_name("shifted.parquet")
    current.to_parquet(current_path, index=False)
    dr = drift(settings, current_path)
    assert dr.drifted and dr.reference_version == str(v1.version)
    assert FEATURE_COLUMNS[0] in {f.feature for f in dr.features if f.drifted}
    assert dr.html_path is not None and dr.html_path.stat().st_size > 100_000
    written = client.query_df(settings.influx.vigil_db, f'SELECT * FROM "{DRIFT.name}"')
    assert len(written) == len(FEATURE_COLUMNS)
    summary = client.query_df(settings.influx.vigil_db, f'SELECT * FROM "{DRIFT_SUMMARY.name}"')
    assert int(summary["drifted"].iloc[-1]) == 1

    # a deliberately worse challenger: a crippled forest -> the served decision with it loses
    bad = train(
        settings,
        ds.path,
        families=("isolation_forest",),
        grid_overrides={"isolation_forest": {"n_estimators": [5], "max_samples": [16]}},
        run_name="deliberately-worse",
    )
    evaluate(settings, bad.model_uri, ds.path)
    v2 = register(settings.influx, settings.mlflow, bad.run_id, validation_passed=True)
    rejected = promote(settings)
    print(f"worse challenger: {rejected.reason}")
    assert not rejected.promoted and rejected.version == v2.version
    assert rejected.previous_metric is not None and rejected.previous_metric == pytest.approx(recall)
    assert rejected.reason.startswith(("catches fewer", "pages more", "detects slower"))
    assert load_champion(settings.mlflow).version == v1.version

    # forced promotion is allowed and recorded; rollback restores the previous champion
    forced = promote(settings, version=v2.version, force=True)
    assert forced.promoted and forced.forced and load_champion(settings.mlflow).version == v2.version
    back = rollback(settings.influx, settings.mlflow, reason="test")
    assert back.version == v1.version and load_champion(settings.mlflow).version == v1.version

    events = _events(client, settings)
    assert events["event"].tolist() == ["register", "promote", "register", "reject", "promote", "rollback"]
    assert events["forced"].tolist() == [0, 0, 0, 0, 1, 0]
    from pipelines.common import mlflow_client

    tags = mlflow_client(settings.mlflow).get_model_version(settings.mlflow.model_name, str(v2.version)).tags
    assert tags["vigil.forced"] == "true" and "vigil.rolled_back" in tags
