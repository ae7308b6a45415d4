"""``vigil evaluate nab``: run a Vigil detector over a NAB corpus, write NAB-layout results,
plots and a report that scores Vigil beside the published detectors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipelines.nab.data import NabSeries, load_corpus, load_published_scores, published_detectors
from pipelines.nab.events import event_metrics
from pipelines.nab.plots import plot_series
from pipelines.nab.report import DetectorRow, NabReport
from pipelines.nab.runner import Detector, RunnerConfig, detect
from pipelines.nab.scorer import FileLayout, file_layout, score_detector

VIGIL = "vigil"


def results_path(out_dir: Path, series: NabSeries) -> Path:
    """NAB results layout: ``OUT/vigil/<category>/vigil_<file>.csv``."""
    return out_dir / VIGIL / series.category / f"{VIGIL}_{series.filename}"


def _label_column(layout: FileLayout) -> np.ndarray:
    return (layout.window_of >= 0).astype(int)


def run_vigil(
    corpus: list[NabSeries],
    out_dir: Path,
    detector: Detector = "online",
    config: RunnerConfig | None = None,
    plots: bool = True,
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Detect on every series (values only), then write results CSV (+ label) and PNG."""
    config = config or RunnerConfig()
    scores, alarms = {}, {}
    for series in tqdm(corpus, desc=f"vigil {detector}", unit="series"):
        pred = detect(series.frame["value"].tolist(), series.probation_rows, detector, config)
        scores[series.key] = pred["anomaly_score"].tolist()
        alarms[series.key] = pred["is_anomaly"].tolist()
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
                f"{series.key} — vigil {detector}",
                series.frame["value"],
                pred["anomaly_score"].to_numpy(),
                pred["is_anomaly"].to_numpy().astype(bool),
                series.window_indices(),
                series.probation_rows,
            )
    return scores, alarms


def evaluate_nab(
    data_dir: Path,
    out_dir: Path,
    detector: Detector = "online",
    config: RunnerConfig | None = None,
    only: list[str] | None = None,
    plots: bool = True,
    echo: Callable[[str], None] = print,
) -> NabReport:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    config = config or RunnerConfig()
    corpus = load_corpus(data_dir, only)
    layouts = {s.key: file_layout(s.n_rows, s.window_indices(), s.probation_rows) for s in corpus}
    scores, alarms = run_vigil(corpus, out_dir, detector, config, plots)

    rows = []
    name = f"{VIGIL} ({detector})"
    vigil_res = score_detector(layouts, scores)
    rows.append(
        DetectorRow(
            name=name,
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
        settings={"detector": detector, **config.to_dict()},
    )
    md, js = report.write(out_dir)
    echo(report.to_markdown())
    echo(f"wrote {md} and {js}; results under {out_dir / VIGIL}")
    return report


def _at(scores: dict[str, list[float]], threshold: float) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) >= threshold for k, v in scores.items()}
