"""Pipeline steps on good data and on each kind of bad data (validate, drift statistics, metrics,
extract errors, the CLI). Real InfluxDB where a step reads it; no MLflow needed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipelines.common import PipelineError, dataset_hash, time_split
from pipelines.drift import holm, ks_drift
from pipelines.extract import extract, join_labels
from pipelines.metrics import best_f1_threshold, event_metrics, point_metrics
from pipelines.synthetic import synthetic_dataset
from pipelines.validate import DataValidationError, ValidationConfig, validate
from vigil.features import FEATURE_COLUMNS
from vigil.settings import Settings

NOW = pd.Timestamp("2026-01-01T06:00:00Z")  # just after the synthetic data ends


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return synthetic_dataset(16_000, hosts=8, seed=1)


def _save(frame: pd.DataFrame, tmp_path: Path, name: str = "d.parquet") -> Path:
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    return path


# --- validate --------------------------------------------------------------------------------------


def test_validate_passes_clean_data_and_saves_json(clean, settings: Settings, tmp_path: Path) -> None:
    report = validate(settings, _save(clean, tmp_path), now=NOW, out_path=tmp_path / "v.json")
    assert report.success and report.failures == []
    assert report.evaluated > 80  # 13 table/key expectations + 3 per feature
    assert '"success": true' in report.json_path.read_text()


def _drop_feature(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns=[FEATURE_COLUMNS[0]])


def _nulls(f: pd.DataFrame) -> pd.DataFrame:
    f.loc[f.index[:500], FEATURE_COLUMNS[1]] = np.nan
    return f


def _out_of_range(f: pd.DataFrame) -> pd.DataFrame:
    f.loc[f.index[3], FEATURE_COLUMNS[0]] = 1e6
    return f


def _duplicates(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f.iloc[:10]], ignore_index=True)


def _labels_everywhere(f: pd.DataFrame) -> pd.DataFrame:
    f["label"] = 1
    return f


def _string_feature(f: pd.DataFrame) -> pd.DataFrame:
    f[FEATURE_COLUMNS[2]] = f[FEATURE_COLUMNS[2]].astype(str)
    return f


BAD_CASES = {
    "missing column": (_drop_feature, "expect_table_columns_to_match_set"),
    "null feature": (_nulls, "expect_column_values_to_not_be_null"),
    "out of range": (_out_of_range, "expect_column_values_to_be_between"),
    "duplicated host,time": (_duplicates, "expect_compound_columns_to_be_unique"),
    "label rate": (_labels_everywhere, "expect_column_mean_to_be_between"),
    "wrong type": (_string_feature, "expect_column_values_to_be_of_type"),
    "too few rows": (lambda f: f.iloc[:200].copy(), "expect_table_row_count_to_be_between"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_validate_rejects_each_kind_of_bad_data(case, clean, settings: Settings, tmp_path: Path) -> None:
    mutate, expectation = BAD_CASES[case]
    path = _save(mutate(clean.copy()), tmp_path)
    with pytest.raises(DataValidationError) as err:
        validate(settings, path, now=NOW, out_path=tmp_path / "v.json")
    report = err.value.report
    assert not report.success and expectation in {f.expectation for f in report.failures}
    assert expectation in str(err.value) and "observed" in str(err.value)
    assert (tmp_path / "v.json").exists()  # the full result is kept even when it fails


@pytest.mark.parametrize("labels", ["none", "false positives only"])
def test_validate_checks_the_label_rate_only_where_there_are_labels(
    labels: str, clean, settings: Settings, tmp_path: Path
) -> None:
    frame = clean.copy()
    frame["label"], frame["label_id"], frame["label_kind"], frame["label_source"] = 0, "", "", ""
    if labels == "false positives only":  # an operator's verdicts: normal rows, label 0
        frame.loc[frame.index[:50], ["label_id", "label_kind", "label_source"]] = [
            "op-1",
            "false_positive",
            "operator",
        ]
    report = validate(settings, _save(frame, tmp_path), now=NOW, out_path=tmp_path / "v.json")
    assert report.success and report.skipped and "label" in report.skipped[0]
    assert "expect_column_mean_to_be_between" not in (tmp_path / "v.json").read_text()


def test_validate_rejects_stale_data(clean, settings: Settings, tmp_path: Path) -> None:
    later = NOW + pd.Timedelta(days=3)
    report = validate(settings, _save(clean, tmp_path), now=later, raise_on_failure=False)
    failed = {f.expectation: f for f in report.failures}
    assert set(failed) == {"expect_column_max_to_be_between"}
    assert "2026-01-01" in str(failed["expect_column_max_to_be_between"].observed)
    # a looser freshness bound accepts the same file
    assert validate(
        settings, _save(clean, tmp_path), now=later, config=ValidationConfig(max_age=pd.Timedelta(days=4))
    ).success


# --- drift statistics -------------------------------------------------------------------------------


def test_holm_adjustment_matches_definition() -> None:
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.5]))
    # sorted p: .01*4=.04, .03*3=.09, .04*2=.08 -> max(.09,.08)=.09, .5*1 -> .5
    np.testing.assert_allclose(adjusted, [0.04, 0.09, 0.09, 0.5])


def test_false_drift_rate_is_at_most_alpha_over_many_seeds() -> None:
    alpha, runs, hits = 0.05, 200, 0
    features = FEATURE_COLUMNS
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        ref = pd.DataFrame(rng.normal(size=(500, len(features))), columns=list(features))
        cur = pd.DataFrame(rng.normal(size=(500, len(features))), columns=list(features))
        hits += any(f.drifted for f in ks_drift(ref, cur, alpha=alpha))
    assert hits / runs <= alpha, f"false drift rate {hits / runs:.3f} above alpha {alpha}"


@pytest.mark.parametrize("change", ["mean", "variance"])
def test_shifted_mean_and_changed_variance_are_detected(change: str) -> None:
    rng = np.random.default_rng(7)
    cols = list(FEATURE_COLUMNS)
    ref = pd.DataFrame(rng.normal(size=(2000, len(cols))), columns=cols)
    cur = pd.DataFrame(rng.normal(size=(2000, len(cols))), columns=cols)
    target = cols[4]
    cur[target] = cur[target] + 0.5 if change == "mean" else cur[target] * 2.0
    result = {f.feature: f for f in ks_drift(ref, cur)}
    assert result[target].drifted and result[target].p_adjusted < 0.05
    assert sum(f.drifted for f in result.values()) == 1  # only the changed feature


# --- metrics -------------------------------------------------------------------------------------------


def test_event_metrics_count_detections_delays_and_false_alarms() -> None:
    times = pd.date_range("2026-01-01", periods=12, freq="10s", tz="UTC")
    frame = pd.DataFrame(
        {
            "host": "a",
            "time": times,
            "label": [0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0],
            "label_id": ["", "w1", "w1", "w1", "", "", "", "", "w2", "w2", "", ""],
        }
    )
    alarms = np.array([0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=bool)
    m = event_metrics(frame, alarms, 10)
    assert m["events"] == 2 and m["event_recall"] == 0.5  # w1 detected, w2 missed
    assert m["mean_time_to_detect_s"] == 10.0  # first alarm one interval after w1 starts
    assert m["false_alarms_per_day"] == pytest.approx(2 / (120 / 86400))  # two alarm runs outside labels


def test_best_f1_threshold_separates_perfectly_separable_scores() -> None:
    y = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    t = best_f1_threshold(y, scores)
    assert point_metrics(y, scores, t)["f1"] == 1.0


# --- splits, hashing, labels, extract errors --------------------------------------------------------------


def test_time_split_is_time_ordered_and_skips_warmup(clean) -> None:
    split = time_split(clean)
    assert split.train["time"].max() < split.validation["time"].min()
    assert split.validation["time"].max() < split.holdout["time"].min()
    assert (split.train["warmup"] == 0).all()
    assert dataset_hash(clean) == dataset_hash(clean.copy())
    changed = clean.copy()
    changed.loc[0, FEATURE_COLUMNS[0]] += 1e-9
    assert dataset_hash(changed) != dataset_hash(clean)


def test_join_labels_marks_overlapping_intervals_only() -> None:
    times = pd.date_range("2026-01-01", periods=6, freq="10s", tz="UTC")
    feats = pd.DataFrame({"host": ["a"] * 6 + ["b"] * 6, "time": list(times) * 2})
    labels = pd.DataFrame(
        {
            "host": ["a"],
            "kind": ["spike"],
            "start": [times[1] + pd.Timedelta("5s")],
            "end": [times[3]],
            "label_id": ["L1"],
        }
    )
    out = join_labels(feats, labels, 10)
    assert out["label"].tolist() == [0, 1, 1, 0, 0, 0] + [0] * 6  # [t1,t1+10) overlaps; t3 starts at end
    assert set(out.loc[out["label"] == 1, "label_id"]) == {"L1"}


def test_extract_of_an_empty_window_raises(settings: Settings, fresh_db: str, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="no raw metrics"):
        extract(
            settings,
            start="2026-01-01T00:00:00Z",
            end="2026-01-01T01:00:00Z",
            raw_db=fresh_db,
            out_dir=tmp_path,
        )
    with pytest.raises(PipelineError, match="empty window"):
        extract(settings, start="2026-01-01T01:00:00Z", end="2026-01-01T00:00:00Z", raw_db=fresh_db)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_lists_every_step_and_reports_errors_cleanly() -> None:
    from pipelines.cli import pipeline

    runner = CliRunner()
    listed = runner.invoke(pipeline, ["--help"]).output
    for step in ("extract", "validate", "drift", "train", "evaluate", "register", "promote", "rollback"):
        assert step in listed
    bad = runner.invoke(pipeline, ["extract", "--start", "2026-01-02", "--end", "2026-01-01"])
    assert bad.exit_code == 2 and "empty window" in bad.output
