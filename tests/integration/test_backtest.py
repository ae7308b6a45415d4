"""Backtest on a real InfluxDB (seeded history) and MLflow server, through the served decision: a
registered version's backtest of its holdout window replays exactly what evaluate replayed and
reports the same figures; --compare puts two versions side by side (Markdown, JSON, one PNG); the
backtest gate passes the better and refuses (recording a reject event) the worse; bad inputs
(unknown version or alias, malformed spec, empty window, warm-up only) exit non-zero with a clear
message and write nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipelines.backtest import backtest, backtest_command, resolve_model
from pipelines.common import PipelineError, read_dataset, time_split
from pipelines.evaluate import evaluate
from pipelines.extract import extract
from pipelines.gates import backtest_gate
from pipelines.registry import promote, register
from pipelines.served import served_gate
from pipelines.train import train
from toolkit.seed import seed_history
from toolkit.stack.services import settings_env
from vigil.influx import InfluxClient
from vigil.schema import MODEL_EVENTS
from vigil.settings import Settings, get_settings


@dataclass
class History:
    settings: Settings
    start: pd.Timestamp
    end: pd.Timestamp
    holdout_start: pd.Timestamp
    evaluations: dict[int, dict[str, float]]  # version -> evaluate's holdout metrics
    dataset_hash: str
    holdout_rows: int


@pytest.fixture(scope="module")
def history(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> History:
    """Seeded raw history -> dataset -> two small trained, evaluated and registered versions:
    v1 (Gaussian mixture, promoted champion) and v2 (a small isolation forest, challenger)."""
    settings = mlflow_settings.model_copy(
        update={
            "run_dir": tmp_path_factory.mktemp("backtest"),
            "influx_raw_db": "bt_raw",
            "influx_vigil_db": "bt_vigil",
            "model_name": "vigil-backtest",
            "mlflow_experiment": "backtest",
        }
    )
    client = InfluxClient(settings.influx)
    seeded = seed_history(
        client, settings.influx, settings.collection, hours=12, hosts=5, seed=21, progress=False
    )
    ds = extract(settings, start=seeded.start, end=seeded.end)
    evaluations = {}
    for families, grid in (
        (("gaussian_mixture",), {"gaussian_mixture": {"n_components": [1]}}),
        (("isolation_forest",), {"isolation_forest": {"n_estimators": [50], "max_samples": [256]}}),
    ):
        trained = train(settings, ds.path, families=families, grid_overrides=grid)
        ev = evaluate(settings, trained.model_uri, ds.path, with_robustness=False)
        version = register(settings.influx, settings.mlflow, trained.run_id, validation_passed=True).version
        evaluations[version] = {
            k.removeprefix("holdout_"): v for k, v in ev.metrics.items() if k.startswith("holdout_")
        }
        if len(evaluations) == 1:
            assert promote(settings).promoted  # v1 becomes champion (none before)
    holdout_start = time_split(read_dataset(ds.path)).holdout_start
    yield History(
        settings,
        pd.Timestamp(seeded.start),
        pd.Timestamp(seeded.end),
        holdout_start,
        evaluations,
        ds.dataset_hash,
        ev.holdout_rows,
    )
    client.drop_database(settings.influx.raw_db)
    client.drop_database(settings.influx.vigil_db)


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str):
    """Run ``vigil backtest`` with ``settings`` as its environment (the CLI reads only that)."""
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(backtest_command, list(args))
    finally:
        get_settings.cache_clear()


#: Figures that depend on the machine, not on the data.
TIMINGS = {"replay_seconds"}


def test_backtest_of_the_holdout_window_equals_evaluate(history: History, tmp_path: Path) -> None:
    s = history.settings
    result = backtest(
        s,
        [f"{s.mlflow.model_name}@champion"],
        history.holdout_start,
        history.end,
        warmup=history.holdout_start - history.start,  # the dataset's own history: same features
        out_dir=tmp_path,
    )
    (model,) = result.models
    assert model.model.version == 1 and model.model.alias == "champion"
    assert result.dataset_hash == history.dataset_hash  # same extraction code, same window, same bytes
    assert result.rows == history.holdout_rows
    expected = history.evaluations[1]
    assert set(model.metrics) == set(expected)
    for key, value in expected.items():
        if key not in TIMINGS:
            assert model.metrics[key] == pytest.approx(value, nan_ok=True), key
    assert result.events > 0 and model.metrics["injected_events"] > 0 and model.metrics["real_events"] > 0
    assert result.png_path.stat().st_size > 10_000
    print(
        f"\nbacktest v1 on its holdout window: events caught {model.metrics['event_recall']:.3f}, "
        f"{model.metrics['false_alarms_per_host_day']:.2f} false alarms per host-day ({result.seconds:.1f}s)"
    )


def test_compare_puts_two_versions_side_by_side(
    history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = history.settings
    out = tmp_path / "cmp"
    run = _cli(
        s,
        monkeypatch,
        "--compare", f"{s.mlflow.model_name}@champion", "2",
        "--from", history.holdout_start.isoformat(),
        "--to", history.end.isoformat(),
        "--warmup", str(history.holdout_start - history.start),
        "--out", str(out),
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert (
        "| event_recall |" in run.output
        and "| false_alarms_per_host_day |" in run.output
        and "vigil-backtest v1 (@champion)" in run.output
        and "vigil-backtest v2" in run.output
    )
    report = json.loads((out / "backtest.json").read_text())
    assert [m["model"]["version"] for m in report["models"]] == [1, 2]
    for m in report["models"]:  # both versions on the same data, each equal to its own evaluate
        for key in (
            "event_recall",
            "injected_event_recall",
            "real_event_recall",
            "false_alarms_per_host_day",
        ):
            got, want = m["metrics"][key], history.evaluations[m["model"]["version"]][key]
            assert (got is None and np.isnan(want)) or got == pytest.approx(want), key
    scores = pd.read_parquet(out / "scores.parquet")
    assert {"score_v1", "score_v2", "alarm_v1", "alarm_v2"} <= set(scores.columns)
    assert len(scores) == history.holdout_rows
    assert (out / "backtest.png").stat().st_size > 10_000 and (out / "backtest.md").exists()


def test_backtest_gate_passes_the_better_and_refuses_the_worse(history: History, tmp_path: Path) -> None:
    s = history.settings
    recall = {v: m["event_recall"] for v, m in history.evaluations.items()}
    assert recall[1] != recall[2], "the two versions must differ for this test"
    better, worse = sorted(recall, key=recall.get, reverse=True)
    window = (history.holdout_start, history.end)
    warmup = history.holdout_start - history.start
    expected = served_gate(
        history.evaluations[better], history.evaluations[worse], budget=s.training.alarm_budget_per_host_day,
        margin=0.0, interval_s=s.features.interval_s,
    )  # fmt: skip
    ok = backtest_gate(s, better, worse, window, warmup=warmup, tolerance=0.0, out_dir=tmp_path / "a")
    assert ok.passed is expected.passed and ok.challenger_metric == pytest.approx(recall[better])
    gap = recall[better] - recall[worse]
    refused = backtest_gate(
        s, worse, better, window, warmup=warmup, tolerance=gap / 2, out_dir=tmp_path / "b"
    )
    assert not refused.passed and refused.champion_metric == pytest.approx(recall[better])
    assert refused.reason.startswith("backtest ")
    assert "catches" in refused.reason or "pages more" in refused.reason
    # recorded: a reject event with the reason, and tags on the version
    events = InfluxClient(s.influx).query_df(s.influx.vigil_db, f'SELECT * FROM "{MODEL_EVENTS.name}"')
    last = events.iloc[-1]
    assert last["event"] == "reject" and int(last["version"]) == worse and last["reason"] == refused.reason
    from pipelines.common import mlflow_client

    tags = mlflow_client(s.mlflow).get_model_version(s.mlflow.model_name, str(worse)).tags
    assert tags["vigil.gate.backtest"].startswith("failed") and tags["vigil.promotion"] == "rejected"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vigil-backtest/99", "has no version 99"),
        ("99", "has no version 99"),
        ("vigil-backtest@nosuchalias", "has no alias 'nosuchalias'"),
        ("no-such-model@champion", "'no-such-model' has no alias"),
        ("vigil-backtest/abc", "bad model spec"),
    ],
)
def test_unknown_or_malformed_model_is_a_clear_error(
    history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    out = tmp_path / "out"
    run = _cli(
        history.settings, monkeypatch,
        "--model", spec, "--from", history.start.isoformat(), "--to", history.end.isoformat(), "--out", str(out),
    )  # fmt: skip
    assert run.exit_code == 2 and message in run.output and "Traceback" not in run.output
    assert not out.exists()  # resolved before any history is read: nothing written


def test_empty_window_and_bad_arguments_are_clear_errors(
    history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = history.settings
    before = (history.start - pd.Timedelta(days=3)).isoformat()
    long_before = (history.start - pd.Timedelta(days=4)).isoformat()
    cases = [
        (["--model", "1", "--from", long_before, "--to", before, "--warmup", "0s"], "no raw metrics"),
        (
            ["--model", "1", "--from", history.end.isoformat(), "--to", history.start.isoformat()],
            "empty window",
        ),
        (["--model", "1", "--compare", "1", "2", "--from", before, "--to", before], "exactly one of"),
        (["--from", before, "--to", before], "exactly one of"),
        (["--model", "1", "--from", "not-a-time", "--to", before], "error:"),
    ]
    for args, message in cases:
        run = _cli(s, monkeypatch, *args, "--out", str(tmp_path / "out"))
        assert run.exit_code == 2 and message in run.output, (args, run.output)
    # only the first 2 minutes of history: every host is still warming its baseline up
    with pytest.raises(PipelineError, match="baseline warm-up"):
        backtest(
            s, ["1"], history.start, history.start + pd.Timedelta(minutes=2), warmup="0s", out_dir=tmp_path
        )
    assert resolve_model(s.mlflow, "@champion").version == 1


def test_promote_applies_the_backtest_gate_after_the_holdout_and_robustness_checks(history: History) -> None:
    """``promote(backtest_window=...)`` (what the retrain DAG's ``backtest_hours`` turns on): with the
    holdout comparison and robustness gate opened wide, the backtest gate alone decides, and its
    verdict is recorded on the version. Runs last: it may move the champion alias."""
    recall = {v: m["event_recall"] for v, m in history.evaluations.items()}
    gap = abs(recall[2] - recall[1])
    s = history.settings.model_copy(
        update={
            "promotion_margin": -1.0,
            "alarm_budget_per_host_day": 1e6,
            "promotion_ttd_slack": 1e6,
            "robustness_tolerance": 1.0,
            "backtest_tolerance": gap / 2,
        }
    )
    decision = promote(
        s,
        version=2,
        backtest_window=(history.holdout_start, history.end),
        backtest_warmup=history.holdout_start - history.start,
    )
    assert [g.gate for g in decision.gates] == ["served", "robustness", "backtest"], decision.reason
    served, robust, gate = decision.gates
    assert served.passed and robust.passed
    assert gate.challenger_metric == pytest.approx(recall[2]) and gate.champion_metric == pytest.approx(
        recall[1]
    )
    assert decision.promoted is gate.passed is (recall[2] >= recall[1] - gap / 2)
    if not decision.promoted:
        assert decision.reason == gate.reason and decision.reason.startswith("backtest ")
    from pipelines.common import mlflow_client

    tag = mlflow_client(s.mlflow).get_model_version(s.mlflow.model_name, "2").tags["vigil.gate.backtest"]
    assert tag.startswith("passed" if gate.passed else "failed")
