"""The detector's checkpoint: watermark, online model and feature state, written atomically.

Why one file for all three: they must describe the *same* instant. A watermark newer than
the feature state would skip intervals; an older one would absorb intervals twice. The file
is written to a temporary name, fsynced and renamed, so a ``kill -9`` at any moment leaves
either the previous or the new checkpoint, never half of one.

Why it is pickled straight into the file: at 10,000 hosts the feature state is ~22 MB of
arrays, and serialising it to bytes first (then those bytes into the payload) held two or
three copies at once; it was the detector's peak memory (``bench/detector_bench.py``).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

#: 2: ``features`` is ``FeaturePipeline.state()``; 1 (still read): its ``to_bytes()``.
CHECKPOINT_FORMAT = 2
READABLE_FORMATS = (1, 2)


@dataclass
class Checkpoint:
    """What a restart needs to resume with no gap and no duplicate."""

    watermark_ns: int  # end (exclusive) of the last interval whose predictions are durable
    online: bytes  # OnlineDetector.to_bytes()
    features: Any  # FeaturePipeline.state() (format 1 wrote FeaturePipeline.to_bytes(); read both)
    iterations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def write_atomic(path: Path, write: bytes | Callable[[BinaryIO], object]) -> None:
    """Write to ``path`` via a fsynced temporary file and ``os.replace``.

    ``write`` is the content, or a function that writes it to the open file (so a large
    object can be pickled straight into it instead of held as bytes first).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        if isinstance(write, bytes):
            fh.write(write)
        else:
            write(fh)
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
    write_atomic(path, lambda fh: pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The saved checkpoint, or None if there is none; an unreadable one is set aside, not fatal."""
    if not path.exists():
        return None
    try:
        payload = pickle.loads(path.read_bytes())  # noqa: S301 - our own file in our run folder
        if payload.get("format") not in READABLE_FORMATS:
            raise ValueError(f"unknown checkpoint format {payload.get('format')!r}")
        checkpoint = payload["checkpoint"]
        if isinstance(checkpoint.features, bytes):  # format 1
            checkpoint.features = pickle.loads(checkpoint.features)  # noqa: S301 - as above
        return checkpoint
    except Exception as exc:  # noqa: BLE001 - a corrupt checkpoint must not stop the service
        broken = path.with_name(path.name + ".broken")
        os.replace(path, broken)
        log.error("checkpoint %s unreadable (%s); moved to %s, starting fresh", path, exc, broken)
        return None
