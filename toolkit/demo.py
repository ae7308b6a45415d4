"""``vigil demo``: the whole product in one command, on this machine.

Steps (each prints its progress and its time):

1. preflight — the run folder and ``influxd`` are there;
2. ``vigil up`` — InfluxDB, MLflow, Airflow, detector, target app (all but the collector);
3. seed 24 h of history (skipped when it is already there); the seeder's ground truth goes to
   ``vigil_labels`` with ``source=seed``;
4. trigger ``vigil_retrain`` through Airflow's REST API and wait for a champion
   (skipped when a champion exists, unless ``--retrain``). The retrain is **label-free**: it
   learns only from operator and stress labels (``VIGIL_TRAINING__LABEL_SOURCES``), so the seeded
   labels are hidden from it and only score the champion afterwards — the demo prints how many of
   the holdout's seeded events its served decision caught;
5. start the collector (``vigil up`` for the last service), so this machine's baseline is
   learnt on its ordinary state rather than on the platform's own setup work;
6. wait until the detector serves that champion and this host is out of warm-up;
7. run the stress suite against the running detector;
8. print the table and the addresses (Airflow UI, MLflow UI, report folder).

Why the collector starts last: the demo's monitored host is also the machine that seeds and
trains, minutes of 100 % CPU. A baseline learnt then (the first ``warmup`` intervals absorb
everything) has a spread inflated for hours (its half-life is 1 h), and a later CPU spike
looks small next to it — right for a host that really does heavy work all the time, wrong
for a demo that should start from the machine's ordinary state.

Safe to run again: services already up are left alone, existing history and an
existing champion are reused, and every run writes its reports into a new folder.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import requests

from stress.report import DetectionReport, preload_plotting
from stress.runner import format_table, monitored_host, run_suite
from vigil import schema
from vigil.cli_errors import interrupted
from vigil.errors import VigilError
from vigil.influx import InfluxClient, InfluxError, quote_ident, quote_literal
from vigil.settings import Settings, get_settings, is_explicit

Echo = Callable[[str], None]
RETRAIN_DAG = "vigil_retrain"
#: Seconds of load per scenario and least rest between scenarios in the demo (and the live test):
#: a 5 s interval fully inside the load is read, scored and alarmed well within 30 s.
DEMO_DURATION_S = 30.0
DEMO_SETTLE_S = 10.0
#: The demo samples and scores every 5 s (collector, features, seeded history, training), not at
#: Telegraf's usual 10 s. Why: every wait in the demo is a number of intervals (the host's
#: 30-interval warm-up, the features' 6-interval short window that keeps a load's trace, the
#: time to alarm), so halving the interval halves them. Measured with the suite resting until
#: the host is quiet: 10 s took 898 s for the suite (plus ~5 min warm-up), 5 s took 518 s,
#: every scenario as expected both times. Set VIGIL_FEATURES__INTERVAL_S or
#: VIGIL_COLLECTION__INTERVAL_S to choose another interval.
DEMO_INTERVAL_S = 5


def demo_settings(settings: Settings) -> Settings:
    """``settings`` with the demo's interval, unless the user chose an interval."""
    if is_explicit(settings, "feature_interval_s") or is_explicit(settings, "collect_interval_s"):
        return settings
    return settings.model_copy(
        update={"feature_interval_s": DEMO_INTERVAL_S, "collect_interval_s": float(DEMO_INTERVAL_S)}
    )


class DemoError(VigilError, RuntimeError):
    """A demo step failed; the message says which and what to look at."""


@dataclass
class DemoResult:
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    champion_version: str | None = None
    reports: list[DetectionReport] = field(default_factory=list)
    report_dir: Path | None = None
    total_s: float = 0.0


class _Steps:
    """Numbered steps with their durations: ``with steps("seed"): ...``."""

    def __init__(self, total: int, echo: Echo, result: DemoResult) -> None:
        self.total, self.echo, self.result, self.n = total, echo, result, 0

    def __call__(self, title: str) -> _Step:
        self.n += 1
        return _Step(self, title)


class _Step:
    def __init__(self, steps: _Steps, title: str) -> None:
        self.steps, self.title = steps, title

    def __enter__(self) -> _Step:
        self.began = time.monotonic()
        self.steps.echo(f"\n[{self.steps.n}/{self.steps.total}] {self.title}")
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        took = time.monotonic() - self.began
        self.steps.result.steps[self.title] = round(took, 1)
        state = "done" if exc_type is None else "FAILED"
        self.steps.echo(f"[{self.steps.n}/{self.steps.total}] {state} in {took:.1f} s")


# --- the steps --------------------------------------------------------------------------------------------


