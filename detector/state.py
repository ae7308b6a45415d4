"""The detector's checkpoint: watermark, online model and feature state, written atomically.

Why one file for all three: they must describe the *same* instant. A watermark newer than
the feature state would skip intervals; an older one would absorb intervals twice. The file
is written to a temporary name, fsynced and renamed, so a ``kill -9`` at any moment leaves
either the previous or the new checkpoint, never half of one.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass
class Checkpoint:
    """What a restart needs to resume with no gap and no duplicate."""

    watermark_ns: int  # end (exclusive) of the last interval whose predictions are durable
    online: bytes  # OnlineDetector.to_bytes()
    features: bytes  # FeaturePipeline.to_bytes()
    iterations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "checkpoint": checkpoint}
    write_atomic(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The saved checkpoint, or None if there is none; an unreadable one is set aside, not fatal."""
    if not path.exists():
        return None
    try:
        payload = pickle.loads(path.read_bytes())  # noqa: S301 - our own file in our run folder
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown checkpoint format {payload.get('format')!r}")
        return payload["checkpoint"]
    except Exception as exc:  # noqa: BLE001 - a corrupt checkpoint must not stop the service
        broken = path.with_name(path.name + ".broken")
        os.replace(path, broken)
        log.error("checkpoint %s unreadable (%s); moved to %s, starting fresh", path, exc, broken)
        return None
