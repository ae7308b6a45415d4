"""Reading bundles back (the CLI, stress reports): checked, listed, found by host and time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detector.incidents.model import BUNDLE_FILES, META, IncidentError


def load_incident(folder: Path) -> dict[str, Any]:
    """``meta.json`` of a bundle, checked: a missing or unreadable file is an :class:`IncidentError`."""
    if not folder.is_dir():
        raise IncidentError(f"no incident {folder.name!r} (no folder {folder})")
    path = folder / META
    if not path.is_file():
        raise IncidentError(f"incident {folder.name}: {META} is missing in {folder}")
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        raise IncidentError(f"incident {folder.name}: {path} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or "id" not in meta or "status" not in meta:
        raise IncidentError(f"incident {folder.name}: {path} is not an incident's meta (no id/status)")
    if meta["status"] == "complete":
        missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
        if missing:
            raise IncidentError(
                f"incident {folder.name} is damaged: {', '.join(missing)} missing in {folder} "
                f"(a complete bundle holds {', '.join(BUNDLE_FILES)})"
            )
    return meta


def list_incidents(root: Path) -> list[tuple[Path, dict[str, Any] | None, str | None]]:
    """Every bundle folder under ``root``, newest first: (folder, meta or None, error or None)."""
    if not root.is_dir():
        return []
    out = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        try:
            out.append((folder, load_incident(folder), None))
        except IncidentError as exc:
            out.append((folder, None, str(exc)))
    return out


def find_incident(root: Path, host: str, start_ns: int, end_ns: int) -> dict[str, Any] | None:
    """The incident in which ``host`` alarmed within ``[start, end)`` (earliest such alarm), if any."""
    best: tuple[int, dict[str, Any]] | None = None
    for folder, meta, _ in list_incidents(root):
        if meta is None:
            continue
        ep = (meta.get("hosts") or {}).get(host)
        if not ep:
            continue
        first, last = int(ep["first_alarm_ns"]), int(ep["last_alarm_ns"])
        if first < end_ns and last >= start_ns and (best is None or first < best[0]):
            best = (first, {**meta, "path": str(folder)})
    return best[1] if best else None
