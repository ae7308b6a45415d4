"""The one place Vigil reads its configuration from.

Every knob is a ``VIGIL_``-prefixed environment variable (or a line in ``.env``).
No other module touches ``os.environ`` for configuration: they take a
:class:`Settings` object, so tests and services can run side by side with
different ports and run folders in one process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root (the folder holding ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Vigil's settings, with defaults for the local stack on 127.0.0.1."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- local stack -----------------------------------------------------------------
    run_dir: Path = Field(PROJECT_ROOT / ".vigil", description="State, logs and PIDs of the local stack.")
    bind_host: str = Field("127.0.0.1", description="Address every local service binds to.")

    # --- InfluxDB (1.x HTTP API) ------------------------------------------------------
    influx_url: str | None = Field(None, description="Full base URL; default http://bind_host:influx_port.")
    influx_port: int = 8086
    influx_rpc_port: int = Field(8088, description="influxd's RPC (backup) listener, loopback only.")
    influx_username: str = ""
    influx_password: SecretStr = SecretStr("")
    influx_raw_db: str = Field("telegraf", description="Database Telegraf (or the collector) writes to.")
    influx_vigil_db: str = Field("vigil", description="Database for predictions, labels, drift, events.")
    influx_rp: str | None = Field(None, description="Retention policy; sent only when set.")
    influx_timeout_s: float = 10.0
    influx_batch_size: int = 5000
    influx_write_workers: int = Field(
        2, ge=1, description="Prediction batches the detector sends at once, one connection each."
    )
    influx_retries: int = 6
    influx_backoff_s: float = 0.5
    influx_create_databases: bool = Field(True, description="Best-effort CREATE DATABASE (1.x only).")

    # --- MLflow ------------------------------------------------------------------------
    mlflow_port: int = 5000
    mlflow_tracking_uri: str | None = Field(None, description="Default http://bind_host:mlflow_port.")
    mlflow_experiment: str = "vigil"
    model_name: str = Field("vigil-anomaly", description="Registered model the detector serves.")

    # --- Airflow -----------------------------------------------------------------------
    airflow_port: int = 8080
    airflow_home: Path | None = Field(None, description="Default run_dir/airflow.")
    airflow_url: str | None = Field(None, description="Default http://bind_host:airflow_port.")
    airflow_username: str = "admin"
    airflow_password: SecretStr | None = Field(None, description="Default: the generated password file.")
    airflow_task_retries: int = Field(
        2, description="Retries of a Vigil DAG task after an infrastructure error."
    )
    airflow_retry_delay_s: float = Field(
        30.0, description="First retry delay of a Vigil DAG task; doubles each retry (exponential backoff)."
    )
    airflow_parallelism: int = Field(
        4, description="Airflow [core] parallelism: LocalExecutor worker processes (default 32 is ~4 GB RSS)."
    )

    # --- collection ----------------------------------------------------------------------
    collect_interval_s: float = Field(10.0, description="Telegraf's [agent] interval.")
    hostname: str | None = Field(None, description="host tag written by the collector (default: hostname).")

    # --- features ------------------------------------------------------------------------
    feature_interval_s: int = Field(10, description="Width of one host-interval, seconds.")

    # --- detector ------------------------------------------------------------------------
    detector_port: int = 9108
    poll_interval_s: float = 5.0
    detector_wake_on_due: bool = Field(
        True,
        description="Wake when the next interval can be read (its end + lateness), not only every poll.",
    )
    allowed_lateness_s: float = 20.0
    reload_interval_s: float = 15.0
    checkpoint_every: int = Field(12, description="Checkpoint every N loop iterations.")
    warmup_s: float = Field(300.0, description="Seconds a new host is scored without alarming.")
    shard_index: int = 0
    shard_count: int = 1
    detector_workers: int = Field(
        1,
        ge=1,
        description="Shard processes `vigil detector run` starts under one supervisor "
        "(--workers overrides; 1 = the detector runs in its own process, no supervisor).",
    )
    buffer_max_points: int = Field(
        200_000, description="Unwritten predictions held in memory before spilling."
    )
    detector_history_hours: float = Field(
        6.0, description="History read to warm-start the baseline of a host seen for the first time."
    )
    detector_online_learn_max: int = Field(
        2000, description="Host-intervals per poll the online model learns from (seeded subsample)."
    )
    detector_host_calibration_window: int = Field(
        30,
        ge=1,
        description="Intervals of a host's recent unflagged champion scores whose median is the "
        "floor of that host's champion threshold (vigil/serving/calibration.py).",
    )
    detector_alarm_group_s: float = Field(
        3600.0,
        ge=0,
        description="A host pages at most once per this many seconds; flagged rows in between "
        "belong to the same incident (vigil/serving/grouping.py).",
    )
    detector_band_z: float = Field(
        3.0,
        gt=0,
        description="A row flags only while some metric's current deviation from its host "
        "baseline is at least this many sigmas (or its series evidence flags): an alarm ends "
        "with its cause (vigil/decision.py, rule 4).",
    )
    detector_fleet_confirms: bool = Field(
        True,
        description="The fleet model (River HalfSpaceTrees) may confirm the champion's flag "
        "(vigil/decision.py, rule 1). Off: only the champion's conviction or the series evidence "
        "page (the ablation in docs/nab.md; it never pages alone either way).",
    )
    detector_max_catchup_intervals: int = Field(
        60, ge=1, description="Most intervals read in one loop iteration when catching up."
    )
    detector_read_budget: int = Field(
        10_000,
        ge=1,
        description="Most host-intervals (hosts known x intervals) read in one loop iteration: "
        "the detector's memory grows with what one read holds, so a large fleet catches up one "
        "interval at a time and a small one many (never fewer than one interval).",
    )
    data_quality_future_tolerance_s: float = Field(
        300.0,
        gt=0,
        description="A raw point stamped later than the wall clock + this many seconds is from a "
        "clock ahead: kept out of scoring and counted (data-quality guard, future_time).",
    )

    # --- scoring API and incident bundles (detector) ----------------------------------------
    api_max_batch_rows: int = Field(10_000, description="Most rows one POST /predict/batch may carry.")
    detector_api_token: SecretStr | None = Field(
        None,
        description="Bearer token the detector API asks of requests that change state (POST /labels); "
        "unset = those requests are refused (401).",
    )
    incident_before_min: float = Field(
        10.0, description="Minutes of raw points kept in an incident bundle before the first alarm."
    )
    incident_after_min: float = Field(
        5.0, description="Minutes of raw points kept after the last alarm (collected when they have passed)."
    )
    incident_cooldown_min: float = Field(
        15.0, description="A host's alarms less than this apart belong to one episode (one bundle)."
    )
    incident_max_hosts: int = Field(
        50, description="Most hosts whose raw points one incident bundle captures (others are listed)."
    )

    # --- training ------------------------------------------------------------------------
    spark_master: str = "local[*]"
    random_seed: int = 42
    promotion_margin: float = Field(0.0, description="How much the challenger must beat the champion by.")
    promotion_ttd_slack: float = Field(
        1.5,
        gt=0,
        description="Promotion refuses a challenger whose served median time to detect exceeds the "
        "champion's times this, plus one interval.",
    )
    robustness_tolerance: float = Field(
        0.05,
        description="Promotion refuses a challenger whose robustness_f1 is more than this below the champion's.",
    )
    backtest_tolerance: float = Field(
        0.02,
        description="The backtest gate refuses a challenger whose backtest F1 is more than this below the champion's.",
    )
    alarm_budget_per_host_day: float = Field(
        1.0,
        gt=0,
        description="Alarms per host and day the retrain may spend on normal rows: each model's threshold "
        "is the score quantile that raises at most this many on the untouched validation rows.",
    )
    train_label_sources: str = Field(
        "operator,stress",
        description="Comma-separated vigil_labels sources a retrain learns from (excluded from fitting, "
        "false positives kept below the threshold); other sources (seed) only score the result.",
    )
    train_trim_sigmas: float = Field(
        5.0,
        gt=0,
        description="A training or validation row is trimmed as a probable unlabelled anomaly when one of "
        "its host-relative features is beyond this many sigmas (pipelines/robust.py).",
    )
    train_trim_max_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Most rows trimming may remove; beyond it only the most extreme go (the rest is normal).",
    )
    served_eval_step_s: float = Field(
        300.0,
        gt=0,
        description="evaluate and backtest feed the served decision this much history per update, "
        "as a detector catching up does (vigil.serving.ServingPath; docs/pipelines.md).",
    )

    # --- stress target app -----------------------------------------------------------------
    target_port: int = 8090
    target_usual_rps: float = Field(
        4.0, description="Everyday requests per second the target app's users send it (0 = none)."
    )

    # --- deployment only -----------------------------------------------------------------------
    alert_webhook_url: str = Field("http://127.0.0.1:9999/alerts", description="Grafana contact point.")

    # --- derived ---------------------------------------------------------------------------------
    @property
    def influx_base_url(self) -> str:
        return self.influx_url or f"http://{self.bind_host}:{self.influx_port}"

    @property
    def mlflow_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.bind_host}:{self.mlflow_port}"

    @property
    def airflow_base_url(self) -> str:
        return self.airflow_url or f"http://{self.bind_host}:{self.airflow_port}"

    @property
    def airflow_home_dir(self) -> Path:
        return self.airflow_home or self.run_dir / "airflow"

    @property
    def detector_url(self) -> str:
        return f"http://{self.bind_host}:{self.detector_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
