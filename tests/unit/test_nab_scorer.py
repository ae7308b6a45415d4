"""NAB scorer: hand-computed cases, the published detectors' own per-row weights, and the
always/never-alarm detectors landing where NAB says (near the null baseline)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from support.shared_data import SHARED

from pipelines.nab.data import load_corpus, probation_rows, window_indices
from pipelines.nab.scorer import PROFILES, file_layout, normalise, optimise, raw_score_at, scaled_sigmoid

NAB = SHARED / "nab"
STD = PROFILES["standard"]


def sig(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


# A 100-row file, no probation, one window on rows 40..49 (W = 10).
N, L, R = 100, 40, 49


def one_file(scores: list[float]):
    layouts = {"f": file_layout(N, [(L, R)], probation=0)}
    return layouts, {"f": scores}


def alarms_at(*rows: int) -> list[float]:
    s = [0.0] * N
    for r in rows:
        s[r] = 1.0
    return s


def test_scaled_sigmoid_values():
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # ~0.9866
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0


def test_detection_at_window_start_is_worth_tp_weight():
    layouts, scores = one_file(alarms_at(L))
    raw, tp, fp, fn = raw_score_at(layouts, scores, 0.5, STD)
    assert (tp, fp, fn) == (1, 0, 0)
    assert raw == pytest.approx(1.0)  # y = -1 -> sigma(-1)/sigma(-1) * tp_weight
    assert normalise(raw, 1, STD) == pytest.approx(100.0)


def test_detection_at_window_end_is_worth_little():
    layouts, scores = one_file(alarms_at(R))
    raw, tp, _, _ = raw_score_at(layouts, scores, 0.5, STD)
    expected = sig(-1 / 10) / sig(-1)  # y = -(R - R + 1) / W
    assert tp == 1 and raw == pytest.approx(expected)
    assert 0.0 < raw < 0.3
    assert normalise(raw, 1, STD) == pytest.approx(100 * (expected + 1) / 2)


def test_earliest_detection_in_window_counts_once():
    layouts, scores = one_file(alarms_at(L + 5, L + 2, R))
    raw, tp, fp, _ = raw_score_at(layouts, scores, 0.5, STD)
    assert (tp, fp) == (1, 0)
    assert raw == pytest.approx(sig(-(R - (L + 2) + 1) / 10) / sig(-1))


def test_far_false_positive_costs_full_fp_weight_plus_the_miss():
    layouts, scores = one_file(alarms_at(99))  # 50 rows after a 10-row window: y = 50/9 > 3
    raw, tp, fp, fn = raw_score_at(layouts, scores, 0.5, STD)
    assert (tp, fp, fn) == (0, 1, 1)
    assert raw == pytest.approx(-1.0 - 0.11)


def test_false_positive_before_first_window_costs_full_fp_weight():
    layouts, scores = one_file(alarms_at(5))
    raw, *_ = raw_score_at(layouts, scores, 0.5, PROFILES["reward_low_FP_rate"])
    assert raw == pytest.approx(-1.0 - 0.22)


def test_false_positive_just_after_window_is_cheap():
    layouts, scores = one_file(alarms_at(R + 1))
    raw, *_ = raw_score_at(layouts, scores, 0.5, STD)
    assert raw == pytest.approx(-1.0 + 0.11 * sig(1 / 9))
    assert -1.0 - 0.11 < raw < -1.0


def test_no_detection_scores_minus_fn_weight():
    layouts, scores = one_file([0.0] * N)
    assert raw_score_at(layouts, scores, 0.5, PROFILES["reward_low_FN_rate"])[0] == pytest.approx(-2.0)
    res = optimise(layouts, scores, STD)
    assert res.normalised == pytest.approx(0.0)
    assert res.threshold == float("inf")  # the sweep starts above every score: detect nothing


def test_threshold_sweep_picks_the_best_threshold():
    scores = [0.0] * N
    scores[L] = 0.7  # a true detection at the window start
    scores[10] = 0.9  # a higher-scored false positive before the window
    layouts = {"f": file_layout(N, [(L, R)], probation=0)}
    res = optimise(layouts, {"f": scores}, STD)
    # threshold 0.9 -> -1.11; threshold 0.7 -> 1 - 0.11 = 0.89 (best); 0.0 -> everything alarms
    assert res.threshold == 0.7
    assert res.raw == pytest.approx(0.89)
    assert (res.tp, res.fp, res.fn) == (1, 1, 0)


def test_probationary_rows_are_ignored():
    layouts = {"f": file_layout(N, [(L, R)], probation=20)}
    raw, tp, fp, fn = raw_score_at(layouts, {"f": alarms_at(5, L)}, 0.5, STD)
    assert (raw, tp, fp, fn) == (pytest.approx(1.0), 1, 0, 0)
    assert probation_rows(4032) == 604 and probation_rows(100_000) == 750


def test_window_edges_resolve_to_first_occurrence_of_repeated_timestamps():
    ts = ["2014-03-09 01:00:00", "2014-03-09 01:05:00", "2014-03-09 01:00:00", "2014-03-09 01:10:00"]
    assert window_indices(ts, [("2014-03-09 01:00:00.000000", "2014-03-09 01:10:00")]) == [(0, 3)]
    with pytest.raises(ValueError, match="not a timestamp"):
        window_indices(ts, [("2014-03-09 02:00:00", "2014-03-09 01:10:00")])


@pytest.fixture(scope="module")
def corpus_layouts():
    corpus = load_corpus(NAB)
    return corpus, {s.key: file_layout(s.n_rows, s.window_indices(), s.probation_rows) for s in corpus}


def test_row_weights_equal_those_in_published_artime_results(corpus_layouts):
    """ARTime's result files carry NAB's own per-row weights (S(t)_standard): ours match exactly."""
    corpus, layouts = corpus_layouts
    for s in corpus:
        lay = layouts[s.key]
        published = pd.read_csv(NAB / "results" / "ARTime" / s.category / f"ARTime_{s.filename}")
        ours = np.where(lay.window_of >= 0, lay.unit_tp, 0.11 * lay.unit_fp)
        np.testing.assert_allclose(
            ours[lay.scored], published["S(t)_standard"].to_numpy()[lay.scored], atol=1e-9
        )
        assert ((lay.window_of >= 0).astype(int) == published["label"].to_numpy()).all()


def test_always_and_never_alarming_detectors_score_as_nab_says(corpus_layouts):
    corpus, layouts = corpus_layouts
    never = {k: [0.0] * lay.n_rows for k, lay in layouts.items()}
    always = {k: [1.0] * lay.n_rows for k, lay in layouts.items()}
    n_windows = sum(len(lay.windows) for lay in layouts.values())
    for p in PROFILES.values():
        assert optimise(layouts, never, p).normalised == pytest.approx(0.0)
        # the sweep may choose "nothing" over alarming everywhere: never below the null detector
        assert optimise(layouts, always, p).normalised == pytest.approx(0.0)
        # alarming on every row catches every window at its first row but pays every FP: far below 0
        raw_all, tp, fp, fn = raw_score_at(layouts, always, 1.0, p)
        assert (tp, fn) == (n_windows, 0) and fp > 10_000
        assert normalise(raw_all, n_windows, p) < -100


def test_published_null_detector_scores_zero(corpus_layouts):
    """NAB's null detector writes 0.5 on every row: its optimum is to detect nothing."""
    from pipelines.nab.data import load_published_scores
    from pipelines.nab.scorer import score_detector

    corpus, layouts = corpus_layouts
    results = score_detector(layouts, load_published_scores(NAB, "null", corpus))
    assert {p: r.normalised for p, r in results.items()} == {p: pytest.approx(0.0) for p in PROFILES}
