"""The promotion gates beyond the served comparison (:func:`pipelines.served.served_gate`), each a
:class:`GateResult`:

* the **robustness gate** (:func:`robustness_gate`): a challenger more fragile than the champion
  under some perturbation of :mod:`pipelines.robustness` is refused;
* the **backtest gate** (:func:`backtest_gate`): challenger and champion replayed over a window of
  raw history through the served decision (:mod:`pipelines.backtest`).

Apart from :mod:`pipelines.registry` (``promote`` applies them) so that the backtest does not need
the registry and the registry does not need to import the backtest lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.backtest import GATE_METRIC, ModelRef, backtest, resolve_model
from pipelines.common import PipelineError, mlflow_client
from pipelines.model_events import write_event
from pipelines.robustness import PERTURBATIONS
from pipelines.served import served_gate
from vigil.influx import InfluxClient
from vigil.model import CHAMPION
from vigil.settings import InfluxSettings, MlflowSettings, Settings, TrainingSettings

log = logging.getLogger(__name__)


@dataclass
class GateResult:
    """One extra promotion check (``robustness``, ``backtest``): passed or not, and why."""

    gate: str
    passed: bool
    reason: str
    challenger_version: int | None
    champion_version: int | None
    challenger_metric: float | None = None
    champion_metric: float | None = None
    tolerance: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def perturbation_drops(metrics: dict[str, float], prefix: str = "") -> dict[str, float]:
    """F1 lost under each perturbation: ``holdout_f1 - robust_<p>_f1`` (NaN where not measured)."""
    clean = metrics.get(f"{prefix}holdout_f1", float("nan"))
    return {p: clean - metrics.get(f"{prefix}robust_{p}_f1", float("nan")) for p in PERTURBATIONS}


def robustness_gate(
    training: TrainingSettings,
    challenger_version: int,
    champion_version: int | None,
    challenger_drops: dict[str, float],
    champion_drops: dict[str, float],
    *,
    tolerance: float | None = None,
) -> GateResult:
    """Refuse a challenger that is more fragile than the champion: under some perturbation it loses
    more than ``tolerance`` F1 beyond what the champion loses under the same one
    (:func:`perturbation_drops` of each, same holdout and seed).

    Why drops, per perturbation, and not the perturbed F1 itself: the F1s are measured against the
    holdout's events — injected ones on a fleet without labels — so their level is the model's
    sensitivity, which the served gate already judges (and which an operator's false positives may
    lower on purpose), and a model that pages on everything keeps the F1 of "everything flagged"
    under every perturbation. What this gate adds is how much of its own clean F1 a little noise, a
    missing field, an outlier or a shifted baseline takes away, compared perturbation by
    perturbation. Missing (NaN) champion figures cannot be judged and pass, saying so.
    """
    tol = training.robustness_tolerance if tolerance is None else tolerance
    excess = {
        p: challenger_drops.get(p, float("nan")) - champion_drops[p]
        for p in champion_drops
        if np.isfinite(champion_drops[p])
    }
    if champion_version is None or not excess:
        return GateResult(
            "robustness", True, "no champion robustness to compare with", challenger_version, champion_version
        )
    worst = max(excess, key=lambda p: excess[p] if np.isfinite(excess[p]) else np.inf)
    chall, champ = float(challenger_drops.get(worst, float("nan"))), float(champion_drops[worst])
    if np.isfinite(excess[worst]) and excess[worst] <= tol:
        passed, why = True, f"robust_{worst}_f1 drops {chall:.4f} <= champion's {champ:.4f} + {tol}"
    else:
        passed, why = (
            False,
            f"robust_{worst}_f1 drops {chall:.4f} > champion's {champ:.4f} + {tol} (too fragile)",
        )
    return GateResult(
        "robustness", passed, why, challenger_version, champion_version, chall, champ, tol, {"excess": excess}
    )


# --- the promotion gate --------------------------------------------------------------------------------


def backtest_gate(
    settings: Settings,
    challenger_version: int,
    champion_version: int | None,
    window: tuple[Any, Any],
    *,
    warmup: timedelta | str | None = None,
    tolerance: float | None = None,
    record: bool = True,
    out_dir: Path | None = None,
    influx: InfluxClient | None = None,
    raw_db: str | None = None,
) -> GateResult:
    """Back-test challenger and champion on ``window`` = (start, end) through the served decision;
    pass when :func:`pipelines.served.served_gate` passes with the challenger allowed ``tolerance``
    (default ``settings.training.backtest_tolerance``) fewer events caught than the champion: it must not
    page more than both the champion and the alarm budget, nor detect much slower.

    ``champion_version=None`` means the current ``champion`` alias; with no champion at all the
    gate passes (nothing to compare). A window without events (too short to inject into, nothing
    labelled) is judged on false alarms alone. With ``record`` (the default, for a DAG task calling
    the gate on its own), the outcome is tagged on the challenger version (``vigil.gate.backtest``),
    the event recalls are logged to its run (``backtest_event_recall``,
    ``backtest_champion_event_recall``), and a failure is written as a ``reject`` model event with
    the reason — exactly what ``promote`` records for its own refusals.
    ``promote(backtest_window=...)`` calls it with ``record=False`` and records the decision itself.
    """
    name = settings.mlflow.model_name
    tol = settings.training.backtest_tolerance if tolerance is None else tolerance
    challenger = resolve_model(settings.mlflow, f"{name}/{int(challenger_version)}")
    if champion_version is None:
        try:
            champion_version = resolve_model(settings.mlflow, f"{name}@{CHAMPION}").version
        except PipelineError:
            champion_version = None
    if champion_version is None:
        gate = GateResult(
            "backtest", True, "no champion to compare with", challenger.version, None, tolerance=tol
        )
        return _record(settings.influx, settings.mlflow, gate, challenger, record, influx)
    if int(champion_version) == challenger.version:
        raise PipelineError(f"version {challenger.version} is both challenger and champion")
    result = backtest(
        settings,
        [f"{name}/{challenger.version}", f"{name}/{int(champion_version)}"],
        window[0],
        window[1],
        warmup=warmup,
        out_dir=out_dir,
        client=influx,
        raw_db=raw_db,
    )
    chall = result.metrics_of(challenger.version)
    champ = result.metrics_of(int(champion_version))
    details = {
        "window": [str(result.start), str(result.end)],
        "rows": result.rows,
        "events": result.events,
        "markdown": str(result.markdown_path),
        "png": str(result.png_path),
    }
    verdict = served_gate(
        chall,
        champ,
        budget=settings.training.alarm_budget_per_host_day,
        margin=-tol,
        interval_s=settings.features.interval_s,
        ttd_slack=settings.training.promotion_ttd_slack,
    )
    passed, why = verdict.passed, f"backtest {verdict.reason}"
    chall, champ = chall[GATE_METRIC], champ[GATE_METRIC]
    gate = GateResult(
        "backtest", passed, why, challenger.version, int(champion_version), chall, champ, tol, details
    )
    return _record(settings.influx, settings.mlflow, gate, challenger, record, influx)


def _record(
    influx_config: InfluxSettings,
    registry: MlflowSettings,
    gate: GateResult,
    challenger: ModelRef,
    record: bool,
    influx: InfluxClient | None,
) -> GateResult:
    log.info(
        "backtest gate: version %s %s (%s)",
        gate.challenger_version,
        "passed" if gate.passed else "failed",
        gate.reason,
    )
    if not record:
        return gate
    client = mlflow_client(registry)
    verdict = ("passed: " if gate.passed else "failed: ") + gate.reason
    client.set_model_version_tag(challenger.name, str(challenger.version), "vigil.gate.backtest", verdict)
    if challenger.run_id and gate.challenger_metric is not None and np.isfinite(gate.challenger_metric):
        client.log_metric(challenger.run_id, "backtest_event_recall", gate.challenger_metric)
        if gate.champion_metric is not None and np.isfinite(gate.champion_metric):
            client.log_metric(challenger.run_id, "backtest_champion_event_recall", gate.champion_metric)
    if not gate.passed:
        client.set_model_version_tag(challenger.name, str(challenger.version), "vigil.promotion", "rejected")
        client.set_model_version_tag(
            challenger.name, str(challenger.version), "vigil.promotion_reason", gate.reason
        )
        write_event(
            influx_config,
            registry,
            "reject",
            challenger.version,
            previous_version=gate.champion_version,
            metric=gate.challenger_metric,
            previous_metric=gate.champion_metric,
            reason=gate.reason,
            influx=influx,
        )
    return gate
