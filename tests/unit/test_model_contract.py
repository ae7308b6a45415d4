"""The model interface, checked the same way for every detector family (as river's
``check_estimator`` checks every estimator): the batch families of the training grid —
scikit-learn IsolationForest, LOF and GaussianMixture (``pipelines.search.FAMILIES``) and the
MLlib KMeans in the numpy form it is served in (``vigil.model.CentroidScorer``) — and the online
model (``vigil.online.OnlineDetector``, as the detector configures it).

Each family is driven through one small adapter (fit on a frame with a seed; score a frame without
changing the model), and every check below runs on each:

* shapes: one output row per input row, in input order; scores finite, one threshold per model;
* determinism: the same data and seed give the same scores, bit for bit;
* scoring is pure: scoring twice gives the same answer, and the model has not learnt;
* missing values as documented: a batch model reads a missing column, NaN or inf as 0 ("at the
  host's baseline") and ignores extra columns; the online model reads NaN as "feature absent";
* pickling round trip: the unpickled model scores (and, online, goes on learning) identically;
* threshold semantics: a row is anomalous exactly when its score is above the threshold (online:
  and the model is past its warm-up, during which nothing is flagged); a gross outlier scores
  above typical rows.

No servers: this is a unit test (the KMeans centres come from scikit-learn, not Spark).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from pipelines.search import FAMILIES, Cell, fit_cell
from vigil.features import FEATURE_COLUMNS
from vigil.model import PREDICTION_COLUMNS, AnomalyModel, CentroidScorer, SklearnScorer
from vigil.online import OnlineDetector
from vigil.serving.scoring import ONLINE_FEATURES, online_config

N_TRAIN = 500
#: Small parameters per batch family (the grid's first values are slower and test nothing more).
BATCH_PARAMS: dict[str, dict[str, Any]] = {
    "isolation_forest": {"n_estimators": 50, "max_samples": 256},
    "lof": {"n_neighbors": 10},
    "gaussian_mixture": {"n_components": 2},
}


def _training_threshold(scores: np.ndarray) -> float:
    """A threshold as training keeps one: high in the training scores (a few rows above it)."""
    return float(np.quantile(scores, 0.99))


def _fit_sklearn(family: str) -> Callable[[pd.DataFrame, int], AnomalyModel]:
    def fit(frame: pd.DataFrame, seed: int) -> AnomalyModel:
        x = frame[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
        cell = Cell(family, tuple(BATCH_PARAMS[family].items()))
        scorer = SklearnScorer.fit_reference(fit_cell(cell, x, seed), x)
        threshold = _training_threshold(scorer.score_scaled(scorer.scaled(x)))
        return AnomalyModel(scorer, threshold, family=family, engine="sklearn", params=cell.param_dict)

    return fit


def _fit_kmeans(frame: pd.DataFrame, seed: int) -> AnomalyModel:
    """KMeans exported to numpy, as ``pipelines.spark_engine`` exports MLlib's model."""
    x = frame[list(FEATURE_COLUMNS)].to_numpy(dtype=float)
    scaler = StandardScaler().fit(x)
    kmeans = KMeans(n_clusters=4, n_init=1, random_state=seed).fit(scaler.transform(x))
    scorer = CentroidScorer(mean=scaler.mean_, scale=scaler.scale_, centers=kmeans.cluster_centers_)
    threshold = _training_threshold(scorer.score_scaled(scorer.scaled(x)))
    return AnomalyModel(scorer, threshold, family="mllib_kmeans", engine="spark", params={"k": 4})


def _score_batch(model: AnomalyModel, frame: pd.DataFrame) -> pd.DataFrame:
    out = model.predict(frame)
    return out.assign(warmup=False)


def _fit_online(frame: pd.DataFrame, seed: int) -> OnlineDetector:
    det = OnlineDetector(list(ONLINE_FEATURES), online_config(), seed=seed)
    det.process_frame(frame)
    return det


def _score_online(det: OnlineDetector, frame: pd.DataFrame) -> pd.DataFrame:
    scores = det.score_many(frame[list(ONLINE_FEATURES)].to_numpy(dtype=float))
    return pd.DataFrame(
        {
            "score": scores.score,
            "threshold": scores.threshold,
            "is_anomaly": scores.is_anomaly.astype(np.int64),
            "warmup": scores.warmup,
        },
        index=frame.index,
    )


@dataclass(frozen=True)
class Family:
    name: str
    fit: Callable[[pd.DataFrame, int], Any]
    score: Callable[[Any, pd.DataFrame], pd.DataFrame]  # never changes the model
    columns: tuple[str, ...]
    online: bool = False


FAMILY_LIST = [
    *(Family(name, _fit_sklearn(name), _score_batch, FEATURE_COLUMNS) for name in FAMILIES),
    Family("mllib_kmeans", _fit_kmeans, _score_batch, FEATURE_COLUMNS),
    Family("online_hst", _fit_online, _score_online, ONLINE_FEATURES, online=True),
]


def test_every_training_family_is_checked() -> None:
    assert set(BATCH_PARAMS) == set(FAMILIES), "a family was added to the grid: give it parameters here"


@pytest.fixture(params=FAMILY_LIST, ids=lambda f: f.name)
def family(request: pytest.FixtureRequest) -> Family:
    return request.param


