"""The one place Vigil reads its configuration from.

Every knob is a ``VIGIL_``-prefixed environment variable (or a line in ``.env``), grouped in
sections: ``VIGIL_INFLUX__PORT`` is ``settings.influx.port``, ``VIGIL_DETECTOR__ALARM_GROUP_S`` is
``settings.detector.alarm_group_s`` (``__`` separates the section from the field). The stack-wide
ones stay at the top: ``VIGIL_RUN_DIR``, ``VIGIL_BIND_HOST``, ``VIGIL_RANDOM_SEED``,
``VIGIL_ALERT_WEBHOOK_URL``.

The flat names of earlier versions (``VIGIL_INFLUX_PORT``, ``VIGIL_POLL_INTERVAL_S``, ...) keep
working, from the environment and from ``.env``, and so do the flat keyword arguments
(``Settings(influx_port=...)``) and flat ``model_copy(update=...)`` keys. :data:`LEGACY_NAMES` is
the one table from the old names to (section, field); when an old and a new name are both set,
the new one wins.

No other module touches ``os.environ`` for configuration: they take a section of a
:class:`Settings` object (``InfluxClient(settings.influx)``), so tests and services can run side
by side with different ports and run folders in one process. Each section carries what its
derived values need from the stack-wide settings (``bind_host``, ``run_dir``: set by the parent),
so a component holding only its section has complete URLs and paths.

>>> s = Settings(_env_file=None, influx_port=8087, bind_host="10.0.0.1")
>>> s.influx.port, s.influx.base_url
(8087, 'http://10.0.0.1:8087')
>>> LEGACY_NAMES["poll_interval_s"], new_env_name("poll_interval_s")
(('detector', 'poll_interval_s'), 'VIGIL_DETECTOR__POLL_INTERVAL_S')
"""

# settings-codemod: skip (this module defines the legacy names)
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

#: The repository root (the folder holding ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_PREFIX = "VIGIL_"
NESTED_DELIMITER = "__"
_DEFAULT_BIND_HOST = "127.0.0.1"
_DEFAULT_RUN_DIR = PROJECT_ROOT / ".vigil"


class Section(BaseModel):
    """One section of the settings. ``bind_host`` and ``run_dir`` are the stack-wide values the
    parent :class:`Settings` hands every section (defaults when a section is built alone), so a
    section resolves its own URLs and folders."""

    _bind_host: str = PrivateAttr(_DEFAULT_BIND_HOST)
    _run_dir: Path = PrivateAttr(_DEFAULT_RUN_DIR)

    @property
    def bind_host(self) -> str:
        return self._bind_host

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    def with_context(self, bind_host: str, run_dir: Path) -> Section:
        """A copy of this section resolving against ``bind_host`` and ``run_dir``."""
        copy = self.model_copy()
        copy._bind_host = bind_host
        copy._run_dir = run_dir
        return copy


class InfluxSettings(Section):
    """InfluxDB (1.x HTTP API)."""

    url: str | None = Field(None, description="Full base URL; default http://bind_host:port.")
    port: int = 8086
    rpc_port: int = Field(8088, description="influxd's RPC (backup) listener, loopback only.")
    username: str = ""
    password: SecretStr = SecretStr("")
    raw_db: str = Field("telegraf", description="Database Telegraf (or the collector) writes to.")
    vigil_db: str = Field("vigil", description="Database for predictions, labels, drift, events.")
    rp: str | None = Field(None, description="Retention policy; sent only when set.")
    timeout_s: float = 10.0
    batch_size: int = 5000
    write_workers: int = Field(
        2, ge=1, description="Prediction batches the detector sends at once, one connection each."
    )
    retries: int = 6
    backoff_s: float = 0.5
    create_databases: bool = Field(True, description="Best-effort CREATE DATABASE (1.x only).")

    @property
    def base_url(self) -> str:
        return self.url or f"http://{self.bind_host}:{self.port}"


class MlflowSettings(Section):
    """MLflow tracking server and model registry."""

    port: int = 5000
    tracking_uri: str | None = Field(None, description="Default http://bind_host:port.")
    experiment: str = "vigil"
    model_name: str = Field("vigil-anomaly", description="Registered model the detector serves.")

    @property
    def uri(self) -> str:
        return self.tracking_uri or f"http://{self.bind_host}:{self.port}"


