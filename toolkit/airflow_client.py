"""A small client for Airflow 3's REST API v2, and the ``vigil retrain`` command built on it.

Why our own client rather than ``apache-airflow-client``: we need five calls (token,
unpause, trigger, run state, task states) and one extra dependency pinned to the
server's version is not worth it. Authentication is the Airflow 3 way: ``POST
/auth/token`` with user and password gives a bearer token (SimpleAuthManager locally,
whatever auth manager a deployment uses behind the same endpoint).

The trigger form's parameters are NOT duplicated here: ``vigil retrain`` sends only
the values the user gave, the DAG's ``Params`` fill in the defaults, and Airflow
validates the conf against the Params' JSON schema (a bad value comes back as an
HTTP 400 whose message we print).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import click
import requests
import tenacity

from toolkit.stack.airflow import password_file
from vigil.errors import VigilError
from vigil.settings import AirflowSettings, get_settings

#: Run states after which nothing changes any more.
FINISHED_RUN_STATES = frozenset({"success", "failed"})
RETRAIN_DAG_ID = "vigil_retrain"
#: HTTP statuses (0 = no answer) after which polling a run tries again; so many times in a row at most.
TRANSIENT_STATUSES = frozenset({0, 500, 502, 503, 504})
MAX_POLL_HICCUPS = 10
#: The task whose return value is the run summary (champion version, metrics, MLflow run URL).
SUMMARY_TASK_ID = "summary"


class AirflowApiError(VigilError, RuntimeError):
    """Airflow answered with an error (``status`` is the HTTP code, 0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def admin_password(airflow: AirflowSettings, username: str | None = None) -> str:
    """The password from the settings, else the one SimpleAuthManager generated for ``username``."""
    if airflow.password is not None:
        return airflow.password.get_secret_value()
    user = username or airflow.username
    path = password_file(airflow)
    try:
        passwords = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise AirflowApiError(
            f"no Airflow password: set VIGIL_AIRFLOW__PASSWORD or start the stack (`vigil up`), "
            f"which writes {path}"
        ) from exc
    if user not in passwords:
        raise AirflowApiError(f"user {user!r} not in {path} (users there: {', '.join(passwords)})")
    return passwords[user]


@dataclass
class TaskChange:
    """One task instance whose state changed between two polls."""

    task_id: str
    map_index: int
    old: str | None
    new: str | None
    try_number: int
    duration_s: float | None


@dataclass
class RunOutcome:
    """How a followed run ended."""

    dag_id: str
    run_id: str
    state: str
    ui_url: str
    seconds: float
    tasks: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    summary: Any = None


class AirflowClient:
    """REST API v2 calls with a bearer token, refreshed once when it expires."""

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._token: str | None = None

    @classmethod
    def from_settings(cls, airflow: AirflowSettings) -> AirflowClient:
        return cls(airflow.base_url, airflow.username, admin_password(airflow))

    # --- plumbing ---------------------------------------------------------------------------

    def token(self) -> str:
        """A fresh access token from ``POST /auth/token``."""
        resp = self._send("POST", "/auth/token", json={"username": self.username, "password": self._password})
        if resp.status_code not in (200, 201):
            raise AirflowApiError(
                f"Airflow login as {self.username!r} failed: HTTP {resp.status_code} {resp.text[:300]}",
                resp.status_code,
            )
        self._token = resp.json()["access_token"]
        return self._token

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, self.base_url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise AirflowApiError(f"Airflow API at {self.base_url} is unreachable: {exc}") from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """An authenticated call; returns the JSON body, raises :class:`AirflowApiError` on errors."""
        for attempt in range(2):
            if self._token is None:
                self.token()
            resp = self._send(method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if resp.status_code == 401 and attempt == 0:
                self._token = None  # expired: log in again once
                continue
            if resp.status_code >= 400:
                raise AirflowApiError(
                    f"{method} {path}: HTTP {resp.status_code}: {_detail(resp)}", resp.status_code
                )
            return resp.json() if resp.content else None
        raise AirflowApiError(f"{method} {path}: not authorised")  # pragma: no cover - loop always returns

    # --- calls ------------------------------------------------------------------------------

    def version(self) -> str:
        resp = self._send("GET", "/api/v2/version")
        return resp.json().get("version", "?")

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{quote(dag_id)}")

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (a fresh Airflow needs a while)."""
        not_parsed_yet = tenacity.retry_if_exception(
            lambda e: isinstance(e, AirflowApiError) and e.status == 404
        )
        retrying = tenacity.Retrying(
            retry=not_parsed_yet,
            stop=tenacity.stop_after_delay(timeout_s),
            wait=tenacity.wait_fixed(2) + tenacity.wait_random(0, 0.5),  # jitter: clients apart
            reraise=True,  # the last 404 (or any other error at once)
        )
        return retrying(self.get_dag, dag_id)

    def import_errors(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v2/importErrors").get("import_errors", [])

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any], note: str | None = None) -> str:
        """``POST /dagRuns`` (logical_date null = "now", like the UI's trigger button); returns the run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if note:
            body["note"] = note
        return self.request("POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns", json=body)["dag_run_id"]

    def active_runs(self, dag_id: str) -> list[str]:
        """Ids of the runs of ``dag_id`` queued or running, oldest first."""
        body = self.request(
            "GET",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns",
            params={"state": ["queued", "running"], "order_by": "run_after", "limit": 100},
        )
        return [run["dag_run_id"] for run in body.get("dag_runs", [])]

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self.request("GET", path, params={"limit": 100}).get("task_instances", [])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = (
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
            f"{quote(task_id)}/xcomEntries/{quote(key)}"
        )
        return self.request("GET", path, params={"deserialize": "true"}).get("value")

    def ui_url(self, dag_id: str, run_id: str) -> str:
        """The run's page in the Airflow 3 UI."""
        return f"{self.base_url}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"

    def follow(
        self,
        dag_id: str,
        run_id: str,
        on_change: Callable[[TaskChange], None] = lambda change: None,
        timeout_s: float = 3600.0,
        poll_s: float = 2.0,
    ) -> RunOutcome:
        """Poll the run until it finishes, calling ``on_change`` for every task state change."""
        began = time.monotonic()
        seen: dict[tuple[str, int], str | None] = {}
        durations: dict[str, float] = {}
        hiccups = 0
        while True:
            try:
                run = self.get_run(dag_id, run_id)
                instances = self.task_instances(dag_id, run_id)
                hiccups = 0
            except AirflowApiError as exc:
                # A busy API server (SQLite locked while the scheduler and tasks write) may time out
                # or answer 5xx for a moment: keep following unless it persists.
                if exc.status not in TRANSIENT_STATUSES or hiccups >= MAX_POLL_HICCUPS:
                    raise
                hiccups += 1
                time.sleep(poll_s * 2)
                continue
            for ti in instances:
                key = (ti["task_id"], ti.get("map_index", -1))
                state = ti.get("state")
                if ti.get("duration") is not None:
                    durations[ti["task_id"]] = float(ti["duration"])
                if seen.get(key) != state:  # "no state yet" is not news: report from the first real state
                    on_change(
                        TaskChange(
                            ti["task_id"],
                            key[1],
                            seen.get(key),
                            state,
                            ti.get("try_number", 0),
                            ti.get("duration"),
                        )
                    )
                    seen[key] = state
            if run["state"] in FINISHED_RUN_STATES:
                break
            if time.monotonic() - began > timeout_s:
                raise AirflowApiError(
                    f"run {run_id} of {dag_id} still {run['state']} after {timeout_s:.0f}s: {self.ui_url(dag_id, run_id)}"
                )
            time.sleep(poll_s)
        outcome = RunOutcome(
            dag_id,
            run_id,
            run["state"],
            self.ui_url(dag_id, run_id),
            time.monotonic() - began,
            {task: state or "none" for (task, _), state in seen.items()},
            durations,
        )
        return outcome


def _detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return json.dumps(detail)[:800] if not isinstance(detail, str) else detail[:800]


def build_conf(
    lookback_hours: int | None,
    engine: str | None,
    families: tuple[str, ...],
    grid: str | None,
    margin: float | None,
    force_promote: bool,
    dry_run: bool,
    backtest_hours: int | None = None,
) -> dict[str, Any]:
    """The trigger conf: only what the user set (the DAG's Params supply every default)."""
    conf: dict[str, Any] = {}
    if lookback_hours is not None:
        conf["lookback_hours"] = lookback_hours
    if engine is not None:
        conf["engine"] = engine
    if families:
        conf["model_families"] = list(families)
    if grid is not None:
        conf["grid_size"] = grid
    if margin is not None:
        conf["promotion_margin"] = margin
    if backtest_hours is not None:
        conf["backtest_hours"] = backtest_hours
    if force_promote:
        conf["force_promote"] = True
    if dry_run:
        conf["dry_run"] = True
    return conf


def trigger_and_follow(
    client: AirflowClient,
    dag_id: str,
    conf: dict[str, Any],
    echo: Callable[[str], None] = print,
    wait: bool = True,
    timeout_s: float = 3600.0,
    join_active_within_s: float = 0.0,
) -> RunOutcome | str:
    """Unpause, trigger, and (with ``wait``) follow a run task by task; the run id when not waiting.

    ``join_active_within_s`` > 0: if a run is queued or running within that many seconds of the
    unpause (the schedule's own run, created when a DAG is first unpaused), follow it instead
    of queuing a second one behind it (``max_active_runs=1``). The demo uses this: a second run
    would only find the champion the first one made, and cost the demo ~45 s.
    """
    client.wait_for_dag(dag_id)
    client.unpause(dag_id)
    deadline = time.monotonic() + join_active_within_s
    active = client.active_runs(dag_id) if join_active_within_s > 0 else []
    while not active and time.monotonic() < deadline:
        time.sleep(1.0)
        active = client.active_runs(dag_id)
    if active:
        run_id = active[0]
        echo(f"{dag_id} run {run_id} is already under way: following it instead of queuing another")
    else:
        run_id = client.trigger(dag_id, conf, note="triggered by `vigil retrain`")
        echo(f"triggered {dag_id} run {run_id} with conf {json.dumps(conf)}")
    echo(f"Airflow UI: {client.ui_url(dag_id, run_id)}")
    if not wait:
        return run_id

    def show(change: TaskChange) -> None:
        took = f" ({change.duration_s:.1f}s)" if change.duration_s is not None and change.new else ""
        retry = f" try {change.try_number}" if change.try_number > 1 else ""
        echo(f"  {change.task_id:<16} {change.old or '-'} -> {change.new or 'none'}{retry}{took}")

    outcome = client.follow(dag_id, run_id, on_change=show, timeout_s=timeout_s)
    if outcome.tasks.get(SUMMARY_TASK_ID) == "success":
        outcome.summary = client.xcom(dag_id, run_id, SUMMARY_TASK_ID)
    return outcome


@click.command("retrain")
@click.option("--lookback-hours", type=int, default=None, help="Hours of history to train on.")
@click.option("--engine", default=None, help="sklearn, spark or both.")
@click.option("--family", "families", multiple=True, help="Model family to search (repeatable).")
@click.option("--grid", default=None, help="Grid size: small or full.")
@click.option("--margin", type=float, default=None, help="Promotion margin over the champion's metric.")
@click.option(
    "--backtest-hours", type=int, default=None, help="Backtest gate window before promoting (0 = off)."
)
@click.option("--force-promote", is_flag=True, help="Promote even if the challenger does not win.")
@click.option("--dry-run", is_flag=True, help="Train and evaluate, register and promote nothing.")
@click.option("--no-wait", is_flag=True, help="Trigger and return without following the run.")
@click.option(
    "--timeout", "timeout_s", type=float, default=3600.0, show_default=True, help="Seconds to follow."
)
def retrain_command(
    lookback_hours: int | None,
    engine: str | None,
    families: tuple[str, ...],
    grid: str | None,
    margin: float | None,
    backtest_hours: int | None,
    force_promote: bool,
    dry_run: bool,
    no_wait: bool,
    timeout_s: float,
) -> None:
    """Trigger the vigil_retrain DAG through Airflow's REST API and follow it task by task."""
    settings = get_settings()
    conf = build_conf(
        lookback_hours, engine, families, grid, margin, force_promote, dry_run, backtest_hours=backtest_hours
    )
    try:
        client = AirflowClient.from_settings(settings.airflow)
        result = trigger_and_follow(
            client, RETRAIN_DAG_ID, conf, echo=click.echo, wait=not no_wait, timeout_s=timeout_s
        )
    except AirflowApiError as exc:
        raise click.ClickException(str(exc)) from exc
    if isinstance(result, str):
        return
    click.echo(f"run {result.run_id}: {result.state} in {result.seconds:.0f}s")
    if result.summary is not None:
        click.echo("summary: " + json.dumps(result.summary, indent=2, default=str))
    click.echo(f"Airflow UI: {result.ui_url}")
    if result.state != "success":
        failed = [t for t, s in result.tasks.items() if s in ("failed", "upstream_failed")]
        raise click.ClickException(f"run {result.state}; failed tasks: {', '.join(failed) or 'none'}")
