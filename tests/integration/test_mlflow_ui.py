"""MLflow as people use it: a real small grid training against a real ``mlflow server``, then its
UI in headless Chromium — the experiment opens on its training runs (not the GenAI overview),
the runs list names the dataset, and the compare view of the grid's child runs lines up the same
params and metrics for every cell.

Screenshots are saved in the test's output folder (printed) so a person can look at them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from support.browser_support import chromium, wait

from pipelines.mlflow_logging import (
    DATASET_NAME,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    NOT_APPLICABLE,
    run_links,
)
from pipelines.synthetic import synthetic_history
from pipelines.train import train
from vigil.mlflow_ui import WORKFLOW_QUERY
from vigil.settings import Settings

pytestmark = pytest.mark.slow

#: three families, five cells: the compare view must line up params that only some cells have
GRID = {
    "isolation_forest": {"n_estimators": [30], "max_samples": [64, 256]},
    "lof": {"n_neighbors": [5, 20]},
    "gaussian_mixture": {"n_components": [1]},
}
FAMILIES = tuple(GRID)


@pytest.fixture(scope="module")
def trained(mlflow_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """One real grid training (5 cells, the best model logged) in an experiment of its own."""
    out = tmp_path_factory.mktemp("mlflow-ui-train")
    settings = mlflow_settings.model_copy(update={"run_dir": out, "mlflow_experiment": "vigil-ui-test"})
    # the label-free path a user's fleet takes: the dataset and its raw frames, as extract writes them
    path, _ = synthetic_history(out, hosts=3, hours=5, seed=5)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = train(settings, path, families=FAMILIES, grid_overrides=GRID, max_train_rows=1000, seed=3)
    # MLflow's own "View run" links open the GenAI overview: Vigil turns them off, prints its own
    assert "View run" not in printed.getvalue() and "View experiment" not in printed.getvalue()
    return settings, result


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile", window="1800,1300") as driver:
        yield driver


def test_runs_carry_the_dataset_and_comparable_params_and_metrics(trained) -> None:
    from mlflow import MlflowClient

    settings, result = trained
    client = MlflowClient(tracking_uri=settings.mlflow.uri)
    parent = client.get_run(result.run_id)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND

    (dataset_input,) = parent.inputs.dataset_inputs
    ds = dataset_input.dataset
    assert (ds.name, ds.digest) == (DATASET_NAME, result.dataset_hash[:16])
    assert json.loads(ds.source) == {"uri": result.dataset_path}
    profile = json.loads(ds.profile)
    assert profile["content_hash"] == result.dataset_hash and profile["hosts"] == 3
    rows = len(pd.read_parquet(result.dataset_path))
    assert profile["rows"] == rows and profile["window_start"] < profile["window_end"]
    tags = {t.key: t.value for t in dataset_input.tags}
    assert tags["mlflow.data.context"] == "training" and tags["rows"] == str(rows)

    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(children) == 5
    param_keys = {frozenset(r.data.params) for r in children}
    metric_keys = {frozenset(r.data.metrics) for r in children}
    assert len(param_keys) == 1 and len(metric_keys) == 1, "every cell carries the same keys"
    assert {"family", "engine", "cell", "isolation_forest.max_samples", "lof.n_neighbors"} <= next(
        iter(param_keys)
    )
    assert {"val_injected_recall", "val_threshold", "cell_seconds"} <= next(iter(metric_keys))
    lof = [r for r in children if r.data.params["family"] == "lof"]
    assert {r.data.params["isolation_forest.max_samples"] for r in lof} == {NOT_APPLICABLE}
    assert all(math.isfinite(r.data.metrics["val_injected_recall"]) for r in children)
    for r in children:
        assert [i.dataset.digest for i in r.inputs.dataset_inputs] == [result.dataset_hash[:16]]

    links = run_links(settings.mlflow, result.run_id)
    for url in links.values():
        assert url.startswith(settings.mlflow.uri + "/#/") and url.endswith(WORKFLOW_QUERY)
    for r in children:
        assert r.info.run_id in links["mlflow_grid_compare_url"]


def test_the_train_command_prints_addresses_that_open_on_runs(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``vigil pipeline train`` prints the run, its experiment and the compare view of its grid."""
    from click.testing import CliRunner

    from pipelines.cli import pipeline
    from vigil.settings import get_settings

    settings, result = trained
    for key, value in {
        "VIGIL_MLFLOW__PORT": str(settings.mlflow.port),
        "VIGIL_MLFLOW__EXPERIMENT": settings.mlflow.experiment
        + "-cli",  # keeps the UI test's runs list as the grid left it
        "VIGIL_RUN_DIR": str(tmp_path / "run"),
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(pipeline, ["train", result.dataset_path, "--family", "lof"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    printed = json.loads(out.output[out.output.index("{") :])
    for key in ("mlflow_experiment_url", "mlflow_run_url", "mlflow_grid_compare_url"):
        assert printed[key].startswith(settings.mlflow.uri + "/#/") and printed[key].endswith(
            WORKFLOW_QUERY
        ), key
    assert printed["run_id"] in printed["mlflow_run_url"]
    assert "View run" not in out.output  # MLflow's own link, which opens the GenAI overview


def _text(driver: WebDriver) -> str:
    """Everything rendered (also what sits below the fold of a scrolled container)."""
    return driver.execute_script("return document.body.innerText")


#: The compare view's metric table is two react-virtualized grids (metric names | values per run)
#: that scroll together and render only the rows in view: scroll both to ``top``, then read each
#: rendered cell with its offsets (the names grid is the one whose cells link to a chart).
_READ_GRIDS = """
const grids = Array.from(document.querySelectorAll('.ReactVirtualized__Grid'));
grids.forEach(g => { g.scrollTop = arguments[0]; g.dispatchEvent(new Event('scroll')); });
return grids.map(g => ({
  names: g.querySelector('a[title="Plot chart"]') !== null,
  cells: Array.from(g.querySelectorAll('.ReactVirtualized__Grid__innerScrollContainer > div'))
    .map(c => [parseFloat(c.style.top), parseFloat(c.style.left), c.innerText.trim()]),
}));
"""


def metric_table(driver: WebDriver) -> dict[str, list[str]]:
    """Metric name -> the values the compare view shows for it, one per run (left to right)."""
    rows: dict[str, list[str]] = {}
    for top in range(0, 2000, 90):
        driver.execute_script(_READ_GRIDS, top)
        time.sleep(0.3)  # let the grids render the rows now in view
        grids = driver.execute_script(_READ_GRIDS, top)
        names = {t: text for g in grids if g["names"] for t, _, text in g["cells"]}
        for g in grids:
            if g["names"]:
                continue
            for t in {t for t, _, _ in g["cells"]} & set(names):
                rows[names[t]] = [
                    text for _, text in sorted((left, x) for tt, left, x in g["cells"] if tt == t)
                ]
    return rows


def test_the_ui_opens_on_runs_shows_the_dataset_and_compares_the_grid(
    trained, browser: WebDriver, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    settings, result = trained
    links = run_links(settings.mlflow, result.run_id)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nMLflow UI screenshots: {shots}")

    # the experiment, opened on its training runs (not the GenAI overview), the Dataset column
    browser.get(links["mlflow_experiment_url"])
    parent_name = f"train-sklearn-{result.dataset_hash[:8]}"
    wait(browser, 120).until(lambda d: parent_name in _text(d) and DATASET_NAME in _text(d))
    for close in browser.find_elements(By.XPATH, "//button[@aria-label='Close']"):
        close.click()  # MLflow 3.17's assistant panel, open on a fresh profile
    text = _text(browser)
    assert "Model training" in text and "Detect Issues" not in text
    digest = result.dataset_hash[:16]
    assert f"{DATASET_NAME} ({digest})" in text
    browser.save_screenshot(str(shots / "1-runs-list.png"))

    # the grid's child runs, expanded under their parent: each names the same dataset
    parent_cell = "//*[contains(@class,'ag-cell')][.//a[contains(., 'train-sklearn-')]]//button"
    wait(browser, 30).until(lambda d: d.find_elements(By.XPATH, parent_cell))[0].click()
    wait(browser, 30).until(lambda d: _text(d).count(f"{DATASET_NAME} ({digest})") == 6)
    browser.save_screenshot(str(shots / "2-runs-list-children.png"))

    # the dataset drawer: source, and the profile with the content hash, window, hosts, rows
    browser.find_elements(By.CSS_SELECTOR, "[data-testid=open-dataset-drawer]")[0].click()
    wait(browser, 30).until(lambda d: result.dataset_hash in _text(d))
    drawer = _text(browser)
    browser.save_screenshot(str(shots / "3-dataset-drawer.png"))
    for shown in (
        f"content hash: {result.dataset_hash}",
        "window start: ",
        "window end: ",
        "hosts: 3",
        f"rows: {len(pd.read_parquet(result.dataset_path))}",
        f"Digest: {digest}",
        f"Path: {result.dataset_path}",
    ):
        assert shown in drawer, shown

    # MLflow's compare view of the five cells: the same params and metrics for every one of them
    browser.get(links["mlflow_grid_compare_url"])
    wait(browser, 120).until(lambda d: "Comparing 5 Runs" in _text(d) and "val_injected_recall" in _text(d))
    text = _text(browser)
    for key in (
        "family",
        "cell",
        "isolation_forest.max_samples",
        "lof.n_neighbors",
        "gaussian_mixture.n_components",
    ):
        assert key in text, key
    for cell in result.results:
        assert f"sklearn:{cell['cell']}" in text, cell["cell"]
    browser.execute_script("document.querySelector('main').scrollTop = 1e6")
    table = metric_table(browser)
    assert {"val_injected_recall", "val_threshold", "cell_seconds"} <= set(table), sorted(table)
    assert all(len(values) == 5 for values in table.values()), table
    client = MlflowClient(tracking_uri=settings.mlflow.uri)
    logged = sorted(
        r.data.metrics["val_injected_recall"]
        for r in client.search_runs(
            [client.get_run(result.run_id).info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
        )
    )
    shown = sorted(float(v) for v in table["val_injected_recall"])
    assert all(abs(a - b) <= 5e-4 for a, b in zip(shown, logged, strict=True)), (shown, logged)
    row_top = browser.execute_script(
        "const a = Array.from(document.querySelectorAll('.ReactVirtualized__Grid a')).find(a => a.innerText.trim() === 'val_injected_recall');"
        "return a ? parseFloat(a.parentElement.style.top) : 0;"
    )
    browser.execute_script(_READ_GRIDS, max(0, row_top - 45))
    time.sleep(0.5)
    browser.save_screenshot(str(shots / "4-compare-view-metrics.png"))
    browser.execute_script("document.querySelector('main').scrollTop = 0")
    browser.save_screenshot(str(shots / "5-compare-view-top.png"))
