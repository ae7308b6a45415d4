"""The Airflow UI in a real browser: log in, open vigil_retrain's trigger form, change a Param, trigger, see success.

Debian's chromium + chromedriver (from apt; nothing downloads a browser) driven headless by
Selenium, against the shared ``airflow standalone`` of the ``airflow_stack`` fixture.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from support.browser_support import chromium, wait

from pipelines.search import SKLEARN_FAMILIES
from toolkit.airflow_client import AirflowClient, admin_password
from vigil.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.slow

#: Param -> a phrase of its description that the form must show next to the field.
DESCRIPTIONS = {
    "lookback_hours": "How many hours of history",
    "engine": "scikit-learn grid search locally",
    "model_families": "detector families to grid-search",
    "grid_size": "small: a few cells per family",
    "promotion_margin": "must beat the champion's by",
    "force_promote": "Retrain even without drift",
    "dry_run": "register and promote nothing",
}


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def log_in(driver: WebDriver, settings: Settings) -> None:
    driver.get(settings.airflow.base_url + "/")
    wait(driver).until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(
        settings.airflow.username
    )
    driver.find_element(By.NAME, "password").send_keys(admin_password(settings.airflow))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(lambda d: "/auth/login" not in d.current_url)


def test_trigger_form_shows_params_and_a_changed_value_runs_to_success(
    airflow_stack: tuple[Settings, AirflowClient], browser: WebDriver, tmp_path: Path
) -> None:
    settings, client = airflow_stack
    log_in(browser, settings)
    browser.get(settings.airflow.base_url + "/dags/vigil_retrain")
    wait(browser).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))
    ).click()
    lookback = wait(browser).until(ec.visibility_of_element_located((By.NAME, "element_lookback_hours")))

    # every Param is a field of the form, with its description next to it
    for name in DESCRIPTIONS:
        assert browser.find_elements(By.NAME, f"element_{name}"), f"no form field for {name}"
    form_text = browser.find_element(By.TAG_NAME, "body").text
    for name, phrase in DESCRIPTIONS.items():
        assert phrase in form_text, f"description of {name} not shown"
    assert lookback.get_attribute("value") == "24"
    selected = {e.get_attribute("value") for e in browser.find_elements(By.NAME, "element_model_families")}
    assert selected == set(SKLEARN_FAMILIES)  # default: every family pipelines.search knows

    lookback.send_keys(Keys.CONTROL, "a")
    lookback.send_keys("5")
    wait(browser, 10).until(lambda d: lookback.get_attribute("value") == "5")
    form_png = tmp_path / "airflow_trigger_form.png"
    browser.save_screenshot(str(form_png))
    shutil.copyfile(form_png, PROJECT_ROOT / "docs" / "img" / "airflow_trigger_form.png")

    before = {
        r["dag_run_id"] for r in client.request("GET", "/api/v2/dags/vigil_retrain/dagRuns")["dag_runs"]
    }
    browser.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]").click()

    def new_run() -> dict | None:
        runs = client.request("GET", "/api/v2/dags/vigil_retrain/dagRuns")["dag_runs"]
        fresh = [r for r in runs if r["dag_run_id"] not in before]
        return fresh[0] if fresh else None

    deadline = time.monotonic() + 60
    while (run := new_run()) is None and time.monotonic() < deadline:
        time.sleep(1)
    assert run is not None, "the form's Trigger button created no run"
    assert run["conf"]["lookback_hours"] == 5 and run["conf"]["engine"] == "sklearn"
    outcome = client.follow("vigil_retrain", run["dag_run_id"], timeout_s=900)
    assert outcome.state == "success", outcome.tasks

    # and the UI shows it: the run's page reports success
    browser.get(outcome.ui_url)
    wait(browser, 120).until(lambda d: "success" in d.find_element(By.TAG_NAME, "body").text.lower())
    browser.save_screenshot(str(tmp_path / "airflow_run_success.png"))
    print(f"screenshots: {form_png}, {tmp_path / 'airflow_run_success.png'}")
