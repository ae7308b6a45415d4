"""The model contract (vigil/model.py): what the detector loads, through a real MLflow server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from vigil.features import FEATURE_COLUMNS
from vigil.model import (
    PREDICTION_COLUMNS,
    AnomalyModel,
    CentroidScorer,
    NoChampionError,
    SklearnScorer,
    contributions,
)
from vigil.pyfunc import load_champion, log_anomaly_model
from vigil.settings import Settings


def _train_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))


def _iforest_model() -> AnomalyModel:
    x = _train_frame().to_numpy()
    pipe = Pipeline(
        [("scale", StandardScaler()), ("model", IsolationForest(n_estimators=50, random_state=0))]
    )
    pipe.fit(x)
    scorer = SklearnScorer.fit_reference(pipe, x)
    threshold = float(np.quantile(scorer.score_scaled(scorer.scaled(x)), 0.99))
    return AnomalyModel(scorer, threshold, family="isolation_forest", params={"n_estimators": 50})


def test_contributions_name_the_feature_that_moved() -> None:
    xs = np.array([[0.0, 5.0, 1.0], [0.0, 0.0, 0.0]])
    top = contributions(xs, np.zeros_like(xs), ["a", "b", "c"], k=2)
    assert list(top.columns) == ["top1_feature", "top1_contribution", "top2_feature", "top2_contribution"]
    assert top.loc[0, "top1_feature"] == "b" and top.loc[0, "top2_feature"] == "c"
    assert top.loc[0, "top1_contribution"] == pytest.approx(25 / 26)
    assert top.loc[1, "top1_contribution"] == 0.0  # a row at its reference explains nothing


def test_predict_contract_on_odd_input() -> None:
    model = _iforest_model()
    frame = _train_frame(5, seed=1)
    frame.iloc[0, 0] = np.nan
    frame = frame.drop(columns=[FEATURE_COLUMNS[3]])  # missing column -> read as 0
    frame["host"] = "h1"  # extra column -> ignored
    frame.loc[4, list(FEATURE_COLUMNS[4:])] = 8.0  # far out on every present feature ...
    frame.loc[4, FEATURE_COLUMNS[0]] = 40.0  # ... and furthest on the first
    out = model.predict(frame)
    assert list(out.columns) == list(PREDICTION_COLUMNS)
    assert len(out) == 5 and out["score"].notna().all()
    assert out.loc[4, "is_anomaly"] == 1 and out.loc[4, "top1_feature"] == FEATURE_COLUMNS[0]
    assert set(out["is_anomaly"]) <= {0, 1}
    assert model.predict(frame.iloc[:0]).columns.tolist() == list(PREDICTION_COLUMNS)


def test_centroid_scorer_scores_distance_to_nearest_centre() -> None:
    scorer = CentroidScorer(np.zeros(2), np.ones(2), np.array([[0.0, 0.0], [10.0, 0.0]]))
    model = AnomalyModel(scorer, 2.0, family="kmeans", engine="spark", feature_columns=("a", "b"))
    out = model.predict(pd.DataFrame({"a": [0.5, 9.0, 5.0], "b": [0.0, 0.0, 4.0]}))
    assert out["score"].round(6).tolist() == [0.5, 1.0, round(float(np.hypot(5, 4)), 6)]
    assert out["is_anomaly"].tolist() == [0, 0, 1]
    assert out.loc[1, "top1_feature"] == "a"


def test_logged_pyfunc_round_trip_and_champion_loading(mlflow_settings: Settings) -> None:
    import mlflow
    from mlflow import MlflowClient

    settings = mlflow_settings.model_copy(update={"model_name": "contract-test"})
    with pytest.raises(NoChampionError, match="contract-test"):
        load_champion(settings.mlflow)

    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_experiment("contract-test")
    model = _iforest_model()
    with mlflow.start_run() as run:
        info = log_anomaly_model(model, registered_model_name=settings.mlflow.model_name)
    client = MlflowClient(settings.mlflow.uri)
    client.set_registered_model_alias(settings.mlflow.model_name, "champion", info.registered_model_version)

    loaded = load_champion(settings.mlflow)
    assert loaded.version == int(info.registered_model_version) and loaded.run_id == run.info.run_id
    assert loaded.anomaly_model.family == "isolation_forest"
    frame = _train_frame(6, seed=3)
    frame[FEATURE_COLUMNS[1]] = frame[FEATURE_COLUMNS[1]].round().astype("int64")  # ints accepted
    frame = frame.drop(columns=[FEATURE_COLUMNS[2]])
    frame.iloc[2, 0] = np.nan
    frame["host"] = "x"
    served = loaded.predict(frame)
    local = model.predict(frame)
    assert list(served.columns) == list(PREDICTION_COLUMNS)
    np.testing.assert_allclose(served["score"].to_numpy(), local["score"].to_numpy())
    assert served["threshold"].iloc[0] == pytest.approx(model.threshold)


def test_a_model_pickled_before_the_mlflow_split_still_resolves() -> None:
    """Versions registered before ``vigil.pyfunc`` existed name ``vigil.model.VigilPyfuncModel``."""
    import pickle

    from vigil.pyfunc import VigilPyfuncModel

    assert pickle.loads(b"cvigil.model\nVigilPyfuncModel\n.") is VigilPyfuncModel  # noqa: S301 - a literal
    with pytest.raises(AttributeError, match="NoSuchThing"):
        pickle.loads(b"cvigil.model\nNoSuchThing\n.")  # noqa: S301 - a literal
