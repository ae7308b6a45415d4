"""Response models of the scoring API (the OpenAPI document's shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class TopFeature(BaseModel):
    feature: str
    contribution: float | None


class ModelScore(BaseModel):
    """One model's (or the combined rule's) verdict on one row; non-finite numbers are null."""

    score: float | None
    threshold: float | None
    is_anomaly: bool
    top_features: list[TopFeature]


class RowResult(BaseModel):
    index: int = Field(description="Position of the row in the request.")
    host: str
    time: datetime
    input: Literal["raw", "features"]
    host_known: bool | None = Field(
        description="Raw rows: whether the detector has this host's baseline (None for feature rows)."
    )
    warmup: bool = Field(description="In warm-up (new host or young online model): scored, cannot alarm.")
    is_anomaly: bool = Field(description="The combined decision (vigil.decision).")
    combined: ModelScore
    champion: ModelScore | None
    online: ModelScore
    features: dict[str, float | None] | None = Field(
        None, description="The feature row scored (with ?include_features=true)."
    )


class ServedModels(BaseModel):
    mode: Literal["champion", "online-only"]
    champion_name: str | None
    champion_version: int | None
    online_name: str
    online_version: str
    online_samples: int


class PredictResponse(BaseModel):
    models: ServedModels
    results: list[RowResult]


class ChampionInfo(BaseModel):
    name: str
    version: int
    run_id: str | None
    loaded_at: datetime | None


class OnlineInfo(BaseModel):
    name: str
    version: str
    samples_seen: int
    samples_learned: int
    threshold: float | None
    warmup: bool
    features: list[str]


class VersionResponse(BaseModel):
    mode: Literal["champion", "online-only"]
    registered_model: str
    champion: ChampionInfo | None
    last_model_error: str | None
    online_model: OnlineInfo
    features: list[str]
    interval_s: int
    shard: str
