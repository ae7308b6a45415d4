"""Robustness: the perturbations themselves (seeded, documented magnitudes, labels untouched), their
metrics logged to the real MLflow server by ``evaluate``, and the promotion gate: a challenger whose
threshold hugs the clean normal scores (so noise flips it) beats the champion on the clean holdout
but is refused as too fragile — a reject event with the reason — while a robust one is promoted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.common import (
    TAG_DATASET_HASH,
    TAG_DATASET_PATH,
    TAG_ENGINE,
    TAG_HOLDOUT_FRACTION,
    configure_mlflow,
    mlflow_client,
    time_split,
)
from pipelines.evaluate import PRIMARY_METRIC, evaluate
from pipelines.registry import promote, register, robustness_gate
from pipelines.robustness import PERTURBATIONS, ROBUSTNESS_METRIC, feature_scales, perturb
from pipelines.synthetic import synthetic_dataset
from pipelines.train import train
from vigil.features import FEATURE_COLUMNS
from vigil.influx import InfluxClient
from vigil.pyfunc import log_anomaly_model
from vigil.schema import MODEL_EVENTS
from vigil.settings import Settings

FEATURES = list(FEATURE_COLUMNS)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return time_split(synthetic_dataset(12_000, hosts=6, seed=3)).holdout.reset_index(drop=True)


# --- the perturbations (no services) -----------------------------------------------------------------


def test_perturbations_are_seeded_and_leave_labels_hosts_and_times_alone(holdout: pd.DataFrame) -> None:
    for name in PERTURBATIONS:
        a, b = perturb(holdout, name, seed=7), perturb(holdout, name, seed=7)
        pd.testing.assert_frame_equal(a, b)  # same seed, same frame
        assert not a[FEATURES].equals(perturb(holdout, name, seed=8)[FEATURES])  # another seed, another
        assert not a[FEATURES].equals(holdout[FEATURES])
        untouched = ["host", "time", "label", "label_id", "warmup"]
        pd.testing.assert_frame_equal(a[untouched], holdout[untouched])


def test_perturbation_magnitudes_are_the_documented_ones(holdout: pd.DataFrame) -> None:
    x = holdout[FEATURES].to_numpy()
    sigma = feature_scales(holdout)

    noise = perturb(holdout, "gaussian_noise", seed=1)[FEATURES].to_numpy() - x
    np.testing.assert_allclose(noise.std(axis=0) / sigma, PERTURBATIONS["gaussian_noise"].magnitude, rtol=0.1)

    missing = perturb(holdout, "missing", seed=1)[FEATURES].isna().to_numpy().mean()
    assert missing == pytest.approx(PERTURBATIONS["missing"].magnitude, abs=0.01)

    spiked = perturb(holdout, "outliers", seed=1)[FEATURES].to_numpy()
    changed_rows = (spiked != x).any(axis=1)
    assert changed_rows.mean() == pytest.approx(0.02, abs=0.005)
    r, c = np.nonzero(spiked != x)
    np.testing.assert_allclose(np.abs(spiked[r, c]) / sigma[c], PERTURBATIONS["outliers"].magnitude)

    shifted = perturb(holdout, "level_shift", seed=1)[FEATURES].to_numpy() - x
    moved = np.flatnonzero(np.abs(shifted).max(axis=0) > 0)
    assert len(moved) == len(FEATURES) // 3
    np.testing.assert_allclose(shifted[:, moved] / sigma[moved], PERTURBATIONS["level_shift"].magnitude)


def test_robustness_gate_compares_with_the_tolerance(settings: Settings) -> None:
    tol = settings.robustness_tolerance
    assert robustness_gate(settings, 2, 1, 0.80, 0.80 + tol / 2).passed
    refused = robustness_gate(settings, 2, 1, 0.50, 0.50 + 2 * tol)
    assert not refused.passed and "too fragile" in refused.reason
    assert robustness_gate(settings, 2, None, 0.1, float("nan")).passed  # nothing to compare with


# --- evaluate logs it; promote gates on it (real MLflow and InfluxDB) ---------------------------------


@pytest.fixture(scope="module")
def rob_settings(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return mlflow_settings.model_copy(
        update={
            "run_dir": tmp_path_factory.mktemp("robustness"),
            "influx_vigil_db": "rob_vigil",
            "model_name": "vigil-robustness",
            "mlflow_experiment": "robustness",
        }
    )


def _log_variant(settings: Settings, base_run_id: str, model, run_name: str) -> str:
    """Log ``model`` as the contract pyfunc in a new run tagged like the training run it derives from."""
    import mlflow

    configure_mlflow(settings)
    base = mlflow_client(settings).get_run(base_run_id).data.tags
    keep = (TAG_DATASET_HASH, TAG_DATASET_PATH, TAG_ENGINE, TAG_HOLDOUT_FRACTION)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({k: base[k] for k in keep} | {"vigil.derived_from": base_run_id})
        # explicit requirements: skips MLflow's slow environment inference (test-only variant)
        info = log_anomaly_model(model, pip_requirements=["mlflow", "scikit-learn", "pandas", "numpy"])
        mlflow.set_tag("vigil.logged_model_uri", info.model_uri)
    return run.info.run_id


def test_fragile_challenger_is_refused_and_a_robust_one_promoted(
    rob_settings: Settings, tmp_path: Path
) -> None:
    import mlflow

    settings = rob_settings
    path = tmp_path / "synthetic.parquet"
    frame = synthetic_dataset(12_000, hosts=6, seed=3)
    frame.to_parquet(path, index=False)

    # champion: a one-component Gaussian mixture with the threshold the search chose
    champ = train(
        settings,
        path,
        families=("gaussian_mixture",),
        grid_overrides={"gaussian_mixture": {"n_components": [1]}},
    )
    champ_eval = evaluate(settings, champ.model_uri, path)
    logged = mlflow_client(settings).get_run(champ.run_id).data.metrics
    for name in PERTURBATIONS:  # every perturbation's F1 beside the clean one, in MLflow
        assert logged[f"robust_{name}_f1"] == pytest.approx(champ_eval.metrics[f"robust_{name}_f1"])
    per_perturbation = [champ_eval.metrics[f"robust_{n}_f1"] for n in PERTURBATIONS]
    assert logged[ROBUSTNESS_METRIC] == pytest.approx(min(per_perturbation))  # the summary is the worst case
    assert PRIMARY_METRIC in logged
    artifacts = {a.path for a in mlflow_client(settings).list_artifacts(champ.run_id, "evaluation")}
    assert "evaluation/robustness.png" in artifacts
    v1 = register(settings, champ.run_id, validation_passed=True)
    assert promote(settings).promoted  # no champion yet: gates do not apply

    # fragile challenger: same scorer, threshold just above the highest clean normal holdout score
    anomaly_model = mlflow.pyfunc.load_model(champ.logged_model_uri).unwrap_python_model().model
    hold = time_split(frame).holdout.reset_index(drop=True)
    scores = anomaly_model.score(hold)
    edge = float(scores[hold["label"].to_numpy() == 0].max())
    fragile = dataclasses.replace(anomaly_model, threshold=float(np.nextafter(edge, np.inf)))
    fragile_run = _log_variant(settings, champ.run_id, fragile, "fragile-threshold")
    fragile_eval = evaluate(settings, f"runs:/{fragile_run}/model", path, run_id=fragile_run)
    # on the clean holdout it wins, so the holdout rule alone would promote it ...
    assert (
        fragile_eval.metrics[PRIMARY_METRIC] > champ_eval.metrics[PRIMARY_METRIC] + settings.promotion_margin
    )
    # ... but noise flips it
    assert (
        fragile_eval.metrics[ROBUSTNESS_METRIC]
        < champ_eval.metrics[ROBUSTNESS_METRIC] - settings.robustness_tolerance
    )
    v2 = register(settings, fragile_run, validation_passed=True)
    refused = promote(settings)
    assert not refused.promoted and refused.version == v2.version
    assert [g.gate for g in refused.gates] == ["robustness"] and not refused.gates[0].passed
    assert refused.reason.startswith(ROBUSTNESS_METRIC) and "too fragile" in refused.reason
    assert refused.gates[0].champion_metric == pytest.approx(champ_eval.metrics[ROBUSTNESS_METRIC])
    tags = mlflow_client(settings).get_model_version(settings.model_name, str(v2.version)).tags
    assert tags["vigil.promotion"] == "rejected" and tags["vigil.gate.robustness"].startswith("failed")

    # robust challenger: a local outlier factor model from the same search code
    lof = train(settings, path, families=("lof",), grid_overrides={"lof": {"n_neighbors": [10]}})
    lof_eval = evaluate(settings, lof.model_uri, path)
    v3 = register(settings, lof.run_id, validation_passed=True)
    accepted = promote(settings)
    assert accepted.promoted and accepted.version == v3.version, accepted.reason
    assert accepted.gates[0].passed
    assert (
        lof_eval.metrics[ROBUSTNESS_METRIC]
        >= champ_eval.metrics[ROBUSTNESS_METRIC] - settings.robustness_tolerance
    )

    for label, ev in (("champion", champ_eval), ("fragile", fragile_eval), ("lof", lof_eval)):
        print(
            f"\n{label}: clean f1 {ev.metrics[PRIMARY_METRIC]:.3f}, "
            + ", ".join(f"{n} {ev.metrics[f'robust_{n}_f1']:.3f}" for n in PERTURBATIONS)
        )
    print(f"refused: {refused.reason}\naccepted: {accepted.gates[0].reason}")
    events = InfluxClient(settings=settings).query_df(
        settings.influx_vigil_db, f'SELECT * FROM "{MODEL_EVENTS.name}"'
    )
    assert events["event"].tolist() == ["register", "promote", "register", "reject", "register", "promote"]
    reject = events[events["event"] == "reject"].iloc[0]
    assert int(reject["version"]) == v2.version and int(reject["previous_version"]) == v1.version
    assert "too fragile" in reject["reason"]