class AirflowSettings(Section):
    """Airflow (standalone locally) and the Vigil DAGs' task policy."""

    port: int = 8080
    home: Path | None = Field(None, description="Default run_dir/airflow.")
    url: str | None = Field(None, description="Default http://bind_host:port.")
    username: str = "admin"
    password: SecretStr | None = Field(None, description="Default: the generated password file.")
    task_retries: int = Field(2, description="Retries of a Vigil DAG task after an infrastructure error.")
    retry_delay_s: float = Field(
        30.0, description="First retry delay of a Vigil DAG task; doubles each retry (exponential backoff)."
    )
    parallelism: int = Field(
        4, description="Airflow [core] parallelism: LocalExecutor worker processes (default 32 is ~4 GB RSS)."
    )

    @property
    def base_url(self) -> str:
        return self.url or f"http://{self.bind_host}:{self.port}"

    @property
    def home_dir(self) -> Path:
        return self.home or self.run_dir / "airflow"


class CollectionSettings(Section):
    """The local collector (a stand-in for Telegraf)."""

    interval_s: float = Field(10.0, description="Telegraf's [agent] interval.")
    hostname: str | None = Field(None, description="host tag written by the collector (default: hostname).")


class FeatureSettings(Section):
    """Features: shared by the detector, training and the tools writing points."""

    interval_s: int = Field(10, description="Width of one host-interval, seconds.")


