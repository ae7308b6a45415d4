"""Hot reload: a promotion is picked up within one reload interval and swapped atomically; a
version that fails to load and an unreachable registry both leave the cached model serving."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from support.detector_support import detector_settings, fit_model, predictions, register_champion

import mlflow
from detector.factory import build_detector
from toolkit.seed import seed_history
from vigil.features import FEATURE_COLUMNS
from vigil.influx import InfluxClient
from vigil.processes import free_port


def _model(seed: int):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(400, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    return fit_model(frame, seed=seed)


def test_promotion_is_hot_reloaded_and_failures_keep_the_cached_model(mlflow_settings, tmp_path):
    client = InfluxClient(mlflow_settings.influx)
    for db in ("reload_raw", "reload_vigil"):
        client.drop_database(db)
        client.create_database(db)
    s = detector_settings(
        mlflow_settings,
        tmp_path,
        "reload_raw",
        "reload_vigil",
        model_name="det-reload",
        reload_interval_s=1.0,
        detector_history_hours=0.0,
    )
    try:
        start = pd.Timestamp("2026-03-01T00:00:00Z")
        seeded = seed_history(
            client, s.influx, s.collection, start=start, hours=0.05, hosts=2, anomalies=False, progress=False
        )
        v1 = register_champion(s, _model(1))
        det = build_detector(s, start=start)
        det.watcher.check_once()
        assert det.champion.version == v1 and det.health()["mode"] == "champion"
        det.watcher.start()
        try:
            v2 = register_champion(s, _model(2))  # register + move the alias = a promotion
            promoted = time.monotonic()
            while det.champion.version != v2:
                assert time.monotonic() - promoted < 60, det.watcher.last_error
                time.sleep(0.1)
            print(
                f"promotion picked up after {time.monotonic() - promoted:.1f}s (reload interval 1 s + load)"
            )
            det.run_once(now=seeded.end.value / 1e9)
            batch = predictions(client, s.influx.vigil_db, "batch")
            assert set(batch["version"]) == {str(v2)}

            # a version whose artifact cannot be loaded: reported, not served
            with mlflow.start_run() as run:
                mlflow.log_text("this is not an MLmodel file: {", "broken/MLmodel")
            broken = mlflow.register_model(f"runs:/{run.info.run_id}/broken", s.mlflow.model_name)
            MlflowClient(s.mlflow.uri).set_registered_model_alias(
                s.mlflow.model_name, "champion", broken.version
            )
            deadline = time.monotonic() + 60
            while det.metrics.errors["model_load_failed"] == 0:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            health = det.health()
            assert det.champion.version == v2 and health["model"]["version"] == v2
            assert "failed to load" in health["model"]["last_error"]
        finally:
            det.watcher.stop()

        # MLflow unreachable: keep serving the cached model, count the error
        det.watcher.registry = s.model_copy(update={"mlflow_port": free_port()}).mlflow
        assert det.watcher.check_once() is False
        assert det.champion.version == v2 and det.metrics.errors["mlflow_unavailable"] >= 1
        assert "registry unreachable" in det.health()["model"]["last_error"]
    finally:
        for db in ("reload_raw", "reload_vigil"):
            client.drop_database(db)
