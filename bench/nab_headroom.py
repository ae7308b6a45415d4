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
  made a new context, the last ``L`` distinct levels of ``B`` bins over the range seen so far;
* **shape novelty** (a plain fuzzy ART, after ARTime's idea, not its code): windows of ``W``
  means of ``d`` rows, scaled by the series' range so far and by their own, complement-coded;
  a window that resonates with no category (match below ``rho``) makes one, and scores
  ``1 - best match`` when it is not within ``mask`` windows of the last new category — alone,
  and beside the rule (paging at its own optimised threshold).

    .venv/bin/python bench/nab_headroom.py --data ../shared/nab [--rule-variants]

``--rule-variants`` also re-runs the rule with one thing changed: the season envelope's half-life
(1, 2, 14 days), its excess (0.5 of the range), and the "usual for this hour" veto off (patched
out of ``SeriesEvidence`` for that run only: the live rule has no such switch).

About one minute for the detection with 2 workers, then a few seconds per filter setting.
Everything is in-sample (threshold optimised over the 44 files, as NAB does); a filter worth a
leave-one-category-out run would have to gain several points here first.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from conditions import header, load
from nab_loco import run_candidate

from pipelines.nab.data import load_corpus
from pipelines.nab.scorer import PROFILES, optimise
from pipelines.nab.scorer import file_layout as layout_of
from vigil.online import series as series_module
from vigil.online.series import DAY_S
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


def shape_novelty(
    values: np.ndarray, start: int, rho: float, width: int = 8, d: int = 1, mask: float = 1.5
) -> np.ndarray:
    """``1 - best match`` where a window of the series made a new fuzzy-ART category (rows from
    ``start`` on and outside the mask), else 0. Categories learn by the fuzzy AND (fast learning)."""
    out = np.zeros(len(values))
    cats = np.zeros((0, 4 * width))
    lo = hi = np.nan
    last_new, masked = -(10**9), int(mask * width * d)
    for i in range(width * d - 1, len(values)):
        lo, hi = np.nanmin([lo, values[i]]), np.nanmax([hi, values[i]])
        win = values[i - width * d + 1 : i + 1].reshape(width, d).mean(axis=1)
        if not np.isfinite(win).all():
            continue
        level = (win - lo) / (hi - lo) if hi > lo else np.zeros(width)
        span = win.max() - win.min()
        shape = (win - win.min()) / span if span > 0 else np.full(width, 0.5)
        x = np.concatenate([level, shape, 1 - level, 1 - shape])
        match = np.minimum(cats, x).sum(axis=1) / x.sum() if len(cats) else np.zeros(1)
        j = int(np.argmax(match))
        if len(cats) and match[j] >= rho:
            cats[j] = np.minimum(cats[j], x)
            continue
        cats = np.vstack([cats, x])
        if i >= start and i - last_new > masked:
            out[i] = 1.0 - (match[j] if len(cats) > 1 else 0.0)
        last_new = i
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="NAB corpus folder")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rule-variants", action="store_true", help="also re-run the rule with one change")
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
        vetoed = {
            key: np.where(novel_context(values[key], bins, length, k), s, 0.0) for key, s in scores.items()
        }
        show(f"context veto B={bins} L={length} k={k}", vetoed)
    start = {s.key: s.probation_rows for s in corpus}
    for rho, d, mask in itertools.product((0.85, 0.9, 0.95), (1, 4), (1.5, 6.0)):
        art = {key: shape_novelty(values[key], start[key], rho, d=d, mask=mask) for key in scores}
        alone = optimise(layouts, art, standard)
        show(f"shape novelty rho={rho:g} d={d} mask={mask:g}, alone", art)
        beside = {
            key: np.maximum(s, np.where(art[key] >= alone.threshold, base.threshold + 0.1 * art[key], 0.0))
            for key, s in scores.items()
        }
        show(f"shape novelty rho={rho:g} d={d} mask={mask:g}, + rule", beside)

    if args.rule_variants:
        rule_variants(corpus, args.workers, show)


def rule_variants(corpus: list, workers: int, show: Callable[[str, dict], None]) -> None:
    """The rule re-run with one thing changed (each a full detection run)."""
    base = ServingConfig()
    changes = {f"season half-life {d:g} d": {"season_halflife_s": d * DAY_S} for d in (1, 2, 14)}
    changes["season excess 0.5"] = {"season_excess": 0.5}
    for name, change in changes.items():
        config = replace(base, series=replace(base.series, **change))
        show(name, run_candidate(corpus, config, workers)[0])
    season = series_module.SeriesEvidence._season

    def no_veto(self, rows, x, t, rng, age):  # noqa: ANN001, ANN202 - the patched method's own signature
        score, usual = season(self, rows, x, t, rng, age)
        return score, np.zeros_like(usual)

    series_module.SeriesEvidence._season = no_veto  # the workers fork after this: they see it too
    try:
        show("'usual for this hour' veto off", run_candidate(corpus, base, workers)[0])
    finally:
        series_module.SeriesEvidence._season = season


if __name__ == "__main__":
    main()