def _frame(columns: tuple[str, ...], n: int, seed: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(0.0, 1.0, (n, len(columns))), columns=list(columns))
    frame.index = pd.RangeIndex(start, start + n) * 3  # not 0..n-1: the output must keep it
    return frame


@pytest.fixture
def train(family: Family) -> pd.DataFrame:
    return _frame(family.columns, N_TRAIN, seed=1)


@pytest.fixture
def fitted(family: Family, train: pd.DataFrame) -> Any:
    return family.fit(train, 7)


def _probe(family: Family) -> pd.DataFrame:
    """Typical rows, then one gross outlier (every feature at +12 sigma)."""
    frame = _frame(family.columns, 40, seed=2, start=1000)
    frame.iloc[-1] = 12.0
    return frame


def test_fit_and_score_shapes(family: Family, fitted: Any) -> None:
    probe = _probe(family)
    out = family.score(fitted, probe)
    assert len(out) == len(probe) and list(out.index) == list(probe.index)
    assert np.isfinite(out["score"].to_numpy(dtype=float)).all()
    assert out["threshold"].nunique() == 1 and np.isfinite(out["threshold"].iloc[0])
    assert set(out["is_anomaly"].unique()) <= {0, 1}
    if not family.online:
        assert list(fitted.predict(probe).columns) == list(PREDICTION_COLUMNS)
        assert fitted.score(probe).shape == (len(probe),)
        empty = fitted.predict(probe.iloc[:0])
        assert len(empty) == 0 and list(empty.columns) == list(PREDICTION_COLUMNS)
        top = fitted.predict(probe)
        assert top["top1_feature"].isin(FEATURE_COLUMNS).all()
        assert top["top1_contribution"].between(0.0, 1.0).all()
    else:
        assert len(family.score(fitted, probe.iloc[:0])) == 0


def test_the_same_seed_gives_the_same_model(family: Family, train: pd.DataFrame, fitted: Any) -> None:
    probe = _probe(family)
    again = family.fit(train, 7)
    np.testing.assert_array_equal(
        family.score(fitted, probe)["score"].to_numpy(), family.score(again, probe)["score"].to_numpy()
    )


def test_scoring_is_pure(family: Family, fitted: Any) -> None:
    probe = _probe(family)
    before = pickle.dumps(fitted)
    first = family.score(fitted, probe)
    pd.testing.assert_frame_equal(first, family.score(fitted, probe))
    assert pickle.dumps(fitted) == before, "scoring changed the model"
    if family.online:
        assert fitted.n_seen == N_TRAIN


def test_missing_values_as_documented(family: Family, fitted: Any) -> None:
    probe = _probe(family).iloc[:10].copy()
    a, b, c = family.columns[0], family.columns[1], family.columns[2]
    if not family.online:
        holes = probe.copy()
        holes[a] = np.nan
        holes[b] = np.inf
        holes = holes.drop(columns=[c]).assign(not_a_feature=123.0, host="h")
        zeros = probe.copy()
        zeros[[a, b, c]] = 0.0
        pd.testing.assert_frame_equal(fitted.predict(holes), fitted.predict(zeros))
    else:
        holes = probe.copy()
        holes.loc[holes.index[::2], a] = np.nan  # NaN = the feature is absent from that row
        out = family.score(fitted, holes)
        for i, (_, row) in enumerate(holes.iterrows()):
            present = {f: float(v) for f, v in row.items() if not np.isnan(v)}
            assert out["score"].iloc[i] == fitted.score(present).score
        with pytest.raises(ValueError, match="lacks feature column"):
            fitted.process_frame(probe.drop(columns=[a]))


def test_pickle_round_trip(family: Family, fitted: Any) -> None:
    probe = _probe(family)
    copy = pickle.loads(pickle.dumps(fitted, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
    pd.testing.assert_frame_equal(family.score(fitted, probe), family.score(copy, probe))
    if family.online:  # a checkpoint goes on learning exactly as the model it was taken from
        restored = OnlineDetector.from_bytes(fitted.to_bytes())
        more = _frame(family.columns, 50, seed=3)
        learnt = fitted.process_frame(more)
        pd.testing.assert_frame_equal(learnt, restored.process_frame(more))
        pd.testing.assert_frame_equal(learnt, copy.process_frame(more))


def test_threshold_semantics(family: Family, train: pd.DataFrame, fitted: Any) -> None:
    probe = _probe(family)
    out = family.score(fitted, probe)
    score, threshold = out["score"].to_numpy(dtype=float), float(out["threshold"].iloc[0])
    expected = (score > threshold) & ~out["warmup"].to_numpy(dtype=bool)
    np.testing.assert_array_equal(out["is_anomaly"].to_numpy(dtype=bool), expected)
    assert score[-1] > np.median(score[:-1]), "a gross outlier must score above typical rows"
    assert out["is_anomaly"].iloc[-1] == 1, "a gross outlier must be flagged"
    if not family.online:
        assert threshold == fitted.threshold
    else:
        fresh = family.fit(train.iloc[:10], 7)  # still warming up: nothing may be flagged
        early = family.score(fresh, probe)
        assert early["warmup"].all() and early["is_anomaly"].sum() == 0
