"""Request models of the scoring API, generated from the feature definitions: a raw row (one Telegraf
gather), a feature row, and ``Row``, which tells them apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from vigil.features import BASE_METRICS, FEATURE_COLUMNS

#: Largest raw value accepted (above any 64-bit counter; squares of it stay finite in the baseline).
RAW_MAX = 1e20
#: Largest |feature| accepted (the feature builder caps deviations at 50; models see the same).
FEATURE_MAX = 1e6
#: Times outside this range cannot be represented (pandas ns) or are certainly mistakes.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)

#: A JSON number that is finite; strings and booleans are refused (a type conflict, not a value).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]


def _raw_fields() -> dict[str, dict[str, tuple[str, str]]]:
    """measurement -> field -> (aggregation, description) for every raw field the features read."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for metric in BASE_METRICS:
        for raw in metric.inputs:
            kind = "cumulative counter (total over devices)" if raw.agg == "last" else "gauge"
            out.setdefault(raw.measurement, {})[raw.field] = (raw.agg, f"{kind}; feeds {metric.name}")
    return out


RAW_FIELDS = _raw_fields()


def _measurement_model(measurement: str, fields: dict[str, tuple[str, str]]) -> type[BaseModel]:
    spec: dict[str, Any] = {}
    for name, (agg, description) in fields.items():
        lower = 0.0 if agg == "last" or name in ("n_cpus", "load1", "total") else None
        spec[name] = (FiniteFloat | None, Field(None, ge=lower, le=RAW_MAX, description=description))
    model = create_model(
        f"Raw_{measurement}",
        __config__=ConfigDict(extra="ignore"),
        **spec,
    )
    model.__doc__ = f"Telegraf measurement `{measurement}` (other fields are ignored)."
    return model


MEASUREMENT_MODELS = {m: _measurement_model(m, f) for m, f in RAW_FIELDS.items()}


def _check_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"time must be between {EARLIEST.year} and {LATEST.year}")
    return value.astimezone(UTC)


class _RowBase(BaseModel):
    host: str = Field("api", min_length=1, max_length=255, description="The host tag.")
    time: datetime | None = Field(
        None, description="ISO 8601 or Unix epoch; naive = UTC; default: now. Interval start for features."
    )

    @field_validator("time")
    @classmethod
    def _time(cls, value: datetime | None) -> datetime | None:
        return _check_time(value)


class _RawBase(_RowBase):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="after")
    def _some_measurement(self) -> _RawBase:
        if all(getattr(self, m, None) is None for m in RAW_FIELDS):
            raise ValueError(f"a raw row needs at least one of the measurements {sorted(RAW_FIELDS)}")
        return self


RawRow: type[_RowBase] = create_model(
    "RawRow",
    __base__=_RawBase,
    kind=(Literal["raw"], "raw"),
    **{m: (model | None, Field(None)) for m, model in MEASUREMENT_MODELS.items()},
)
RawRow.__doc__ = (
    "One Telegraf gather of one host (measurement -> fields), e.g. {host, time, cpu: {...}, ...}."
)


class _FeatureBase(_RowBase):
    model_config = ConfigDict(extra="forbid")


FeatureRow: type[_RowBase] = create_model(
    "FeatureRow",
    __base__=_FeatureBase,
    kind=(Literal["features"], "features"),
    **{c: (FiniteFloat | None, Field(None, ge=-FEATURE_MAX, le=FEATURE_MAX)) for c in FEATURE_COLUMNS},
)
FeatureRow.__doc__ = "Model input columns (FEATURE_COLUMNS) of one host-interval; missing = 0 (baseline)."


def _row_kind(value: Any) -> str | None:
    """``kind`` if given; else a row with any feature column is a feature row, otherwise raw."""
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind is None:
            return "features" if any(c in value for c in FEATURE_COLUMNS) else "raw"
        return kind if kind in ("raw", "features") else None
    return getattr(value, "kind", None)


Row = Annotated[
    Annotated[RawRow, Tag("raw")] | Annotated[FeatureRow, Tag("features")],
    Discriminator(
        _row_kind,
        custom_error_type="invalid_row_kind",
        custom_error_message="kind must be 'raw' (Telegraf measurements) or 'features' (FEATURE_COLUMNS)",
    ),
]