def preflight(settings: Settings, echo: Echo) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    echo(f"run folder: {settings.run_dir}")
    if shutil.which("influxd") is None:
        raise DemoError("influxd is not installed: run scripts/bootstrap.sh (installs Debian's influxdb)")


#: started last (see the module docstring)
LATE_SERVICES = ("collector",)


def start_stack(settings: Settings, echo: Echo, late: bool = False) -> None:
    """``vigil up`` for every service but :data:`LATE_SERVICES` (or, with ``late``, for those)."""
    from toolkit.stack import manager
    from vigil.processes import ServiceError

    only, skip = (LATE_SERVICES, ()) if late else ((), LATE_SERVICES)
    try:
        manager.up(settings, only=only, skip=skip, echo=echo)
    except ServiceError as exc:
        raise DemoError(f"vigil up failed: {exc}") from exc
    started = {svc.name for svc in manager.select_services(only=only, skip=skip)}
    missing = [
        f"{r.name} ({r.note or 'unhealthy'})"
        for r in manager.status(settings)
        if r.name in started and not r.healthy
    ]
    if missing:
        raise DemoError(f"services not healthy after vigil up: {', '.join(missing)} (see `vigil status`)")


def history_present(client: InfluxClient, settings: Settings, host: str, hours: float) -> bool:
    """True when ``host`` already has at least 90% of the points ``hours`` of seeding would write."""
    q = (
        f'SELECT count("used_percent") FROM {quote_ident(schema.RAW_MEM)} '
        f"WHERE {quote_ident('host')} = {quote_literal(host)} AND time > now() - {int(hours * 3600)}s"
    )
    try:
        series = client.query(settings.influx.raw_db, q)
    except InfluxError:
        return False
    count = series[0]["values"][0][1] if series and series[0].get("values") else 0
    return count >= 0.9 * hours * 3600 / settings.collection.interval_s


def seed(settings: Settings, hours: float, hosts: int, echo: Echo) -> None:
    from toolkit.seed import seed_history
    from vigil.synthetic import host_names

    client = InfluxClient(settings.influx)
    first = host_names(hosts)[0]
    if history_present(client, settings, first, hours):
        echo(f"{hours:g} h of history already there for {first}: not seeding again")
        return
    result = seed_history(
        client, settings.influx, settings.collection, hours=hours, hosts=hosts, seed=settings.random_seed
    )
    echo(f"wrote {result.points:,} points for {len(result.hosts)} hosts in {result.seconds:.1f} s")


def champion_version(settings: Settings) -> str | None:
    """The registered model's ``champion`` version, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    try:
        return str(
            MlflowClient(tracking_uri=settings.mlflow.uri)
            .get_model_version_by_alias(settings.mlflow.model_name, "champion")
            .version
        )
    except MlflowException:
        return None


#: A fresh Airflow starts the retrain's scheduled run when the DAG is first unpaused; the demo
#: follows that run if one appears within this many seconds, rather than queuing its own.
JOIN_RUN_WITHIN_S = 8.0


def retrain(settings: Settings, force: bool, echo: Echo, timeout_s: float = 900.0) -> str:
    """Trigger ``vigil_retrain`` (or follow the run already under way); return the champion version."""
    from toolkit.airflow_client import AirflowApiError, AirflowClient, trigger_and_follow

    existing = champion_version(settings)
    if existing and not force:
        echo(
            f"champion already registered: {settings.mlflow.model_name} v{existing} (use --retrain to train again)"
        )
        return existing
    try:
        client = AirflowClient.from_settings(settings.airflow)
        outcome = trigger_and_follow(
            client, RETRAIN_DAG, {}, echo=echo, timeout_s=timeout_s, join_active_within_s=JOIN_RUN_WITHIN_S
        )
    except AirflowApiError as exc:
        raise DemoError(f"could not run {RETRAIN_DAG}: {exc}") from exc
    if isinstance(outcome, str) or outcome.state != "success":
        url = outcome if isinstance(outcome, str) else outcome.ui_url
        raise DemoError(f"{RETRAIN_DAG} did not succeed; see {url}")
    if outcome.summary:
        echo(f"retrain summary: {outcome.summary}")
    deadline = time.monotonic() + 60
    while (version := champion_version(settings)) is None:
        if time.monotonic() > deadline:
            raise DemoError(f"{RETRAIN_DAG} succeeded but no champion alias on {settings.mlflow.model_name}")
        time.sleep(2)
    echo(f"champion: {settings.mlflow.model_name} v{version}")
    figures = champion_figures(settings, version)
    if figures:
        echo(figures)
    return version


def champion_figures(settings: Settings, version: str) -> str:
    """One line of the champion's served holdout figures (its version tags), "" if it has none."""
    from mlflow import MlflowClient

    tags = (
        MlflowClient(tracking_uri=settings.mlflow.uri)
        .get_model_version(settings.mlflow.model_name, version)
        .tags
    )

    def tag(name: str) -> float:
        try:
            return float(tags.get(f"metric.holdout_{name}", "nan"))
        except ValueError:
            return float("nan")

    if "metric.holdout_false_alarms_per_host_day" not in tags:
        return ""
    return (
        f"label-free champion on its holdout (served decision; seeded labels hidden from training): "
        f"{tag('real_event_recall'):.0%} of {tag('real_events'):.0f} seeded events caught, "
        f"{tag('injected_event_recall'):.0%} of {tag('injected_events'):.0f} injected ones, "
        f"{tag('false_alarms_per_host_day'):.2f} false alarms per host-day"
    )


