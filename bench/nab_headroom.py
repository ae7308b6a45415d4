"""How far the detector's own detections can go on NAB, and two filters that might cut its false
positives (the tuning log's round 8, docs/nab_tuning.md).

Why: the in-sample target (75) needs far fewer false positives, and the question is whether a
filter over what the rule already raises can remove them, or whether a different model is needed.
Three measurements over one run of the detector's serving path (``vigil evaluate nab``'s code,
default settings):

* **ceiling**: every row outside a window scored 0, rows inside kept at the rule's threshold —
  the score these detections would reach with no false positive at all (labels used to *remove*
  detections, never to add them);
* **likelihood gate** (after Ahmad et al. 2017): a row pages only when the mean of its last ``k``
  raw scores is ``z0`` standard deviations above the series' last ``W`` raw scores — a series whose
  scores often sit near the boundary needs more;
* **context-novelty veto** (after contextOSE): a row pages only when one of its last ``k`` rows
  made a new context, the last ``L`` distinct levels of ``B`` bins over the range seen so far.

    .venv/bin/python bench/nab_headroom.py --data ../shared/nab

About one minute for the detection with 2 workers, then a few seconds per filter setting.
Everything is in-sample (threshold optimised over the 44 files, as NAB does); a filter worth a
leave-one-category-out run would have to gain several points here first.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from conditions import header, load
from nab_loco import run_candidate

from pipelines.nab.data import load_corpus
from pipelines.nab.scorer import PROFILES, optimise
from pipelines.nab.scorer import file_layout as layout_of
from vigil.serving.path import ServingConfig


def likelihood_gate(raw: np.ndarray, window: int, k: int, z0: float, min_rows: int = 100) -> np.ndarray:
    """True where the last ``k`` raw scores' mean is ``z0`` sd above the ``window`` rows before."""
    r = pd.Series(raw)
    past = r.shift(1)
    mean = past.rolling(window, min_periods=min_rows).mean()
    sd = past.rolling(window, min_periods=min_rows).std().clip(lower=1e-6)
    z = ((r.rolling(k, min_periods=1).mean() - mean) / sd).fillna(np.inf)
    return z.to_numpy() >= z0


def novel_context(values: np.ndarray, bins: int, length: int, k: int) -> np.ndarray:
    """True where one of the last ``k`` rows made a context (the last ``length`` distinct bins
    over the range seen so far) that the series had never made before."""
    seen: set[tuple[int, ...]] = set()
    recent: list[int] = []
    out = np.zeros(len(values), dtype=bool)
    lo = hi = np.nan
    last_new = -(10**9)
    for i, v in enumerate(values):
        if not np.isfinite(v):
            continue
        lo, hi = np.fmin(lo, v), np.fmax(hi, v)
        b = 0 if hi <= lo else min(bins - 1, int((v - lo) / (hi - lo) * bins))
        if not recent or recent[-1] != b:
            recent = [*recent, b][-length:]
            if tuple(recent) not in seen:
                seen.add(tuple(recent))
                last_new = i
        out[i] = i - last_new < k
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="NAB corpus folder")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(header(), flush=True)
    corpus = load_corpus(args.data)
    layouts = {s.key: layout_of(s.n_rows, s.window_indices(), s.probation_rows) for s in corpus}
    values = {s.key: s.frame["value"].to_numpy(dtype=float) for s in corpus}
    scores, _, raw = run_candidate(corpus, ServingConfig(), args.workers, with_raw=True)
    standard = PROFILES["standard"]

    def show(name: str, s: dict[str, np.ndarray]) -> None:
        r = optimise(layouts, s, standard)
        print(f"{name:46s} {r.normalised:6.2f}  TP {r.tp:2d}  FP {r.fp:3d}  ({load()})", flush=True)

    base = optimise(layouts, scores, standard)
    show("the rule as it runs", scores)
    show(
        "ceiling: every false positive removed",
        {k: np.where((layouts[k].window_of >= 0) & (s >= base.threshold), s, 0.0) for k, s in scores.items()},
    )
    for window, k, z0 in itertools.product((2016, 8640), (1, 3), (2.0, 3.0, 4.0, 6.0)):
        gated = {key: np.where(likelihood_gate(raw[key], window, k, z0), s, 0.0) for key, s in scores.items()}
        show(f"likelihood gate W={window} k={k} z0={z0:g}", gated)
    for bins, length, k in itertools.product((8, 16, 32), (2, 3, 4), (1, 6)):
        vetoed = {key: np.where(novel_context(values[key], bins, length, k), s, 0.0) for key, s in scores.items()}
        show(f"context veto B={bins} L={length} k={k}", vetoed)


if __name__ == "__main__":
    main()
