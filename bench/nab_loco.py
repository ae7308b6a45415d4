"""NAB with a protocol that guards against fitting the corpus: leave one category out.

Every candidate is the detector's own serving path (``vigil evaluate nab``'s code) with a few of
the live detector's settings changed — the settings the defaults were chosen among. For each of
NAB's categories, the candidate and threshold that score best on the *other* categories are
applied to the held-out one; the held-out raw scores, summed over all categories and
normalised over all windows, are the leave-one-category-out (LOCO) score. It is printed beside
the in-sample score of every candidate (each with its threshold optimised on all files, as NAB
does), and for Vigil's own decision rule (its pages, no threshold optimisation) too.

    .venv/bin/python bench/nab_loco.py --data ../shared/nab --out /tmp/nab_loco

Runs every candidate over every series (about 2.5 minutes per candidate on this 2-core
machine with 2 workers); per-candidate scores are cached under ``--out`` so a second run only
scores. Labels are read only by the scorer.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from conditions import header, load

from pipelines.nab.data import NabSeries, load_corpus
from pipelines.nab.runner import detect
from pipelines.nab.scorer import PROFILES, file_layout, normalise, optimise, raw_score_at
from vigil.online.series import DAY_S
from vigil.serving.path import ServingConfig


def candidates() -> dict[str, ServingConfig]:
    """The grid: the record window, the rarity rate and the alarm grouping (each a setting of the
    live detector; everything else at its default)."""
    base = ServingConfig()
    out = {}
    for horizon_d, rate, group_h in itertools.product((14, 30), (0.1, 0.3, 1.0), (1, 4)):
        series = replace(base.series, record_horizon_s=horizon_d * DAY_S, rarity_per_day=rate)
        out[f"window {horizon_d} d, rarity {rate}/day, group {group_h} h"] = replace(
            base, series=series, alarm_group_s=group_h * 3600.0
        )
    out["window 30 d, rarity 0.3/day, no grouping"] = replace(base, alarm_group_s=0.0)
    return out


def _one(args: tuple[NabSeries, ServingConfig]) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    series, config = args
    pred = detect(series.frame["timestamp"], series.frame["value"].to_numpy(), config)
    return (
        series.key,
        pred["anomaly_score"].to_numpy(),
        pred["alarm"].to_numpy().astype(float),
        pred["score"].to_numpy(dtype=float),
    )


def run_candidate(
    corpus: list[NabSeries], config: ServingConfig, workers: int, with_raw: bool = False
) -> tuple[dict, ...]:
    """NAB scores and pages per file (and, ``with_raw``, the combined score before the decision)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_one, [(s, config) for s in corpus]))
    out = ({k: s for k, s, _, _ in results}, {k: a for k, _, a, _ in results})
    return (*out, {k: r for k, _, _, r in results}) if with_raw else out


def loco(
    corpus: list[NabSeries], layouts: dict, cands: dict[str, dict], fixed: float | None = None
) -> tuple[float, dict]:
    """LOCO standard score; ``fixed``: score at this threshold instead of an optimised one."""
    p = PROFILES["standard"]
    cats = sorted({s.category for s in corpus})
    total, picks = 0.0, {}
    for cat in cats:
        train = {k: v for k, v in layouts.items() if not k.startswith(cat + "/")}
        held = {k: v for k, v in layouts.items() if k.startswith(cat + "/")}
        best = None
        for name, scores in cands.items():
            if fixed is None:
                res = optimise(train, scores, p)
                value, threshold = res.normalised, res.threshold
            else:
                n_w = sum(len(v.windows) for v in train.values())
                raw, *_ = raw_score_at(train, scores, fixed, p)
                value, threshold = normalise(raw, n_w, p), fixed
            if best is None or value > best[0]:
                best = (value, name, threshold)
        _, name, threshold = best
        raw, tp, fp, fn = raw_score_at(held, cands[name], threshold, p)
        total += raw
        picks[cat] = {"candidate": name, "threshold": threshold, "raw": raw, "tp": tp, "fp": fp, "fn": fn}
    n_windows = sum(len(v.windows) for v in layouts.values())
    return normalise(total, n_windows, p), picks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="NAB corpus folder")
    ap.add_argument("--out", type=Path, required=True, help="cache and report folder")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(header(), flush=True)
    corpus = load_corpus(args.data)
    layouts = {s.key: file_layout(s.n_rows, s.window_indices(), s.probation_rows) for s in corpus}
    scores, pages = {}, {}
    for i, (name, cfg) in enumerate(candidates().items(), 1):
        key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]
        cache = args.out / f"cand-{key}.pkl"
        if cache.exists():
            scores[name], pages[name] = pickle.loads(cache.read_bytes())
        else:
            t0 = time.time()
            scores[name], pages[name] = run_candidate(corpus, cfg, args.workers)
            cache.write_bytes(pickle.dumps((scores[name], pages[name])))
            print(f"[{i}/{len(candidates())}] {name}: {time.time() - t0:.0f} s, {load()}", flush=True)
    rows = []
    for name in scores:
        res = optimise(layouts, scores[name], PROFILES["standard"])
        raw, tp, fp, fn = raw_score_at(layouts, pages[name], 0.5, PROFILES["standard"])
        rows.append((name, res.normalised, res.tp, res.fp, normalise(raw, 88, PROFILES["standard"]), tp, fp))
    rows.sort(key=lambda r: -r[1])
    lines = [
        "| candidate | in-sample standard (optimised threshold) | TP | FP | own rule (pages) | TP | FP |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {n} | {s:.2f} | {tp} | {fp} | {o:.2f} | {otp} | {ofp} |" for n, s, tp, fp, o, otp, ofp in rows
    ]
    score, picks = loco(corpus, layouts, scores)
    own, own_picks = loco(corpus, layouts, pages, fixed=0.5)
    lines += [
        "",
        f"**Leave one category out, standard: {score:.2f}** (candidate and threshold chosen on the other six "
        f"categories); own decision rule: {own:.2f}.",
        "",
        "| held-out category | chosen candidate | threshold | raw | TP | FP | FN |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cat, p in picks.items():
        lines.append(
            f"| {cat} | {p['candidate']} | {p['threshold']:.4f} | {p['raw']:.2f} | {p['tp']} | {p['fp']} | {p['fn']} |"
        )
    report = "\n".join(lines)
    print(report)
    print(load())
    (args.out / "nab_loco.md").write_text(report + "\n")
    (args.out / "nab_loco.json").write_text(
        json.dumps(
            {
                "loco_standard": score,
                "loco_own_rule": own,
                "picks": picks,
                "own_picks": own_picks,
                "in_sample": [
                    dict(
                        zip(("candidate", "standard", "tp", "fp", "own", "own_tp", "own_fp"), r, strict=True)
                    )
                    for r in rows
                ],
            },
            indent=2,
            default=float,
        )
    )


if __name__ == "__main__":
    main()
