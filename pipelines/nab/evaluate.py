"""``vigil evaluate nab``: run a Vigil detector over a NAB corpus, write NAB-layout results,
plots and a report that scores Vigil beside the published detectors."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipelines.nab.data import NabSeries, load_corpus, load_published_scores, published_detectors
from pipelines.nab.events import event_metrics
from pipelines.nab.plots import plot_series
from pipelines.nab.report import DetectorRow, NabReport
from pipelines.nab.runner import detect
from pipelines.nab.scorer import FileLayout, file_layout, score_detector
from vigil.serving.path import ServingConfig

VIGIL = "vigil"


def results_path(out_dir: Path, series: NabSeries) -> Path:
    """NAB results layout: ``OUT/vigil/<category>/vigil_<file>.csv``."""
    return out_dir / VIGIL / series.category / f"{VIGIL}_{series.filename}"


def _label_column(layout: FileLayout) -> np.ndarray:
    return (layout.window_of >= 0).astype(int)


def _detect_one(series: NabSeries, config: ServingConfig) -> tuple[str, pd.DataFrame]:
    return series.key, detect(series.frame["timestamp"], series.frame["value"].to_numpy(), config)


def run_vigil(
    corpus: list[NabSeries],
    out_dir: Path,
    config: ServingConfig,
    plots: bool = True,
    workers: int = 1,
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Detect on every series (values only; ``workers`` processes), then write the results CSV
    (+ label) and a PNG per series. Returns anomaly scores and pages (``alarm``) per file."""
    preds: dict[str, pd.DataFrame] = {}
    bar = tqdm(total=sum(s.n_rows for s in corpus), desc="vigil on NAB", unit="row", unit_scale=True)
    if workers > 1 and len(corpus) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_detect_one, s, config): s for s in corpus}
            for fut in as_completed(futures):
                key, pred = fut.result()
                preds[key] = pred
                bar.update(futures[fut].n_rows)
    else:
        for s in corpus:
            key, pred = _detect_one(s, config)
            preds[key] = pred
            bar.update(s.n_rows)
    bar.close()
    scores, alarms = {}, {}
    for series in corpus:
        pred = preds[series.key]
        scores[series.key] = pred["anomaly_score"].tolist()
        alarms[series.key] = pred["alarm"].tolist()
        # labels enter only now, for NAB's results layout, after detection has finished
        layout = file_layout(series.n_rows, series.window_indices(), series.probation_rows)
        path = results_path(out_dir, series)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "timestamp": series.frame["timestamp"],
                "value": series.frame["value"],
                "anomaly_score": pred["anomaly_score"].round(6),
                "label": _label_column(layout),
            }
        ).to_csv(path, index=False)
        if plots:
            plot_series(
                path.with_suffix(".png"),
                f"{series.key} — vigil",
                series.frame["value"],
                pred["anomaly_score"].to_numpy(),
                pred["alarm"].to_numpy().astype(bool),
                series.window_indices(),
                series.probation_rows,
            )
    return scores, alarms


def evaluate_nab(
    data_dir: Path,
    out_dir: Path,
    config: ServingConfig | None = None,
    only: list[str] | None = None,
    plots: bool = True,
    echo: Callable[[str], None] = print,
    workers: int = 1,
) -> NabReport:
    """Score the detector's serving path (``config``: the detector's own, from its settings) on a
    NAB-layout corpus beside the published detectors; write the report and results."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    config = config or ServingConfig()
    corpus = load_corpus(data_dir, only)
    if not corpus:
        raise ValueError(f"no NAB series under {data_dir / 'data'}" + (f" matching {only}" if only else ""))
    layouts = {s.key: file_layout(s.n_rows, s.window_indices(), s.probation_rows) for s in corpus}
    scores, alarms = run_vigil(corpus, out_dir, config, plots, workers)

    rows = []
    vigil_res = score_detector(layouts, scores)
    rows.append(
        DetectorRow(
            name=VIGIL,
            results=vigil_res,
            events=event_metrics(layouts, _at(scores, vigil_res["standard"].threshold)),
            own_alarms=event_metrics(layouts, alarms),
            own_alarm_scores=score_detector(layouts, {k: [float(a) for a in v] for k, v in alarms.items()}),
        )
    )
    for published in published_detectors(data_dir):
        try:
            pub_scores = load_published_scores(data_dir, published, corpus)
        except (FileNotFoundError, ValueError) as exc:
            echo(f"skipping published detector {published}: {exc}")
            continue
        res = score_detector(layouts, pub_scores)
        rows.append(
            DetectorRow(published, res, event_metrics(layouts, _at(pub_scores, res["standard"].threshold)))
        )

    report = NabReport(
        files=[s.key for s in corpus],
        n_windows=sum(len(s.windows) for s in corpus),
        rows=rows,
        settings={"serving": _plain(config)},
        categories=category_table(corpus, layouts, scores, vigil_res["standard"].threshold),
    )
    md, js = report.write(out_dir)
    echo(report.to_markdown())
    echo(f"wrote {md} and {js}; results under {out_dir / VIGIL}")
    return report


def category_table(
    corpus: list[NabSeries], layouts: dict, scores: dict[str, list[float]], threshold: float
) -> list[dict]:
    """Per category at Vigil's standard threshold: windows caught, false positives, raw score."""
    from pipelines.nab.scorer import PROFILES, raw_score_at

    out = []
    for cat in sorted({s.category for s in corpus}):
        keys = [s.key for s in corpus if s.category == cat]
        raw, tp, fp, fn = raw_score_at({k: layouts[k] for k in keys}, scores, threshold, PROFILES["standard"])
        out.append(
            {"category": cat, "files": len(keys), "windows": tp + fn, "caught": tp, "fp": fp, "raw": raw}
        )
    return out


def _plain(config: ServingConfig) -> dict:
    from dataclasses import asdict

    return asdict(config)


def _at(scores: dict[str, list[float]], threshold: float) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) >= threshold for k, v in scores.items()}
