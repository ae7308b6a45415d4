"""Spark training: (a) the scikit-learn grid distributed over executors, (b) a native MLlib model.

(a) Every grid cell becomes one row of a small DataFrame, partitioned by cell; the search data
    (numpy arrays) is broadcast once; ``applyInPandas`` runs :func:`pipelines.search.evaluate_cell`
    — the very function the local search runs — on the executors and returns its metrics. Same
    data, same seed, same code: the same best configuration as the local search.
(b) :class:`KMeansAnomaly`, a pyspark.ml Estimator (StandardScaler + KMeans fitted on normal rows;
    score = distance to the nearest centre), tuned with ``ParamGridBuilder`` and
    :class:`TimeOrderedTrainValidationSplit` (TrainValidationSplit whose split is a time cut, not a
    random one, so no future row trains a model judged on the past) and Spark's own
    ``BinaryClassificationEvaluator(areaUnderPR)`` on the score column. The fitted models are
    exported to numpy (:class:`vigil.model.CentroidScorer`): serving needs no Spark.

The master comes from ``settings.training.spark_master`` (``local[*]``, or ``spark://host:7077``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from multiprocessing.pool import ThreadPool
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common import PipelineError
from pipelines.search import Cell, CellResult, SearchData, cell_metrics, evaluate_cell
from vigil.features import FEATURE_COLUMNS
from vigil.model import AnomalyModel, CentroidScorer
from vigil.settings import TrainingSettings

log = logging.getLogger(__name__)

#: k values of the MLlib KMeans grid (few clusters: hosts' normal states, not a partition of noise).
KMEANS_GRID: dict[str, list[Any]] = {"k": [2, 4, 8], "maxIter": [20]}


def spark_session(training: TrainingSettings, app_name: str = "vigil-train", partitions: int = 4):
    """A SparkSession on ``training.spark_master``, bound to loopback, executors on this venv's Python."""
    from pyspark.sql import SparkSession

    # the Python workers must be this venv's interpreter (PySpark reads this at context creation)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master(training.spark_master)
        .appName(app_name)
        .config("spark.driver.host", training.bind_host)
        .config("spark.driver.bindAddress", training.bind_host)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.default.parallelism", str(partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


# ------------------------------------------------------------------------------------------------
# (a) the scikit-learn grid on executors


def distributed_search(spark, cells: list[Cell], data: SearchData, seed: int) -> list[CellResult]:
    """Evaluate ``cells`` on Spark executors; results in grid order (models are not shipped back)."""
    if not cells:
        raise PipelineError("the grid is empty")
    payload = spark.sparkContext.broadcast(pickle.dumps(data, protocol=5))

    def run_cell(frame: pd.DataFrame) -> pd.DataFrame:
        search_data = pickle.loads(payload.value)  # noqa: S301 - our own broadcast
        out = []
        for idx, cell_json in zip(frame["cell_index"], frame["cell"], strict=True):
            res = evaluate_cell(Cell.from_json(cell_json), search_data, seed, keep_model=False)
            out.append({"cell_index": int(idx), "metrics": json.dumps(res.metrics)})
        return pd.DataFrame(out, columns=["cell_index", "metrics"])

    cell_frame = spark.createDataFrame(
        pd.DataFrame({"cell_index": range(len(cells)), "cell": [c.to_json() for c in cells]})
    ).repartition(len(cells), "cell_index")
    rows = (
        cell_frame.groupBy("cell_index")
        .applyInPandas(run_cell, schema="cell_index long, metrics string")
        .collect()
    )
    payload.unpersist()
    by_index = {int(r["cell_index"]): json.loads(r["metrics"]) for r in rows}
    return [CellResult(cell, {k: float(v) for k, v in by_index[i].items()}) for i, cell in enumerate(cells)]


# ------------------------------------------------------------------------------------------------
# (b) native MLlib: KMeans distance, tuned with ParamGridBuilder + a time-ordered TrainValidationSplit


