"""The batch path of the online model gives exactly the per-row path's numbers.

The detector scores a whole interval at once (``OnlineDetector.score_many``, numpy over River's
trees); every figure it writes must be what ``OnlineDetector.score`` — River's ``score_one`` —
gives for that row on the same model state, bit for bit, whatever the configuration and with
missing, NaN and infinite inputs.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from river.anomaly import HalfSpaceTrees

from vigil.online import OnlineConfig, OnlineDetector
from vigil.online.batch import contributions_matrix
from vigil.online.detector import _contributions
from vigil.online.hst_arrays import HstArrays

FEATURES = [f"m{i}_z" for i in range(9)]


def _rows(rng: np.random.Generator, n: int, holes: bool = True) -> np.ndarray:
    x = rng.normal(0, 1, (n, len(FEATURES)))
    x[rng.random(n) < 0.05, 2] *= 12  # outliers
    if holes:
        x[rng.random((n, len(FEATURES))) < 0.03] = np.nan
        x[rng.random(n) < 0.01, 4] = np.inf
    return x


def _as_dict(row: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURES, row.tolist(), strict=True))


@pytest.mark.parametrize(("n_trees", "height", "window"), [(10, 8, 250), (3, 4, 20), (25, 6, 50)])
def test_hst_arrays_equal_river_score_one(n_trees: int, height: int, window: int) -> None:
    rng = random.Random(n_trees)
    hst = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window, seed=7)
    names = ["a", "b", "c", "d"]
    probe = [{f: rng.random() for f in names} for _ in range(200)]
    probe += [{f: rng.random() for f in names if rng.random() < 0.6} for _ in range(100)]  # missing features
    x = np.array([[p.get(f, np.nan) for f in names] for p in probe])
    checked_states = 0
    for step in range(3 * window + 7):
        hst.learn_one({f: rng.random() ** 2 for f in names})
        if step in (0, window - 2, window - 1, window + 3, 3 * window + 6):
            fast = HstArrays.from_river(hst, names).score(x)
            slow = np.array([hst.score_one(p) for p in probe], dtype=float)
            assert np.array_equal(fast, slow), f"state after {step + 1} learns"
            checked_states += 1
    assert checked_states == 5


def test_hst_arrays_refuses_columns_that_miss_a_split_feature() -> None:
    hst = HalfSpaceTrees(n_trees=2, height=3, window_size=5, seed=1)
    hst.learn_one({"a": 0.1, "b": 0.2})
    with pytest.raises(ValueError, match="not among the columns"):
        HstArrays.from_river(hst, ["a"])


CONFIGS = {
    "detector (raw HST, quantile threshold)": OnlineConfig(calibration="none", warmup=150),
    "default (rank, extreme member)": OnlineConfig(warmup=150, calibration_min_history=50),
    "NAB-like (named members, record)": OnlineConfig(
        warmup=150,
        calibration_min_history=50,
        extreme_features=("m0_z", "m3_z"),
        hst_member=False,
        threshold_mode="record",
    ),
    "mean of members": OnlineConfig(warmup=150, calibration_min_history=50, member_mix="mean"),
    "likelihood": OnlineConfig(warmup=150, calibration="likelihood"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_score_many_equals_score_row_by_row(name: str) -> None:
    det = OnlineDetector(FEATURES, CONFIGS[name], seed=3)
    rng = np.random.default_rng(5)
    probe = _rows(rng, 400)
    compared = 0
    for batch_no in range(6):
        batch = det.score_many(probe)
        for i, row in enumerate(probe):
            one = det.score(_as_dict(row))
            got = batch.row(i)
            assert got.score == one.score and got.raw_score == one.raw_score, (name, batch_no, i)
            assert got.threshold == one.threshold and got.warmup == one.warmup
            assert got.is_anomaly == one.is_anomaly and got.extreme_score == one.extreme_score
            assert got.contributions == one.contributions[:3]
            compared += 1
        for row in _rows(rng, 120):  # move the state on: warm-up ends, windows flip, thresholds move
            det.process(_as_dict(row))
    assert compared == 6 * 400
    assert det.n_seen == 6 * 120


def test_learn_many_leaves_the_state_per_row_learning_leaves() -> None:
    cfg = OnlineConfig(calibration="none", warmup=50, window_size=40)
    a, b = OnlineDetector(FEATURES, cfg, seed=1), OnlineDetector(FEATURES, cfg, seed=1)
    rng = np.random.default_rng(9)
    for _ in range(4):
        x = _rows(rng, 90)
        mask = rng.random(len(x)) < 0.7
        scores = a.score_many(x)
        assert a.learn_many(x, scores, mask) == int(mask.sum())
        for i in np.flatnonzero(mask):
            b.learn(_as_dict(x[i]), scores.row(int(i)))  # the same state, so the same scores
    probe = _rows(rng, 200)
    assert a.n_seen == b.n_seen and a.n_learned == b.n_learned
    assert np.array_equal(a.score_many(probe).score, b.score_many(probe).score)
    assert a.threshold == b.threshold


def test_contributions_matrix_ranks_as_the_per_row_sort() -> None:
    z = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],  # all zero: present features in column order, share 0
            [1.0, -3.0, 3.0, np.nan],  # a tie keeps column order; the absent one never shows
            [np.nan, np.nan, 2.0, np.nan],  # fewer present features than TOP_K: padded with ""
        ]
    )
    names = ["a", "b", "c", "d"]
    top_names, top_share = contributions_matrix(z, names)
    for i, row in enumerate(z):
        per_row = _contributions({f: v for f, v in zip(names, row, strict=True) if not np.isnan(v)})[:3]
        per_row += [("", 0.0)] * (3 - len(per_row))
        assert list(zip(top_names[i], top_share[i], strict=True)) == per_row
    assert top_names[1].tolist() == ["b", "c", "a"]
    assert top_names[2].tolist() == ["c", "", ""]