def detector_health(settings: Settings) -> dict[str, Any] | None:
    try:
        resp = requests.get(f"{settings.detector.url}/health", timeout=3)
        return resp.json()
    except (requests.RequestException, ValueError):
        return None


def latest_prediction(client: InfluxClient, settings: Settings, host: str) -> dict[str, Any] | None:
    """This host's newest combined prediction in the last 10 minutes (time, warmup, version)."""
    q = (
        f'SELECT last("score") AS "score", "warmup" FROM {quote_ident(schema.PREDICTIONS.name)} '
        f"WHERE {quote_ident('host')} = {quote_literal(host)} AND {quote_ident('source')} = 'combined' "
        f"AND time > now() - 10m"
    )
    try:
        frame = client.query_df(settings.influx.vigil_db, q)
    except InfluxError:
        return None
    if frame.empty:
        return None
    row = frame.iloc[-1]
    return {"time": row["time"], "warmup": int(row.get("warmup") or 0)}


def wait_detector_ready(
    settings: Settings, version: str | None, echo: Echo, timeout_s: float | None = None
) -> None:
    """Until the detector serves ``version`` and scores this host outside warm-up.

    Why wait: a host new to the detector is scored without alarming for
    ``warmup_s`` seconds (its baseline is being learnt); a suite started earlier
    would count every scenario as missed.
    """
    host = monitored_host(settings.collection)
    client = InfluxClient(settings.influx)
    limit = timeout_s or settings.detector.warmup_s + 300
    deadline = time.monotonic() + limit
    last_echo = 0.0
    while True:
        health = detector_health(settings) or {}
        served = str((health.get("model") or {}).get("version") or "")
        latest = latest_prediction(client, settings, host)
        model_ok = version is None or served == version
        host_ok = latest is not None and latest["warmup"] == 0
        if model_ok and host_ok:
            echo(f"detector serves v{served or '?'}; {host} scored outside warm-up (last {latest['time']})")
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"detector not ready after {limit:.0f} s: model {served or 'none'} (want {version}), "
                f"host {host}: {latest or 'no predictions'} — see {settings.run_dir / 'logs' / 'detector.log'}"
            )
        if time.monotonic() - last_echo >= 15:
            last_echo = time.monotonic()
            state = (
                "no predictions yet" if latest is None else ("warming up" if latest["warmup"] else "scored")
            )
            echo(
                f"  waiting: detector model v{served or '-'} (want v{version or 'any'}), {host}: {state}, "
                f"{deadline - time.monotonic():.0f} s left"
            )
        time.sleep(max(0.2, min(5.0, deadline - time.monotonic())))


def mlflow_experiment_link(settings: Settings) -> str:
    """The training experiment in MLflow's UI (runs, not the GenAI overview), or the experiments
    list while there is none yet or MLflow does not answer (one quick REST call: the MLflow client
    would retry for minutes)."""
    from vigil.mlflow_ui import experiment_url, home_url

    try:
        resp = requests.get(
            f"{settings.mlflow.uri}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": settings.mlflow.experiment},
            timeout=3,
        )
        experiment_id = resp.json()["experiment"]["experiment_id"] if resp.ok else None
    except (requests.RequestException, ValueError, KeyError):
        experiment_id = None
    return (
        experiment_url(settings.mlflow.uri, experiment_id) if experiment_id else home_url(settings.mlflow.uri)
    )


def addresses(settings: Settings, report_dir: Path | None) -> list[tuple[str, str]]:
    from toolkit.stack.airflow import password_file

    rows = [
        (
            "Airflow UI",
            f"{settings.airflow.base_url}  (user {settings.airflow.username}, password in {password_file(settings.airflow)})",
        ),
        ("MLflow UI", mlflow_experiment_link(settings)),
        (
            "InfluxDB",
            f"{settings.influx.base_url}  (databases {settings.influx.raw_db}, {settings.influx.vigil_db})",
        ),
        ("detector", f"{settings.detector.url}/health"),
        ("target app", f"http://127.0.0.1:{settings.stress.target_port}/health"),
    ]
    if report_dir is not None:
        rows.append(("reports", str(report_dir)))
    return rows