def _mllib_classes():
    """Define the pyspark.ml classes lazily (importing pyspark.ml is slow and needs no JVM yet)."""
    from pyspark import keyword_only
    from pyspark.ml import Estimator, Model
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.param import Param, Params, TypeConverters
    from pyspark.ml.tuning import (
        TrainValidationSplit,
        TrainValidationSplitModel,
        _cache_spark_dataset,
        _parallelFitTasks,
    )
    from pyspark.sql import functions as F
    from pyspark.util import inheritable_thread_target

    class _KMeansParams(Params):
        k = Param(Params._dummy(), "k", "number of clusters", typeConverter=TypeConverters.toInt)
        maxIter = Param(Params._dummy(), "maxIter", "KMeans iterations", typeConverter=TypeConverters.toInt)
        seed = Param(Params._dummy(), "seed", "random seed", typeConverter=TypeConverters.toInt)

    class KMeansAnomalyModel(Model, _KMeansParams):
        """Adds ``score`` = distance of the standardised features to the nearest centre."""

        def __init__(self, scorer: CentroidScorer | None = None) -> None:
            super().__init__()
            self.scorer = scorer

        def _transform(self, dataset):
            scorer = self.scorer

            from pyspark.sql.functions import pandas_udf

            @pandas_udf("double")
            def score(features: pd.Series) -> pd.Series:
                x = np.stack(features.to_numpy()).astype(float)
                return pd.Series(scorer.score_scaled(scorer.scaled(x)))

            return dataset.withColumn("score", score(F.col("features_array")))

        def copy(self, extra=None):
            that = super().copy(extra)
            that.scorer = self.scorer
            return that

    class KMeansAnomaly(Estimator, _KMeansParams):
        """StandardScaler + KMeans fitted (with Spark MLlib) on the normal rows (label 0) it is given."""

        @keyword_only
        def __init__(self, *, k: int = 4, maxIter: int = 20, seed: int = 42) -> None:
            super().__init__()
            self._setDefault(k=4, maxIter=20, seed=42)
            self._set(**self._input_kwargs)

        def _fit(self, dataset):
            from pyspark.ml.clustering import KMeans
            from pyspark.ml.feature import StandardScaler, VectorAssembler

            normal = dataset.filter(F.col("label") == 0)
            assembled = VectorAssembler(inputCols=list(FEATURE_COLUMNS), outputCol="raw").transform(normal)
            scaler = StandardScaler(inputCol="raw", outputCol="scaled", withMean=True, withStd=True).fit(
                assembled
            )
            kmeans = KMeans(
                k=self.getOrDefault(self.k),
                maxIter=self.getOrDefault(self.maxIter),
                seed=self.getOrDefault(self.seed),
                featuresCol="scaled",
            ).fit(scaler.transform(assembled))
            scorer = CentroidScorer(
                mean=np.asarray(scaler.mean.toArray(), dtype=float),
                scale=np.asarray(scaler.std.toArray(), dtype=float),
                centers=np.asarray(kmeans.clusterCenters(), dtype=float),
            )
            return self._copyValues(KMeansAnomalyModel(scorer))

    class TimeOrderedTrainValidationSplit(TrainValidationSplit):
        """TrainValidationSplit whose validation set is every row at or after ``validation_start``
        (column ``t``, epoch seconds) instead of a random share: the past trains, the future judges."""

        validation_start: float = 0.0

        def _fit(self, dataset):
            est = self.getOrDefault(self.estimator)
            epm = self.getOrDefault(self.estimatorParamMaps)
            eva = self.getOrDefault(self.evaluator)
            validation = dataset.filter(F.col("t") >= self.validation_start)
            train = dataset.filter(F.col("t") < self.validation_start)
            with _cache_spark_dataset(train) as train, _cache_spark_dataset(validation) as validation:
                tasks = map(
                    inheritable_thread_target(dataset.sparkSession),
                    _parallelFitTasks(est, train, eva, validation, epm, True),
                )
                metrics: list[float] = [0.0] * len(epm)
                sub_models: list[Any] = [None] * len(epm)
                pool = ThreadPool(processes=min(self.getParallelism(), len(epm)))
                for j, metric, sub_model in pool.imap_unordered(lambda f: f(), tasks):
                    metrics[j], sub_models[j] = metric, sub_model
                pool.close()
            best = int(np.argmax(metrics)) if eva.isLargerBetter() else int(np.argmin(metrics))
            # the best model is the one fitted on the training period (its threshold is set on validation)
            return self._copyValues(TrainValidationSplitModel(sub_models[best], metrics, sub_models))

    return KMeansAnomaly, TimeOrderedTrainValidationSplit, vector_to_array


