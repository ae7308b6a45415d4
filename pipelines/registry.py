"""register, promote, rollback: the MLflow registry side of the batch loop.

* ``register`` creates a version of ``settings.mlflow.model_name`` from a training run's model, tagged
  with the dataset hash and path, holdout metrics, engine, family, code version and validation
  status, and points the ``challenger`` alias at it.
* ``promote`` moves ``champion`` to the challenger only if validation passed and **the decision
  the detector would serve with it** beats the current one's on the same holdout
  (:func:`pipelines.served.served_gate`: both replayed through ``vigil.serving.ServingPath`` over
  the challenger's holdout with the same injected events and labels; events caught, false alarms
  per host-day against the alarm budget, median time to detect) — or if there is no champion.
  ``force`` skips the comparison and is recorded as such.
  Two extra gates then apply (only when there is a champion and ``force`` is off):
  the **robustness gate** refuses a challenger that, under one of the perturbations of
  :mod:`pipelines.robustness`, loses more than ``settings.training.robustness_tolerance`` F1 beyond what the
  champion loses under the same one (same perturbed holdout); the optional **backtest gate**
  (``backtest_window=``) runs the same served comparison over a window of raw history
  (:func:`pipelines.gates.backtest_gate`).
* ``rollback`` moves ``champion`` back to the version it replaced (each champion version carries
  a ``vigil.previous_champion`` tag written when it was promoted: the history is a chain).

The gates themselves live in :mod:`pipelines.gates` (re-exported here: ``GateResult``,
``robustness_gate``, ``perturbation_drops``, ``write_event``).

Every decision is tagged on the version in MLflow and written to InfluxDB as a
``vigil_model_events`` point, which Grafana annotates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.common import (
    TAG_CODE_VERSION,
    TAG_DATASET_HASH,
    TAG_DATASET_PATH,
    TAG_ENGINE,
    TAG_FAMILY,
    TAG_PREVIOUS_CHAMPION,
    TAG_VALIDATION,
    PipelineError,
    code_version,
    configure_mlflow,
    mlflow_client,
)
from pipelines.evaluate import PRIMARY_METRIC, evaluate
from pipelines.gates import GateResult, backtest_gate, perturbation_drops, robustness_gate
from pipelines.model_events import write_event
from pipelines.robustness import ROBUSTNESS_DROP
from pipelines.served import served_gate
from vigil.influx import InfluxClient
from vigil.model import CHALLENGER, CHAMPION
from vigil.settings import InfluxSettings, MlflowSettings, Settings

log = logging.getLogger(__name__)

__all__ = [
    "GateResult",
    "PromotionDecision",
    "RegisterResult",
    "backtest_gate",
    "perturbation_drops",
    "promote",
    "register",
    "robustness_gate",
    "rollback",
    "write_event",
]

#: The metric every served evaluation logs (its presence says ``evaluate`` ran on the run).
SERVED_MARKER = "holdout_false_alarms_per_host_day"


@dataclass
class RegisterResult:
    name: str
    version: int
    run_id: str
    tags: dict[str, str]


@dataclass
class PromotionDecision:
    promoted: bool
    version: int
    previous_version: int | None
    metric: float
    previous_metric: float | None
    forced: bool
    reason: str
    gates: list[GateResult] = field(default_factory=list)


def _version_of(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(
    influx_config: InfluxSettings,
    registry: MlflowSettings,
    run_id: str,
    *,
    validation_passed: bool,
    artifact_name: str = "model",
    influx: InfluxClient | None = None,
) -> RegisterResult:
    """Register ``runs:/<run_id>/<artifact_name>`` and alias it ``challenger``."""
    import mlflow

    configure_mlflow(registry)
    client = mlflow_client(registry)
    run = client.get_run(run_id)
    run_tags, metrics = run.data.tags, run.data.metrics
    if TAG_DATASET_HASH not in run_tags:
        raise PipelineError(f"run {run_id} is not a training run (no {TAG_DATASET_HASH} tag)")
    holdout = {k: v for k, v in metrics.items() if k.startswith("holdout_")}
    robust = {k: v for k, v in metrics.items() if k.startswith(("robust_", "robustness_"))}
    if SERVED_MARKER not in holdout:
        raise PipelineError(f"run {run_id} has no {SERVED_MARKER}: run `vigil pipeline evaluate` first")
    tags = {
        TAG_DATASET_HASH: run_tags[TAG_DATASET_HASH],
        TAG_DATASET_PATH: run_tags.get(TAG_DATASET_PATH, ""),
        TAG_ENGINE: run_tags.get(TAG_ENGINE, ""),
        TAG_FAMILY: run_tags.get(TAG_FAMILY, ""),
        TAG_CODE_VERSION: run_tags.get(TAG_CODE_VERSION) or code_version(),
        TAG_VALIDATION: "passed" if validation_passed else "failed",
        **{f"metric.{k}": f"{v:.6g}" for k, v in holdout.items()},
        **{f"metric.{k}": f"{v:.6g}" for k, v in robust.items()},
    }
    source = run_tags.get("vigil.logged_model_uri") or f"runs:/{run_id}/{artifact_name}"
    version = mlflow.register_model(source, registry.model_name, tags=tags)
    client.set_registered_model_alias(registry.model_name, CHALLENGER, version.version)
    write_event(
        influx_config,
        registry,
        "register",
        int(version.version),
        metric=holdout.get(PRIMARY_METRIC),
        reason=f"run {run_id}",
        influx=influx,
    )
    log.info("register: %s version %s (challenger)", registry.model_name, version.version)
    return RegisterResult(registry.model_name, int(version.version), run_id, tags)


def promote(
    settings: Settings,
    *,
    version: int | None = None,
    dataset_path: str | Path | None = None,
    force: bool = False,
    influx: InfluxClient | None = None,
    backtest_window: tuple[Any, Any] | None = None,
    backtest_warmup: Any = None,
) -> PromotionDecision:
    """Promote ``version`` (default: the challenger) to champion if it earns it; see module doc.

    ``backtest_window=(start, end)`` adds the backtest gate over that window of raw history
    (``backtest_warmup`` of history before ``start`` warms the baselines; default
    ``settings.detector.history_hours``, as the detector does).
    """
    configure_mlflow(settings.mlflow)
    client = mlflow_client(settings.mlflow)
    name = settings.mlflow.model_name
    if version is None:
        chall = _version_of(client, name, CHALLENGER)
        if chall is None:
            raise PipelineError(f"{name} has no {CHALLENGER!r} version to promote")
        version = int(chall.version)
    mv = client.get_model_version(name, str(version))
    tags = mv.tags
    metric = float(tags.get(f"metric.{PRIMARY_METRIC}", "nan"))
    champion = _version_of(client, name, CHAMPION)
    prev_version = int(champion.version) if champion is not None else None
    prev_metric: float | None = None
    gates: list[GateResult] = []
    if prev_version == version:
        raise PipelineError(f"version {version} is already the champion")

    if force:
        promoted, reason = True, "forced"
    elif tags.get(TAG_VALIDATION) != "passed":
        promoted, reason = False, f"validation {tags.get(TAG_VALIDATION, 'missing')}"
    elif champion is None:
        promoted, reason = True, "no champion yet"
    else:
        dataset = dataset_path or tags.get(TAG_DATASET_PATH)
        if not dataset or not Path(dataset).exists():
            raise PipelineError(f"cannot compare on the challenger's holdout: dataset {dataset!r} not found")
        # the champion, replayed through the served decision on the challenger's holdout
        champ_eval = evaluate(
            settings,
            f"models:/{name}/{prev_version}",
            dataset,
            run_id=mv.run_id,
            holdout_fraction=None,
            prefix="champion_",
        )
        champ_served = _unprefixed(champ_eval.metrics, "champion_holdout_")
        champ_served["fp_windows_raised"] = champ_eval.metrics.get("champion_dataset_fp_windows_raised", 0.0)
        chall_served = _challenger_served(settings, mv, dataset)
        prev_metric = champ_served.get("event_recall", float("nan"))
        metric = chall_served.get("event_recall", float("nan"))
        verdict = served_gate(
            chall_served,
            champ_served,
            budget=settings.training.alarm_budget_per_host_day,
            margin=settings.training.promotion_margin,
            interval_s=settings.features.interval_s,
            ttd_slack=settings.training.promotion_ttd_slack,
        )
        promoted, reason = verdict.passed, verdict.reason
        gates.append(
            GateResult("served", verdict.passed, verdict.reason, version, prev_version, metric, prev_metric)
        )
        if promoted:
            challenger_robust = _challenger_robustness(settings, mv, dataset)
            champion_robust = perturbation_drops(champ_eval.metrics, "champion_")
            gates.append(
                robustness_gate(settings.training, version, prev_version, challenger_robust, champion_robust)
            )
            promoted = gates[-1].passed
        if promoted and backtest_window is not None:
            gates.append(
                backtest_gate(
                    settings,
                    version,
                    prev_version,
                    backtest_window,
                    warmup=backtest_warmup,
                    record=False,
                    influx=influx,
                )
            )
        failed = [g for g in gates if not g.passed]
        if failed:
            promoted, reason = False, failed[0].reason

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.set_model_version_tag(
        name, str(version), "vigil.promotion", "promoted" if promoted else "rejected"
    )
    client.set_model_version_tag(name, str(version), "vigil.promotion_reason", reason)
    client.set_model_version_tag(name, str(version), "vigil.promotion_time", stamp)
    client.set_model_version_tag(name, str(version), "vigil.forced", str(force).lower())
    for gate in gates:
        client.set_model_version_tag(
            name,
            str(version),
            f"vigil.gate.{gate.gate}",
            ("passed: " if gate.passed else "failed: ") + gate.reason,
        )
    if promoted:
        if prev_version is not None:
            client.set_model_version_tag(name, str(version), TAG_PREVIOUS_CHAMPION, str(prev_version))
        client.set_registered_model_alias(name, CHAMPION, str(version))
        if (
            _version_of(client, name, CHALLENGER) is not None
            and int(_version_of(client, name, CHALLENGER).version) == version
        ):
            client.delete_registered_model_alias(name, CHALLENGER)
    write_event(
        settings.influx,
        settings.mlflow,
        "promote" if promoted else "reject",
        version,
        previous_version=prev_version,
        metric=metric,
        previous_metric=prev_metric,
        forced=force,
        reason=reason,
        influx=influx,
    )
    log.info("promote: version %s %s (%s)", version, "promoted" if promoted else "rejected", reason)
    return PromotionDecision(promoted, version, prev_version, metric, prev_metric, force, reason, gates)


def _unprefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


def _challenger_served(settings: Settings, mv: Any, dataset: str | Path) -> dict[str, float]:
    """The challenger's served figures on its holdout: its run's ``holdout_*`` metrics, or computed
    now (a run evaluated before the served evaluation existed) through ``evaluate``.

    NaN is not logged to MLflow (a holdout without events has no recall): missing keys read as NaN.
    """
    logged = mlflow_client(settings.mlflow).get_run(mv.run_id).data.metrics if mv.run_id else {}
    if SERVED_MARKER not in logged:
        ev = evaluate(settings, f"models:/{mv.name}/{mv.version}", dataset, run_id=mv.run_id)
        logged = ev.metrics
    out = _unprefixed(logged, "holdout_")
    out["fp_windows_raised"] = logged.get("dataset_fp_windows_raised", 0.0)
    for key in ("event_recall", "real_event_recall", "median_ttd_s", "false_alarms_per_host_day"):
        out.setdefault(key, float("nan"))
    out.setdefault("events", 0.0)
    return out


def _challenger_robustness(settings: Settings, mv: Any, dataset: str | Path) -> dict[str, float]:
    """The challenger's F1 drop per perturbation: from its run's metrics, else computed now through
    ``evaluate`` on its own holdout (a run evaluated before robustness existed; logged like any)."""
    logged = mlflow_client(settings.mlflow).get_run(mv.run_id).data.metrics if mv.run_id else {}
    if ROBUSTNESS_DROP not in logged:
        logged = evaluate(settings, f"models:/{mv.name}/{mv.version}", dataset, run_id=mv.run_id).metrics
    return perturbation_drops(logged)


def rollback(
    influx_config: InfluxSettings,
    registry: MlflowSettings,
    *,
    influx: InfluxClient | None = None,
    reason: str = "",
) -> PromotionDecision:
    """Move ``champion`` back to the version the current champion replaced."""
    configure_mlflow(registry)
    client = mlflow_client(registry)
    name = registry.model_name
    champion = _version_of(client, name, CHAMPION)
    if champion is None:
        raise PipelineError(f"{name} has no champion to roll back")
    previous = champion.tags.get(TAG_PREVIOUS_CHAMPION)
    if not previous:
        raise PipelineError(
            f"{name} version {champion.version} replaced no champion: nothing to roll back to"
        )
    client.set_registered_model_alias(name, CHAMPION, previous)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.set_model_version_tag(name, champion.version, "vigil.rolled_back", stamp)
    client.set_model_version_tag(name, previous, "vigil.restored_by_rollback", stamp)
    why = reason or f"rollback from {champion.version}"
    write_event(
        influx_config,
        registry,
        "rollback",
        int(previous),
        previous_version=int(champion.version),
        reason=why,
        influx=influx,
    )
    log.info("rollback: champion %s -> %s", champion.version, previous)
    return PromotionDecision(True, int(previous), int(champion.version), float("nan"), None, False, why)
