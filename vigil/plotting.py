"""Writing a matplotlib figure to a PNG, the one way every report in Vigil does it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_figure(fig: Any, path: Path, dpi: int = 90) -> Path:
    """Lay out, write (creating the folder) and close ``fig``; return ``path``.

    Why close: reports are drawn in long-running processes (the detector's incident
    bundles, the stress runner), where an unclosed figure is a leak per report.
    """
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
