"""Helpers shared by the detector tests: settings, a real champion in the real registry, queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from vigil import schema
from vigil.features import FEATURE_COLUMNS
from vigil.influx import InfluxClient, quote_ident, quote_literal
from vigil.model import AnomalyModel, SklearnScorer
from vigil.pyfunc import register_anomaly_model
from vigil.settings import Settings


@contextmanager
def fresh_databases(client: InfluxClient, *names: str) -> Iterator[tuple[str, ...]]:
    """Empty databases for one test: dropped first (a crashed run may have left them), dropped after."""
    for db in names:
        client.drop_database(db)
        client.create_database(db)
    try:
        yield names
    finally:
        for db in names:
            client.drop_database(db)


def detector_settings(base: Settings, run_dir: Path, raw_db: str, vigil_db: str, **overrides) -> Settings:
    """Fast settings for tests: no lateness, short polls, a checkpoint every iteration."""
    values = {
        "run_dir": run_dir,
        "influx_raw_db": raw_db,
        "influx_vigil_db": vigil_db,
        "poll_interval_s": 0.5,
        "allowed_lateness_s": 0.0,
        "reload_interval_s": 1.0,
        "checkpoint_every": 1,
        "detector_history_hours": 1.0,
        "detector_port": 0,
        **overrides,
    }
    return base.model_copy(update=values)


def fit_model(features: pd.DataFrame, quantile: float = 0.995, seed: int = 0) -> AnomalyModel:
    """An IsolationForest on feature rows out of warm-up, threshold at a training-score quantile."""
    rows = features[features["warmup"] == 0] if "warmup" in features else features
    x = rows[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
    pipe = Pipeline(
        [("scale", StandardScaler()), ("iforest", IsolationForest(n_estimators=50, random_state=seed))]
    )
    pipe.fit(x)
    scorer = SklearnScorer.fit_reference(pipe, x)
    scores = scorer.score_scaled(scorer.scaled(x))
    return AnomalyModel(scorer=scorer, threshold=float(np.quantile(scores, quantile)), family="iforest")


class ZeroScoreModel(PythonModel):
    """A pyfunc that is not Vigil's contract (no AnomalyModel inside). Here, not in a test module,
    so that another process (the detector's loader child) can unpickle it."""

    def predict(self, context, model_input, params=None):  # noqa: ANN001 - MLflow's signature
        return pd.DataFrame({"score": np.zeros(len(model_input))})


def register_champion(settings: Settings, model: AnomalyModel, alias: str = "champion") -> int:
    """Log ``model`` as the contract pyfunc, register it under settings.mlflow.model_name, set the alias."""
    return register_anomaly_model(
        settings.mlflow, model, alias, experiment="detector-tests", pip_requirements=["mlflow"]
    )


def predictions(client: InfluxClient, db: str, source: str | None = None) -> pd.DataFrame:
    """Every prediction point (time, host, model, version, source + fields)."""
    where = f" WHERE {quote_ident('source')} = {quote_literal(source)}" if source else ""
    q = f"SELECT * FROM {quote_ident(schema.PREDICTIONS.name)}{where}"
    return client.query_df(db, q)


def stats(client: InfluxClient, db: str) -> pd.DataFrame:
    return client.query_df(db, f"SELECT * FROM {quote_ident(schema.DETECTOR_STATS.name)}")