# --- the whole demo ----------------------------------------------------------------------------------------


def run_demo(
    settings: Settings,
    *,
    hours: float = 24.0,
    hosts: int = 5,
    force_retrain: bool = False,
    duration_s: float | None = DEMO_DURATION_S,
    settle_s: float = DEMO_SETTLE_S,
    intensity: float | None = None,
    scenarios: tuple[str, ...] | None = None,
    echo: Echo = print,
) -> DemoResult:
    began = time.monotonic()
    result = DemoResult()
    steps = _Steps(8, echo, result)
    with steps("preflight"):
        preflight(settings, echo)
    with steps("vigil up (all but the collector)"):
        start_stack(settings, echo)
    with steps(f"seed {hours:g} h of history for {hosts} hosts"):
        seed(settings, hours, hosts, echo)
    with steps(f"retrain through Airflow ({RETRAIN_DAG}) and wait for a champion"):
        result.champion_version = retrain(settings, force_retrain, echo)
    with steps("start the collector on this machine"):
        preload_plotting()  # the reports' plotting code is read from disk now, before this host is watched
        start_stack(settings, echo, late=True)
    with steps("wait for the detector (champion loaded, this host out of warm-up)"):
        wait_detector_ready(settings, result.champion_version, echo)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result.report_dir = settings.run_dir / "reports" / f"demo-{stamp}"
    with steps("stress suite against the running detector"):
        result.reports = run_suite(
            settings,
            names=scenarios,
            duration_s=duration_s,
            intensity=intensity,
            settle_s=settle_s,
            stop_on_detect=True,
            out_dir=result.report_dir,
            echo=echo,
        )
    with steps("results"):
        result.total_s = time.monotonic() - began
        echo("")
        echo(format_table(result.reports))
        echo("")
        for name, where in addresses(settings, result.report_dir):
            echo(f"{name:<11} {where}")
        write_summary(result, settings)
    return result


def write_summary(result: DemoResult, settings: Settings) -> Path | None:
    if result.report_dir is None:
        return None
    result.report_dir.mkdir(parents=True, exist_ok=True)
    path = result.report_dir / "demo.md"
    lines = [
        "# Vigil demo",
        "",
        f"Champion: {settings.mlflow.model_name} v{result.champion_version}; total {result.total_s:.0f} s.",
        "",
        "| step | seconds |",
        "| --- | --- |",
        *[f"| {k} | {v:g} |" for k, v in result.steps.items()],
        "",
        format_table(result.reports, markdown=True),
        "",
        *[f"- {name}: {where}" for name, where in addresses(settings, result.report_dir)],
        "",
    ]
    path.write_text("\n".join(lines))
    return path


@click.command()
@click.option("--hours", type=float, default=24.0, show_default=True, help="Hours of history to seed.")
@click.option("--hosts", type=int, default=5, show_default=True, help="Synthetic hosts to seed.")
@click.option("--retrain", "force_retrain", is_flag=True, help="Retrain even if a champion exists.")
@click.option(
    "--duration", type=float, default=DEMO_DURATION_S, show_default=True, help="Seconds of load per scenario."
)
@click.option(
    "--settle",
    type=float,
    default=DEMO_SETTLE_S,
    show_default=True,
    help="Least seconds of rest between scenarios (then until the host is quiet).",
)
@click.option("--intensity", type=float, default=None, help="Scenario intensity (default: each scenario's).")
@click.option("--only", default=None, metavar="NAME[,NAME]", help="Run only these scenarios.")
def demo(
    hours: float,
    hosts: int,
    force_retrain: bool,
    duration: float,
    settle: float,
    intensity: float | None,
    only: str | None,
) -> None:
    """The one-command demo: up, seed, retrain, stress suite, table and addresses (< 15 min)."""
    names = tuple(n.strip() for n in (only or "").split(",") if n.strip()) or None
    try:
        result = run_demo(
            demo_settings(get_settings()),
            hours=hours,
            hosts=hosts,
            force_retrain=force_retrain,
            duration_s=duration,
            settle_s=settle,
            intensity=intensity,
            scenarios=names,
            echo=click.echo,
        )
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise interrupted(
            "interrupted; loads stopped (the stack keeps running: `vigil down` stops it)"
        ) from None
    passed = sum(r.passed for r in result.reports)
    click.echo(
        f"\n{passed}/{len(result.reports)} scenarios as expected; demo took {result.total_s / 60:.1f} min"
    )