class DetectorSettings(Section):
    """The streaming detector."""

    port: int = 9108
    poll_interval_s: float = 5.0
    wake_on_due: bool = Field(
        True,
        description="Wake when the next interval can be read (its end + lateness), not only every poll.",
    )
    allowed_lateness_s: float = 20.0
    reload_interval_s: float = 15.0
    checkpoint_every: int = Field(12, description="Checkpoint every N loop iterations.")
    warmup_s: float = Field(300.0, description="Seconds a new host is scored without alarming.")
    shard_index: int = 0
    shard_count: int = 1
    workers: int = Field(
        1,
        ge=1,
        description="Shard processes `vigil detector run` starts under one supervisor "
        "(--workers overrides; 1 = the detector runs in its own process, no supervisor).",
    )
    buffer_max_points: int = Field(
        200_000, description="Unwritten predictions held in memory before spilling."
    )
    history_hours: float = Field(
        6.0, description="History read to warm-start the baseline of a host seen for the first time."
    )
    online_learn_max: int = Field(
        2000, description="Host-intervals per poll the online model learns from (seeded subsample)."
    )
    host_calibration_window: int = Field(
        30,
        ge=1,
        description="Intervals of a host's recent unflagged champion scores whose median is the "
        "floor of that host's champion threshold (vigil/serving/calibration.py).",
    )
    alarm_group_s: float = Field(
        3600.0,
        ge=0,
        description="A host pages at most once per this many seconds; flagged rows in between "
        "belong to the same incident (vigil/serving/grouping.py).",
    )
    band_z: float = Field(
        3.0,
        gt=0,
        description="A row flags only while some metric's current deviation from its host "
        "baseline is at least this many sigmas (or its series evidence flags): an alarm ends "
        "with its cause (vigil/decision.py, rule 4).",
    )
    fleet_confirms: bool = Field(
        True,
        description="The fleet model (River HalfSpaceTrees) may confirm the champion's flag "
        "(vigil/decision.py, rule 1). Off: only the champion's conviction or the series evidence "
        "page (the ablation in docs/nab.md; it never pages alone either way).",
    )
    max_catchup_intervals: int = Field(
        60, ge=1, description="Most intervals read in one loop iteration when catching up."
    )
    read_budget: int = Field(
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

    @property
    def url(self) -> str:
        return f"http://{self.bind_host}:{self.port}"


class ApiSettings(Section):
    """The detector's scoring and labelling API."""

    max_batch_rows: int = Field(10_000, description="Most rows one POST /predict/batch may carry.")
    token: SecretStr | None = Field(
        None,
        description="Bearer token the detector API asks of requests that change state (POST /labels); "
        "unset = those requests are refused (401).",
    )


class IncidentSettings(Section):
    """Incident bundles the detector records (kept under run_dir/incidents)."""

    before_min: float = Field(
        10.0, description="Minutes of raw points kept in an incident bundle before the first alarm."
    )
    after_min: float = Field(
        5.0, description="Minutes of raw points kept after the last alarm (collected when they have passed)."
    )
    cooldown_min: float = Field(
        15.0, description="A host's alarms less than this apart belong to one episode (one bundle)."
    )
    max_hosts: int = Field(
        50, description="Most hosts whose raw points one incident bundle captures (others are listed)."
    )

    @property
    def root(self) -> Path:
        """The folder holding one sub-folder per incident."""
        return self.run_dir / "incidents"


class TrainingSettings(Section):
    """Retraining: Spark, thresholds, trimming and the promotion gates."""

    spark_master: str = "local[*]"
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
    label_sources: str = Field(
        "operator,stress",
        description="Comma-separated vigil_labels sources a retrain learns from (excluded from fitting, "
        "false positives kept below the threshold); other sources (seed) only score the result.",
    )
    trim_sigmas: float = Field(
        5.0,
        gt=0,
        description="A training or validation row is trimmed as a probable unlabelled anomaly when one of "
        "its host-relative features is beyond this many sigmas (pipelines/robust.py).",
    )
    trim_max_fraction: float = Field(
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


class StressSettings(Section):
    """The stress target app."""

    target_port: int = 8090
    target_usual_rps: float = Field(
        4.0, description="Everyday requests per second the target app's users send it (0 = none)."
    )


#: section name -> its model, in the order ``.env.example`` lists them.
SECTIONS: dict[str, type[Section]] = {
    "influx": InfluxSettings,
    "mlflow": MlflowSettings,
    "airflow": AirflowSettings,
    "collection": CollectionSettings,
    "features": FeatureSettings,
    "detector": DetectorSettings,
    "api": ApiSettings,
    "incidents": IncidentSettings,
    "training": TrainingSettings,
    "stress": StressSettings,
}

#: The flat name of every setting before sections (``VIGIL_<NAME>``, ``Settings(<name>=...)``)
#: -> (section, field). The single source of truth for legacy names (the settings sources, the
#: flat keyword arguments, ``model_copy``) and for the codemod that moved code to sections.
#: Top-level settings (run_dir, bind_host, random_seed, alert_webhook_url) kept their names.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    # InfluxDB
    "influx_url": ("influx", "url"),
    "influx_port": ("influx", "port"),
    "influx_rpc_port": ("influx", "rpc_port"),
    "influx_username": ("influx", "username"),
    "influx_password": ("influx", "password"),
    "influx_raw_db": ("influx", "raw_db"),
    "influx_vigil_db": ("influx", "vigil_db"),
    "influx_rp": ("influx", "rp"),
    "influx_timeout_s": ("influx", "timeout_s"),
    "influx_batch_size": ("influx", "batch_size"),
    "influx_write_workers": ("influx", "write_workers"),
    "influx_retries": ("influx", "retries"),
    "influx_backoff_s": ("influx", "backoff_s"),
    "influx_create_databases": ("influx", "create_databases"),
    # MLflow
    "mlflow_port": ("mlflow", "port"),
    "mlflow_tracking_uri": ("mlflow", "tracking_uri"),
    "mlflow_experiment": ("mlflow", "experiment"),
    "model_name": ("mlflow", "model_name"),
    # Airflow
    "airflow_port": ("airflow", "port"),
    "airflow_home": ("airflow", "home"),
    "airflow_url": ("airflow", "url"),
    "airflow_username": ("airflow", "username"),
    "airflow_password": ("airflow", "password"),
    "airflow_task_retries": ("airflow", "task_retries"),
    "airflow_retry_delay_s": ("airflow", "retry_delay_s"),
    "airflow_parallelism": ("airflow", "parallelism"),
    # collection, features
    "collect_interval_s": ("collection", "interval_s"),
    "hostname": ("collection", "hostname"),
    "feature_interval_s": ("features", "interval_s"),
    # detector
    "detector_port": ("detector", "port"),
    "poll_interval_s": ("detector", "poll_interval_s"),
    "detector_wake_on_due": ("detector", "wake_on_due"),
    "allowed_lateness_s": ("detector", "allowed_lateness_s"),
    "reload_interval_s": ("detector", "reload_interval_s"),
    "checkpoint_every": ("detector", "checkpoint_every"),
    "warmup_s": ("detector", "warmup_s"),
    "shard_index": ("detector", "shard_index"),
    "shard_count": ("detector", "shard_count"),
    "detector_workers": ("detector", "workers"),
    "buffer_max_points": ("detector", "buffer_max_points"),
    "detector_history_hours": ("detector", "history_hours"),
    "detector_online_learn_max": ("detector", "online_learn_max"),
    "detector_host_calibration_window": ("detector", "host_calibration_window"),
    "detector_alarm_group_s": ("detector", "alarm_group_s"),
    "detector_band_z": ("detector", "band_z"),
    "detector_fleet_confirms": ("detector", "fleet_confirms"),
    "detector_max_catchup_intervals": ("detector", "max_catchup_intervals"),
    "detector_read_budget": ("detector", "read_budget"),
    "data_quality_future_tolerance_s": ("detector", "data_quality_future_tolerance_s"),
    # scoring API, incidents
    "api_max_batch_rows": ("api", "max_batch_rows"),
    "detector_api_token": ("api", "token"),
    "incident_before_min": ("incidents", "before_min"),
    "incident_after_min": ("incidents", "after_min"),
    "incident_cooldown_min": ("incidents", "cooldown_min"),
    "incident_max_hosts": ("incidents", "max_hosts"),
    # training
    "spark_master": ("training", "spark_master"),
    "promotion_margin": ("training", "promotion_margin"),
    "promotion_ttd_slack": ("training", "promotion_ttd_slack"),
    "robustness_tolerance": ("training", "robustness_tolerance"),
    "backtest_tolerance": ("training", "backtest_tolerance"),
    "alarm_budget_per_host_day": ("training", "alarm_budget_per_host_day"),
    "train_label_sources": ("training", "label_sources"),
    "train_trim_sigmas": ("training", "trim_sigmas"),
    "train_trim_max_fraction": ("training", "trim_max_fraction"),
    "served_eval_step_s": ("training", "served_eval_step_s"),
    # stress target app
    "target_port": ("stress", "target_port"),
    "target_usual_rps": ("stress", "target_usual_rps"),
}

#: Derived values (properties) of the flat Settings -> (section, property): for the codemod.
LEGACY_PROPERTIES: dict[str, tuple[str, str]] = {
    "influx_base_url": ("influx", "base_url"),
    "mlflow_uri": ("mlflow", "uri"),
    "airflow_base_url": ("airflow", "base_url"),
    "airflow_home_dir": ("airflow", "home_dir"),
    "detector_url": ("detector", "url"),
}


def new_env_name(name: str) -> str:
    """The variable of a setting given by its flat name (or a top-level field name)."""
    if name in LEGACY_NAMES:
        section, field = LEGACY_NAMES[name]
        return f"{ENV_PREFIX}{section.upper()}{NESTED_DELIMITER}{field.upper()}"
    return f"{ENV_PREFIX}{name.upper()}"


def legacy_env_name(name: str) -> str:
    """The variable of a setting as earlier versions spelt it (still read)."""
    return f"{ENV_PREFIX}{name.upper()}"


def _nest(data: dict[str, Any]) -> dict[str, Any]:
    """Move flat legacy keys into their sections; a value given under the new (nested) name wins."""
    out = dict(data)
    for old, (section, field) in LEGACY_NAMES.items():
        if old not in out:
            continue
        value = out.pop(old)
        current = out.get(section)
        if isinstance(current, BaseModel):
            if field not in current.model_fields_set:
                out[section] = current.model_copy(update={field: value})
            continue
        nested = dict(current) if isinstance(current, dict) else {}
        nested.setdefault(field, value)
        out[section] = nested
    return out


class _LegacyNames(PydanticBaseSettingsSource):
    """Reads the flat legacy variables (``VIGIL_INFLUX__PORT``) from ``env_vars``, the already
    loaded variables of the environment or of ``.env``, into their sections."""

    def __init__(self, settings_cls: type[BaseSettings], env_vars: Any, case_sensitive: bool) -> None:
        super().__init__(settings_cls)
        self.env_vars = env_vars
        self.case_sensitive = case_sensitive

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads by legacy name

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for old, (section, field) in LEGACY_NAMES.items():
            name = legacy_env_name(old)
            value = self.env_vars.get(name if self.case_sensitive else name.lower())
            if value is not None:
                out.setdefault(section, {})[field] = value
        return out


class _NestedInit(PydanticBaseSettingsSource):
    """The keyword arguments, with flat legacy names moved into their sections."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.init = init

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _nest(self.init())


class Settings(BaseSettings):
    """Vigil's settings, with defaults for the local stack on 127.0.0.1."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # --- stack-wide -------------------------------------------------------------------------------
    run_dir: Path = Field(_DEFAULT_RUN_DIR, description="State, logs and PIDs of the local stack.")
    bind_host: str = Field(_DEFAULT_BIND_HOST, description="Address every local service binds to.")
    random_seed: int = Field(
        42, description="Seed for every random choice (splits, injected anomalies, models)."
    )
    alert_webhook_url: str = Field("http://127.0.0.1:9999/alerts", description="Grafana contact point.")

    # --- sections ---------------------------------------------------------------------------------
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    collection: CollectionSettings = Field(default_factory=CollectionSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    stress: StressSettings = Field(default_factory=StressSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: keyword arguments, environment (new names, then legacy), ``.env`` (new
        names, then legacy), secrets."""
        case_sensitive = bool(settings_cls.model_config.get("case_sensitive", False))
        env_vars = env_settings.env_vars if isinstance(env_settings, EnvSettingsSource) else {}
        dotenv_vars = getattr(dotenv_settings, "env_vars", {})
        return (
            _NestedInit(settings_cls, init_settings),
            env_settings,
            _LegacyNames(settings_cls, env_vars, case_sensitive),
            dotenv_settings,
            _LegacyNames(settings_cls, dotenv_vars, case_sensitive),
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """Flat legacy keys left in the input (``model_validate``, ``.env`` extras) go to their
        sections, below any value given under the new name."""
        return _nest(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _resolve_sections(self) -> Settings:
        """Hand every section the stack-wide values its derived URLs and folders need."""
        for name in SECTIONS:
            section: Section = getattr(self, name)
            self.__dict__[name] = section.with_context(self.bind_host, self.run_dir)
        return self

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Settings:
        """A copy; ``update`` may use section keys (a dict or a section), top-level names, or the
        flat legacy names (``{"influx_port": 9}``), which update their section."""
        if not update:
            return super().model_copy(deep=deep)
        top: dict[str, Any] = {}
        per_section: dict[str, dict[str, Any]] = {}
        for key, value in update.items():
            if key in LEGACY_NAMES:
                section, field = LEGACY_NAMES[key]
                per_section.setdefault(section, {})[field] = value
            elif key in SECTIONS and isinstance(value, dict):
                per_section.setdefault(key, {}).update(value)
            elif key in type(self).model_fields:
                top[key] = value
            else:
                raise ValueError(f"Settings has no setting {key!r}")
        copy = super().model_copy(update=top, deep=deep)
        for section, values in per_section.items():
            current = top.get(section, getattr(copy, section))
            copy.__dict__[section] = current.model_copy(update=values)
            copy.__pydantic_fields_set__.add(section)
        for name in SECTIONS:
            copy.__dict__[name] = getattr(copy, name).with_context(copy.bind_host, copy.run_dir)
        return copy


def flat_get(settings: Settings, name: str) -> Any:
    """The value of a setting given by its flat (legacy or top-level) name."""
    if name in LEGACY_NAMES:
        section, field = LEGACY_NAMES[name]
        return getattr(getattr(settings, section), field)
    return getattr(settings, name)


def flat_set(settings: Settings, name: str, value: Any) -> None:
    """Set a setting given by its flat name, in place."""
    if name in LEGACY_NAMES:
        section, field = LEGACY_NAMES[name]
        setattr(getattr(settings, section), field, value)
    else:
        setattr(settings, name, value)


def flat_field(name: str) -> FieldInfo:
    """The pydantic field of a setting given by its flat name."""
    if name in LEGACY_NAMES:
        section, field = LEGACY_NAMES[name]
        return SECTIONS[section].model_fields[field]
    return Settings.model_fields[name]


def flat_names() -> list[str]:
    """Every setting by its flat name: the top-level fields, then the sections' (in their order)."""
    top = [n for n in Settings.model_fields if n not in SECTIONS]
    by_section = sorted(LEGACY_NAMES, key=lambda n: list(SECTIONS).index(LEGACY_NAMES[n][0]))
    return top + by_section


def is_explicit(settings: Settings, name: str) -> bool:
    """Whether a setting (flat name) was given (environment, ``.env``, keyword or update), not defaulted."""
    if name in LEGACY_NAMES:
        section, field = LEGACY_NAMES[name]
        return section in settings.model_fields_set and field in getattr(settings, section).model_fields_set
    return name in settings.model_fields_set


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, for entry points (CLIs, DAG files) only: they build them once
    and hand each component its section. Call ``get_settings.cache_clear()`` after changing the
    environment."""
    return Settings()
