"""Spark training: the distributed scikit-learn grid agrees with the local one; the native MLlib
model is tuned with ParamGridBuilder + a time-ordered TrainValidationSplit and exported to numpy;
runs of every engine and family log the same metric names; and a real standalone master+worker
trains too. One small local[2] session is shared (Spark start costs ~20 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.common import label_sources_in, read_dataset, time_split
from pipelines.search import SearchData, build_grid, local_search, pick_best
from pipelines.spark_engine import distributed_search, mllib_search, spark_session
from pipelines.synthetic import synthetic_dataset, synthetic_history
from vigil.settings import Settings

#: a small grid with cells from every scikit-learn family
GRID = {
    "isolation_forest": {"n_estimators": [30], "max_samples": [64, 256]},
    "lof": {"n_neighbors": [5, 20]},
    "gaussian_mixture": {"n_components": [1]},
}
SEED = 3


@pytest.fixture(scope="module")
def dataset() -> object:
    return synthetic_dataset(8_000, hosts=4, seed=5)


@pytest.fixture(scope="module")
def search_data(dataset) -> SearchData:
    return SearchData.from_split(time_split(dataset), max_train_rows=1000, seed=SEED)


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    session = spark_session(Settings(_env_file=None, spark_master="local[2]").training, partitions=2)
    yield session
    session.stop()


def test_distributed_grid_finds_the_same_best_config_as_local(spark, search_data) -> None:
    cells = build_grid(overrides=GRID)
    local = local_search(cells, search_data, SEED)
    distributed = distributed_search(spark, cells, search_data, SEED)
    assert [r.cell for r in distributed] == cells
    for a, b in zip(local, distributed, strict=True):
        assert a.metrics["val_pr_auc"] == pytest.approx(b.metrics["val_pr_auc"], abs=1e-12), a.cell.name
    assert pick_best(local, "pr_auc").cell == pick_best(distributed, "pr_auc").cell
    assert pick_best(local, "f1").cell == pick_best(distributed, "f1").cell


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeder's raw history of 4 hosts x 8 h saved as extract saves it (features + raw frames)."""
    path, _ = synthetic_history(tmp_path_factory.mktemp("spark-history"), hosts=4, hours=8, seed=5)
    return path


def test_distributed_label_free_search_matches_local(spark, history: Path) -> None:
    from pipelines.train import inject_validation

    settings = Settings(_env_file=None)
    frame = label_sources_in(read_dataset(history), ())  # the seeded labels hidden: a fleet without any
    split = time_split(frame)
    injected = inject_validation(settings.features, history, split, SEED, frame)
    data = SearchData.from_split(
        split, 1000, SEED, objective="injected", injected=(injected.rows, injected.event_of_row)
    )
    cells = build_grid(overrides=GRID)
    local = local_search(cells, data, SEED)
    distributed = distributed_search(spark, cells, data, SEED)
    for a, b in zip(local, distributed, strict=True):
        for key in ("val_injected_recall", "val_injected_point_recall", "val_threshold"):
            assert a.metrics[key] == pytest.approx(b.metrics[key], abs=1e-12), (a.cell.name, key)
    assert pick_best(local, "injected").cell == pick_best(distributed, "injected").cell


def test_spark_engine_logs_same_metric_names_as_sklearn(
    spark, mlflow_settings: Settings, tmp_path: Path, history: Path
) -> None:
    import mlflow
    from pipelines.train import train

    settings = mlflow_settings.model_copy(update={"run_dir": tmp_path, "mlflow_experiment": "spark-engine"})
    path = history
    result = train(
        settings,
        path,
        engine="spark",
        families=("isolation_forest", "lof"),
        grid_overrides=GRID,
        mllib_grid={"k": [2, 4], "maxIter": [10]},
        max_train_rows=1000,
        seed=SEED,
        spark=spark,
    )
    runs = mlflow.search_runs(
        experiment_names=["spark-engine"], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(runs) == 4 + 2  # IF x2, LOF x2, KMeans k in {2, 4}
    names = set(runs["tags.mlflow.runName"])
    assert "spark:isolation_forest[max_samples=64,n_estimators=30]" in names
    assert "spark:mllib_kmeans[k=2,maxIter=10]" in names
    for metric in ("val_injected_recall", "val_injected_point_recall", "val_threshold", "cell_seconds"):
        assert runs[f"metrics.{metric}"].notna().all(), metric  # every family logs the same names
    assert {"params.isolation_forest.max_samples", "params.lof.n_neighbors", "params.mllib_kmeans.k"} <= set(
        runs.columns
    )
    # MLlib cells: tuned by ParamGridBuilder + time-ordered TVS with Spark's evaluator, scored by ours too
    kmeans = runs[runs["params.family"] == "mllib_kmeans"]
    assert sorted(kmeans["params.mllib_kmeans.k"].astype(int)) == [2, 4]
    assert (kmeans["metrics.val_spark_pr_auc"] > 0.5).all()  # injected rows vs real ones, Spark's evaluator
    assert (kmeans["metrics.val_injected_recall"] > 0).all()
    served = mlflow.pyfunc.load_model(result.model_uri).predict(
        read_dataset(path).head(20)
    )  # no Spark needed
    assert len(served) == 20


def test_mllib_model_exports_to_numpy_and_serves_without_spark(spark, dataset) -> None:
    split = time_split(dataset)
    data = SearchData.from_split(split, 1000, SEED)
    (result,) = mllib_search(spark, data, SEED, {"k": [3], "maxIter": [5]})
    assert result.cell.name == "mllib_kmeans[k=3,maxIter=5]"
    assert result.model.scorer.centers.shape == (3, 27)
    served = result.model.predict(split.holdout)
    assert len(served) == len(split.holdout) and served["is_anomaly"].sum() > 0


def test_training_on_a_real_standalone_master_and_worker(spark, search_data, tmp_path: Path) -> None:
    from pipelines.spark_cluster import start_standalone

    cells = build_grid(
        overrides={"isolation_forest": {"n_estimators": [30], "max_samples": [64, 256]}},
        families=["isolation_forest"],
    )
    local_best = pick_best(local_search(cells, search_data, SEED), "pr_auc").cell
    spark.stop()  # one SparkContext per process: the shared local session ends here (this test runs last)
    cluster = start_standalone(tmp_path)
    try:
        settings = Settings(_env_file=None, spark_master=cluster.master_url)
        session = spark_session(settings.training, app_name="vigil-standalone-test", partitions=2)
        try:
            assert session.sparkContext.master == cluster.master_url
            results = distributed_search(session, cells, search_data, SEED)
        finally:
            session.stop()
    finally:
        cluster.stop()
    assert pick_best(results, "pr_auc").cell == local_best
