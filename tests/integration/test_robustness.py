"""Robustness: the perturbations themselves (seeded, documented magnitudes, labels untouched), their
metrics logged to the real MLflow server by ``evaluate``, and the promotion gate: a challenger whose
threshold hugs the normal holdout scores (so noise flips it) passes the served comparison but is
refused as too fragile — a reject event with the reason — while a robust one is promoted."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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
from pipelines.robustness import PERTURBATIONS, ROBUSTNESS_DROP, ROBUSTNESS_METRIC, feature_scales, perturb
from pipelines.synthetic import synthetic_dataset, synthetic_history
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


def test_robustness_gate_compares_fragility_perturbation_by_perturbation(settings: Settings) -> None:
    tol = settings.training.robustness_tolerance
    champion = {p: 0.10 for p in PERTURBATIONS}
    assert robustness_gate(
        settings.training, 2, 1, {p: 0.05 for p in PERTURBATIONS}, champion
    ).passed  # less fragile
    assert robustness_gate(
        settings.training, 2, 1, {**champion, "missing": 0.10 + tol / 2}, champion
    ).passed  # within
    refused = robustness_gate(settings.training, 2, 1, {**champion, "missing": 0.10 + 2 * tol}, champion)
    assert (
        not refused.passed
        and "too fragile" in refused.reason
        and refused.reason.startswith("robust_missing_f1")
    )
    nothing = {p: float("nan") for p in PERTURBATIONS}
    assert robustness_gate(settings.training, 2, 1, champion, nothing).passed  # nothing to compare with
    assert robustness_gate(settings.training, 2, None, champion, champion).passed


@dataclasses.dataclass
class DropsFieldsAsAlarms:
    """A scorer that reads a missing field as an emergency. The model contract reads NaN as 0 ("at
    the host's baseline"); real feature cells are never exactly 0, so on clean data this scores
    exactly like the scorer it wraps, and as soon as a collector drops fields every row pages."""

    base: Any
    zero_point: np.ndarray  # where a raw 0 lands after the base scorer's scaling

    @classmethod
    def around(cls, base: Any) -> DropsFieldsAsAlarms:
        return cls(base, base.scaled(np.zeros((1, len(FEATURES))))[0])

    def scaled(self, x: np.ndarray) -> np.ndarray:
        return self.base.scaled(x)

    def score_scaled(self, xs: np.ndarray) -> np.ndarray:
        return self.base.score_scaled(xs) + 1e6 * np.isclose(xs, self.zero_point).any(axis=1)

    def references(self, xs: np.ndarray) -> np.ndarray:
        return self.base.references(xs)


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

    configure_mlflow(settings.mlflow)
    base = mlflow_client(settings.mlflow).get_run(base_run_id).data.tags
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
    path, _ = synthetic_history(tmp_path, hosts=5, hours=10, seed=3)  # features + raw frames, seeded labels

    # champion: a one-component Gaussian mixture with the threshold the label-free search chose
    champ = train(
        settings,
        path,
        families=("gaussian_mixture",),
        grid_overrides={"gaussian_mixture": {"n_components": [1]}},
    )
    champ_eval = evaluate(settings, champ.model_uri, path)
    logged = mlflow_client(settings.mlflow).get_run(champ.run_id).data.metrics
    for name in PERTURBATIONS:  # every perturbation's F1 beside the clean one, in MLflow
        assert logged[f"robust_{name}_f1"] == pytest.approx(champ_eval.metrics[f"robust_{name}_f1"])
    per_perturbation = [champ_eval.metrics[f"robust_{n}_f1"] for n in PERTURBATIONS]
    assert logged[ROBUSTNESS_METRIC] == pytest.approx(min(per_perturbation))  # the summary is the worst case
    assert logged[ROBUSTNESS_DROP] == pytest.approx(champ_eval.metrics["holdout_f1"] - min(per_perturbation))
    assert PRIMARY_METRIC in logged
    artifacts = {a.path for a in mlflow_client(settings.mlflow).list_artifacts(champ.run_id, "evaluation")}
    assert "evaluation/robustness.png" in artifacts
    v1 = register(settings.influx, settings.mlflow, champ.run_id, validation_passed=True)
    assert promote(settings).promoted  # no champion yet: gates do not apply

    # fragile challenger: the champion's very scores on clean data, but a dropped field pages
    anomaly_model = mlflow.pyfunc.load_model(champ.logged_model_uri).unwrap_python_model().model
    fragile = dataclasses.replace(anomaly_model, scorer=DropsFieldsAsAlarms.around(anomaly_model.scorer))
    fragile_run = _log_variant(settings, champ.run_id, fragile, "fragile-missing-fields")
    fragile_eval = evaluate(settings, f"runs:/{fragile_run}/model", path, run_id=fragile_run)
    # clean, it serves exactly what the champion serves, so the served comparison lets it through ...
    for key in (PRIMARY_METRIC, "holdout_false_alarms_per_host_day", "holdout_median_ttd_s"):
        assert fragile_eval.metrics[key] == pytest.approx(champ_eval.metrics[key], nan_ok=True), key
    # ... but a collector dropping fields flips it
    assert fragile_eval.metrics["robust_missing_f1"] < champ_eval.metrics["robust_missing_f1"]
    fragile_missing_drop = fragile_eval.metrics["holdout_f1"] - fragile_eval.metrics["robust_missing_f1"]
    champion_missing_drop = champ_eval.metrics["holdout_f1"] - champ_eval.metrics["robust_missing_f1"]
    assert fragile_missing_drop > champion_missing_drop + settings.training.robustness_tolerance
    v2 = register(settings.influx, settings.mlflow, fragile_run, validation_passed=True)
    refused = promote(settings)
    assert not refused.promoted and refused.version == v2.version
    assert [g.gate for g in refused.gates] == ["served", "robustness"], refused.reason
    assert refused.gates[0].passed and not refused.gates[1].passed
    assert refused.reason.startswith("robust_missing_f1 drops") and "too fragile" in refused.reason
    champion_missing_drop = champ_eval.metrics["holdout_f1"] - champ_eval.metrics["robust_missing_f1"]
    assert refused.gates[1].champion_metric == pytest.approx(champion_missing_drop)
    tags = mlflow_client(settings.mlflow).get_model_version(settings.mlflow.model_name, str(v2.version)).tags
    assert tags["vigil.promotion"] == "rejected" and tags["vigil.gate.robustness"].startswith("failed")

    # robust challenger: the champion's own configuration retrained (another seed), which the
    # served comparison and the robustness gate both let through
    again = train(
        settings,
        path,
        families=("gaussian_mixture",),
        grid_overrides={"gaussian_mixture": {"n_components": [1]}},
        seed=7,
    )
    again_eval = evaluate(settings, again.model_uri, path)
    v3 = register(settings.influx, settings.mlflow, again.run_id, validation_passed=True)
    accepted = promote(settings)
    assert accepted.promoted and accepted.version == v3.version, accepted.reason
    assert [g.passed for g in accepted.gates] == [True, True]
    assert accepted.gates[1].reason.startswith("robust_")

    for label, ev in (("champion", champ_eval), ("fragile", fragile_eval), ("retrained", again_eval)):
        print(
            f"\n{label}: clean f1 {ev.metrics['holdout_f1']:.3f}, "
            + ", ".join(f"{n} {ev.metrics[f'robust_{n}_f1']:.3f}" for n in PERTURBATIONS)
            + f", drop {ev.metrics[ROBUSTNESS_DROP]:.3f}"
        )
    print(f"refused: {refused.reason}\naccepted: {accepted.gates[1].reason}")
    events = InfluxClient(settings.influx).query_df(
        settings.influx.vigil_db, f'SELECT * FROM "{MODEL_EVENTS.name}"'
    )
    assert events["event"].tolist() == ["register", "promote", "register", "reject", "register", "promote"]
    reject = events[events["event"] == "reject"].iloc[0]
    assert int(reject["version"]) == v2.version and int(reject["previous_version"]) == v1.version
    assert "too fragile" in reject["reason"]
