"""Grid-search throughput: scikit-learn (local) vs Spark (the same grid on executors, and MLlib KMeans).

Synthetic labelled datasets in the extract schema (``pipelines.synthetic``), so the figure is about
the search, not InfluxDB. Prints, per engine and size: total seconds, seconds per grid cell and
dataset rows per second (rows in the dataset / total seconds).

    .venv/bin/python bench/train_bench.py                 # 100k and 1M rows, the bench grid
    .venv/bin/python bench/train_bench.py --rows 100000 --full-grid --master local[2]

The bench grid is one cell per scikit-learn family (IsolationForest 100 trees/256 samples, LOF
k=10, one-component GaussianMixture) plus MLlib KMeans k in {2, 4}; ``--full-grid`` runs the
production grid (8 scikit-learn cells). Training rows are capped at ``--max-train-rows`` (the
detectors model normal behaviour), so cost grows with the validation rows each cell scores.
"""

from __future__ import annotations

import argparse
import time

from pipelines.common import time_split
from pipelines.search import SearchData, build_grid, local_search
from pipelines.spark_engine import distributed_search, mllib_search, spark_session
from pipelines.synthetic import synthetic_dataset
from vigil.settings import Settings

BENCH_GRID = {
    "isolation_forest": {"n_estimators": [100], "max_samples": [256]},
    "lof": {"n_neighbors": [10]},
    "gaussian_mixture": {"n_components": [1]},
}


def line(engine: str, rows: int, cells: int, seconds: float) -> str:
    return (
        f"{engine:<22} rows={rows:>9,} cells={cells:>2} total_s={seconds:8.1f} "
        f"s_per_cell={seconds / cells:7.2f} rows_per_s={rows / seconds:10,.0f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--max-train-rows", type=int, default=5000)
    ap.add_argument("--full-grid", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    cells = build_grid(overrides=None if args.full_grid else BENCH_GRID)
    settings = Settings(_env_file=None, spark_master=args.master)
    began = time.perf_counter()
    spark = spark_session(settings.training, app_name="vigil-train-bench", partitions=len(cells))
    print(f"spark session ({args.master}) started in {time.perf_counter() - began:.1f}s", flush=True)
    try:
        for rows in args.rows:
            frame = synthetic_dataset(rows, hosts=20, seed=args.seed)
            split = time_split(frame)
            data = SearchData.from_split(split, args.max_train_rows, args.seed)
            print(
                f"-- {len(frame):,} rows: {len(data.x_train):,} train, {len(data.x_val):,} validation",
                flush=True,
            )

            t = time.perf_counter()
            local = local_search(cells, data, args.seed)
            print(line("sklearn local", len(frame), len(cells), time.perf_counter() - t), flush=True)

            t = time.perf_counter()
            dist = distributed_search(spark, cells, data, args.seed)
            print(
                line(f"spark grid {args.master}", len(frame), len(cells), time.perf_counter() - t), flush=True
            )
            same = [a.cell for a in local] == [b.cell for b in dist] and all(
                abs(a.metrics["val_pr_auc"] - b.metrics["val_pr_auc"]) < 1e-12
                for a, b in zip(local, dist, strict=True)
            )
            print(f"   local and distributed metrics identical: {same}", flush=True)

            t = time.perf_counter()
            km = mllib_search(spark, data, args.seed, {"k": [2, 4], "maxIter": [20]})
            print(line("spark mllib kmeans", len(frame), len(km), time.perf_counter() - t), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
