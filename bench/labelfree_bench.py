"""Label-free retraining on seeded history: does the champion catch the seeded events it never saw?

Starts its own InfluxDB and MLflow on free loopback ports in a temporary folder, seeds history
(default 24 h x 20 hosts; the seeder writes its ground truth to ``vigil_labels`` with
``source=seed``) and then:

1. runs ``vigil_retrain`` in-process with ``dag.test()`` (tasks one after another, as with a single
   worker) with the product's settings: training learns only from operator and stress labels
   (``VIGIL_TRAINING__LABEL_SOURCES``), so the seeded labels are hidden from it — the **label-free
   champion**; seconds per task are printed (the labelled DAG took 76 s in total on 2026-11-24);
2. trains the **labelled champion** on the very same dataset with the labels visible (objective
   PR-AUC, threshold on the validation F1 plateau: how Vigil trained before labels became
   optional), evaluates it the same way;
3. judges both on the same holdout through the served decision (``pipelines.evaluate``: the
   detector's ServingPath, injected events, the seeded labels used only to score) and, with
   ``--full-window``, also by a backtest over everything after the first 6 h (more seeded events;
   the models trained on that data, but never on its labels).

Targets (issue 19): the label-free champion catches >= 90 % of the seeded events with <= 1 false
alarm per host-day, within 5 points of the labelled champion's recall.

    .venv/bin/python bench/labelfree_bench.py [--hours 24] [--hosts 20] [--seed 42] [--full-window] [--out DIR]

Prints the load average beside the figures (2 shared cores: quote them with it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vigil.settings import PROJECT_ROOT, Settings

FIGURES = (
    ("real_event_recall", "seeded events caught", "{:.1%}"),
    ("real_events", "seeded events", "{:.0f}"),
    ("false_alarms_per_host_day", "false alarms per host-day", "{:.2f}"),
    ("false_alarms", "false alarms", "{:.0f}"),
    ("host_days", "host-days judged", "{:.2f}"),
    ("injected_event_recall", "injected events caught", "{:.1%}"),
    ("median_ttd_s", "median time to detect (s)", "{:.0f}"),
)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def dag_timings(args: argparse.Namespace, work: Path) -> tuple[dict[str, float], float]:
    """Run vigil_retrain with dag.test(); (seconds per task, total seconds)."""
    home = work / "airflow"
    began = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, capture_output=True
    )
    print(f"airflow db migrate in {time.perf_counter() - began:.1f}s ({load()})", flush=True)
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(PROJECT_ROOT / "dags"), bundle_path=PROJECT_ROOT / "dags")
    dag = bag.dags["vigil_retrain"]
    conf = {"lookback_hours": int(args.hours), "engine": "sklearn", "grid_size": "small", "backtest_hours": 0}
    began = time.perf_counter()
    run = dag.test(run_conf=conf)
    total = time.perf_counter() - began
    timings = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.start_date is None, t.start_date)):
        if ti.start_date and ti.end_date:
            timings[ti.task_id] = (ti.end_date - ti.start_date).total_seconds()
    if run.state != "success":
        raise SystemExit(f"vigil_retrain ended {run.state}; see the log above (AIRFLOW_HOME {home})")
    return timings, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--full-window", action="store_true", help="Also backtest both over the window after 6 h."
    )
    parser.add_argument("--out", type=Path, default=None, help="Where to write labelfree_bench.json/.png.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vigil-bench-labelfree-"))
    home = work / "airflow"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    import pandas as pd

    from pipelines.backtest import backtest
    from pipelines.common import mlflow_client
    from pipelines.evaluate import evaluate
    from pipelines.search import SKLEARN_FAMILIES, small_grid
    from pipelines.train import train
    from toolkit.seed import seed_history
    from toolkit.stack.influxdb import start_influxdb
    from toolkit.stack.mlflow_server import start_mlflow
    from toolkit.stack.services import settings_env
    from vigil.influx import InfluxClient
    from vigil.processes import free_port, stop_process

    print(f"start: {load()}", flush=True)
    influx_rec = start_influxdb(work, free_port(), free_port())
    mlflow_rec = start_mlflow(work, free_port())
    try:
        settings = Settings(
            _env_file=None,
            run_dir=work / "run",
            influx_port=influx_rec.port,
            mlflow_port=mlflow_rec.port,
            airflow_task_retries=0,
            random_seed=args.seed,
        )
        client = InfluxClient(settings.influx)
        for db in (settings.influx.raw_db, settings.influx.vigil_db):
            client.create_database(db)
        began = time.perf_counter()
        seeded = seed_history(
            client,
            settings.influx,
            settings.collection,
            hours=args.hours,
            hosts=args.hosts,
            seed=args.seed,
            progress=True,
        )
        print(
            f"seeded {args.hours:g} h x {args.hosts} hosts, {len(seeded.labels)} labelled events (source=seed) "
            f"in {time.perf_counter() - began:.1f}s",
            flush=True,
        )
        os.environ.update(settings_env(settings))

        # 1. the label-free retrain, through Airflow
        timings, total = dag_timings(args, work)
        print(f"\nvigil_retrain (label-free): {total:.1f}s in total (dag.test, one task at a time; {load()})")
        print(f"{'task':<16} {'seconds':>8}")
        for task, secs in timings.items():
            print(f"{task:<16} {secs:>8.1f}")
        mlc = mlflow_client(settings.mlflow)
        champion = mlc.get_model_version_by_alias(settings.mlflow.model_name, "champion")
        free_run = mlc.get_run(champion.run_id)
        dataset = free_run.data.tags["vigil.dataset_path"]
        free = {
            k.removeprefix("holdout_"): v
            for k, v in free_run.data.metrics.items()
            if k.startswith("holdout_")
        }
        print(f"label-free champion v{champion.version}: {free_run.data.params.get('best_cell')}", flush=True)

        # 2. the labelled champion on the same dataset (seed labels visible)
        began = time.perf_counter()
        labelled = train(
            settings,
            dataset,
            families=SKLEARN_FAMILIES,
            grid_overrides=small_grid(SKLEARN_FAMILIES),
            objective="pr_auc",
            label_sources=("seed",),
            run_name="labelled-reference",
        )
        ev = evaluate(settings, labelled.model_uri, dataset)
        lab = {k.removeprefix("holdout_"): v for k, v in ev.metrics.items() if k.startswith("holdout_")}
        print(
            f"labelled champion {labelled.best_cell}: trained and evaluated in {time.perf_counter() - began:.1f}s"
        )

        results = {"holdout": {"label-free": free, "labelled": lab}}
        if args.full_window:
            start = seeded.start + pd.Timedelta(hours=6)
            versions = [f"{settings.mlflow.model_name}/{champion.version}"]
            from pipelines.registry import register

            labelled_version = register(
                settings.influx, settings.mlflow, labelled.run_id, validation_passed=True
            ).version
            versions.append(f"{settings.mlflow.model_name}/{labelled_version}")
            bt = backtest(
                settings, versions, start, seeded.end, warmup=start - seeded.start, out_dir=work / "bt"
            )
            results["full window"] = {
                "label-free": bt.models[0].metrics,
                "labelled": bt.models[1].metrics,
            }

        print(f"\nserved decision, seeded labels hidden from the label-free training ({load()}):")
        for window, both in results.items():
            print(f"\n{window}: {'figure':<28} {'label-free':>12} {'labelled':>12}")
            for key, name, fmt in FIGURES:
                cells = [fmt.format(both[m].get(key, float("nan"))) for m in ("label-free", "labelled")]
                print(f"{'':<{len(window) + 2}}{name:<28} {cells[0]:>12} {cells[1]:>12}")
        hold = results["holdout"]
        recall, fa = (
            hold["label-free"].get("real_event_recall"),
            hold["label-free"].get("false_alarms_per_host_day"),
        )
        gap = (hold["labelled"].get("real_event_recall", float("nan")) - recall) * 100
        print(
            f"\ntargets (holdout): seeded events caught >= 90 %: {recall:.1%} -> {'MET' if recall >= 0.9 else 'NOT MET'}; "
            f"false alarms per host-day <= 1: {fa:.2f} -> {'MET' if fa <= 1 else 'NOT MET'}; within 5 points of "
            f"the labelled champion: {gap:+.1f} points -> {'MET' if gap <= 5 else 'NOT MET'}"
        )
        print(f"end: {load()}")
        out = args.out or work
        out.mkdir(parents=True, exist_ok=True)
        payload = {
            "hours": args.hours,
            "hosts": args.hosts,
            "seed": args.seed,
            "dag_seconds": total,
            "dag_tasks": timings,
            "results": results,
            "load_average_end": os.getloadavg(),
        }
        (out / "labelfree_bench.json").write_text(json.dumps(payload, indent=2, default=str))
        _plot(results, out / "labelfree_bench.png")
        print(f"wrote {out / 'labelfree_bench.json'} and {out / 'labelfree_bench.png'}")
    finally:
        stop_process(mlflow_rec)
        stop_process(influx_rec)


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    keys = [
        ("real_event_recall", "seeded"),
        ("injected_event_recall", "injected"),
    ]
    windows = list(results)
    width = 0.35
    for i, model in enumerate(("label-free", "labelled")):
        axes[0].bar(
            [j + i * width for j in range(len(keys) * len(windows))],
            [results[w][model].get(k, 0) for w in windows for k, _ in keys],
            width,
            label=model,
        )
        axes[1].bar(
            [j + i * width for j in range(len(windows))],
            [results[w][model].get("false_alarms_per_host_day", 0) for w in windows],
            width,
            label=model,
        )
    axes[0].set_xticks([j + width / 2 for j in range(len(keys) * len(windows))])
    axes[0].set_xticklabels([f"{w}\n{n}" for w in windows for _, n in keys], fontsize=7)
    axes[0].axhline(0.9, color="black", ls="--", lw=0.8)
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title("events caught by the served decision (dashed: 90 %)", fontsize=9)
    axes[1].set_xticks([j + width / 2 for j in range(len(windows))])
    axes[1].set_xticklabels(windows, fontsize=8)
    axes[1].axhline(1.0, color="black", ls="--", lw=0.8)
    axes[1].set_title("false alarms per host-day (dashed: budget 1)", fontsize=9)
    axes[1].set_ylim(0, max(1.2, axes[1].get_ylim()[1]))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
