"""Read the provisioned Grafana files: data sources, dashboards (with their panels' targets), alert rules.

Everything that checks or renders the dashboards goes through these readers, so the
files tested are exactly the files Compose mounts into Grafana.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolkit.grafana.build import ALERTING_DIR, DASHBOARDS_DIR, PROVISIONING_DIR, RAW_DS_UID, VIGIL_DS_UID
from vigil.errors import VigilError
from vigil.settings import InfluxSettings

DATASOURCES_DIR = PROVISIONING_DIR / "datasources"


class ProvisioningError(VigilError, ValueError):
    """A provisioning file is malformed (names the file and what is wrong)."""


@dataclass(frozen=True)
class PanelTarget:
    """One query of one panel (or annotation) of one dashboard."""

    dashboard_uid: str
    panel_id: int
    panel_title: str
    panel_type: str
    ref_id: str
    datasource_uid: str
    query: str
    alias: str = ""
    result_format: str = "time_series"
    max_data_points: int | None = None
    min_interval: str | None = None


@dataclass(frozen=True)
class AlertRule:
    """A unified-alerting rule with the group it belongs to."""

    group: str
    folder: str
    interval: str
    rule: dict[str, Any] = field(hash=False)

    @property
    def uid(self) -> str:
        return str(self.rule["uid"])

    @property
    def title(self) -> str:
        return str(self.rule["title"])


def _yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProvisioningError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("apiVersion") != 1:
        raise ProvisioningError(f"{path}: a provisioning file must be a mapping with apiVersion: 1")
    return doc


def yaml_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_datasources(directory: Path = DATASOURCES_DIR) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in yaml_files(directory):
        out.extend(_yaml(path).get("datasources", []))
    return out


def datasource_databases(influx: InfluxSettings) -> dict[str, str]:
    """Data source uid -> the database its queries run in (per the given settings)."""
    return {RAW_DS_UID: influx.raw_db, VIGIL_DS_UID: influx.vigil_db}


def dashboard_files(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProvisioningError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not doc.get("uid") or not doc.get("title"):
        raise ProvisioningError(f"{path}: a dashboard needs a uid and a title")
    return doc


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[dict[str, Any]]:
    return [load_dashboard(p) for p in dashboard_files(directory)]


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_targets(dashboard: dict[str, Any]) -> list[PanelTarget]:
    """Every panel query of a dashboard, with the data source it runs against."""
    out: list[PanelTarget] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            out.append(
                PanelTarget(
                    dashboard_uid=dashboard["uid"],
                    panel_id=int(panel["id"]),
                    panel_title=panel.get("title", ""),
                    panel_type=panel.get("type", ""),
                    ref_id=target.get("refId", "A"),
                    datasource_uid=ds.get("uid", ""),
                    query=target.get("query", ""),
                    alias=target.get("alias", ""),
                    result_format=target.get("resultFormat", "time_series"),
                    max_data_points=panel.get("maxDataPoints"),
                    min_interval=panel.get("interval"),
                )
            )
    return out


def annotation_targets(dashboard: dict[str, Any]) -> list[PanelTarget]:
    """The InfluxQL annotation queries (panel_id 0)."""
    return [
        PanelTarget(
            dashboard_uid=dashboard["uid"],
            panel_id=0,
            panel_title=f"annotation: {a.get('name', '')}",
            panel_type="annotation",
            ref_id=a.get("name", ""),
            datasource_uid=(a.get("datasource") or {}).get("uid", ""),
            query=(a.get("target") or {}).get("query") or a.get("query", ""),
        )
        for a in dashboard.get("annotations", {}).get("list", [])
        if (a.get("target") or {}).get("query") or a.get("query")
    ]


def load_alerting(directory: Path = ALERTING_DIR) -> dict[str, list[dict[str, Any]]]:
    """All alerting provisioning files merged: groups, contactPoints, policies, …"""
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in yaml_files(directory):
        for key, value in _yaml(path).items():
            if key == "apiVersion":
                continue
            if not isinstance(value, list):
                raise ProvisioningError(f"{path}: {key} must be a list")
            merged.setdefault(key, []).extend(value)
    return merged


def load_alert_rules(directory: Path = ALERTING_DIR) -> list[AlertRule]:
    rules: list[AlertRule] = []
    for group in load_alerting(directory).get("groups", []):
        for rule in group.get("rules", []):
            rules.append(AlertRule(group["name"], group["folder"], group["interval"], rule))
    return rules