def mllib_search(
    spark,
    data: SearchData,
    seed: int,
    grid: dict[str, list[Any]] | None = None,
    max_train_rows: int = 20_000,
) -> list[CellResult]:
    """Tune KMeansAnomaly over ``grid`` with ParamGridBuilder + time-ordered TrainValidationSplit.

    The training side is the search's fit rows (``data.x_train``: not labelled, not trimmed); the
    validation side is the real validation rows (label = their real label) plus, when there is an
    injected copy, its event rows (label 1) — so Spark's own areaUnderPR judges how well a cell
    separates known anomalies from the real rows, labels or not. Each cell's model is exported and
    scored with :func:`pipelines.search.cell_metrics`, the code the scikit-learn cells use, so the
    MLflow runs compare like with like; Spark's areaUnderPR is kept as ``val_spark_pr_auc``.
    """
    import time

    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.tuning import ParamGridBuilder

    KMeansAnomaly, TimeOrderedTVS, vector_to_array = _mllib_classes()
    grid = grid or KMEANS_GRID
    x_train = data.x_train
    if len(x_train) > max_train_rows:
        rng = np.random.default_rng(seed)
        x_train = x_train[np.sort(rng.choice(len(x_train), size=max_train_rows, replace=False))]
    x_val = np.vstack([data.x_val, data.x_inj]) if len(data.x_inj) else data.x_val
    y_val = np.r_[data.y_val, np.ones(len(data.x_inj), dtype=np.int64)]
    cols = list(FEATURE_COLUMNS)
    pdf = pd.DataFrame(np.vstack([x_train, x_val]), columns=cols)
    pdf["label"] = np.r_[np.zeros(len(x_train)), y_val].astype(float)
    pdf["t"] = np.r_[np.zeros(len(x_train)), np.ones(len(x_val))]  # the time cut: train before validation
    sdf = spark.createDataFrame(pdf).repartition(4)
    sdf = VectorAssembler(inputCols=cols, outputCol="features").transform(sdf)
    sdf = sdf.withColumn("features_array", vector_to_array("features")).drop("features")

    estimator = KMeansAnomaly(seed=seed)
    builder = ParamGridBuilder()
    for name, values in sorted(grid.items()):
        builder = builder.addGrid(estimator.getParam(name), values)
    param_maps = builder.build()
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="score", labelCol="label", metricName="areaUnderPR"
    )
    tvs = TimeOrderedTVS(
        estimator=estimator, estimatorParamMaps=param_maps, evaluator=evaluator, parallelism=1
    )
    tvs.validation_start = 0.5
    began = time.perf_counter()
    fitted = tvs.fit(sdf)
    seconds_per_cell = (time.perf_counter() - began) / len(param_maps)

    results = []
    for pm, spark_metric, sub in zip(param_maps, fitted.validationMetrics, fitted.subModels, strict=True):
        params = {p.name: pm[p] for p in sorted(pm, key=lambda p: p.name)}
        scorer = sub.scorer
        s_val = scorer.score_scaled(scorer.scaled(data.x_val))
        s_inj = scorer.score_scaled(scorer.scaled(data.x_inj)) if len(data.x_inj) else np.zeros(0)
        s_fp = scorer.score_scaled(scorer.scaled(data.x_fp)) if len(data.x_fp) else np.zeros(0)
        metrics, threshold = cell_metrics(data, s_val, s_inj, s_fp)
        metrics.update(
            val_spark_pr_auc=float(spark_metric),
            cell_seconds=seconds_per_cell,
            train_rows=float(len(x_train)),
            val_rows=float(len(data.x_val)),
        )
        model = AnomalyModel(scorer, threshold, family="mllib_kmeans", engine="spark", params=params)
        results.append(CellResult(Cell("mllib_kmeans", tuple(params.items())), metrics, model))
    return results
