"""Monitoring in the Airflow UI, on the real deployment: the plugin's extra links, runs view and Data Docs.

The session's ``two_runs`` (``tests/stack/conftest.py``: triggered over REST with the same data, ``tiny_conf`` and
``approval=reject``): the first is promoted and pushed to the Hub emulator, the second (same data, same seed: no
better than the champion it made) is not. Then:

* the plugin's endpoints answer 401 without credentials and list both runs with their metrics with them;
* the extra links resolve through ``/api/v2/.../links`` to the Hub commit, its model card and the run's Data Docs;
* a headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium) logs into the Airflow UI
  with the simple auth manager's form, opens the run and the ``publish`` task, follows the "Model card" extra link
  to the Hub emulator, and opens the runs view inside the UI and on its own. Screenshots go to
  ``<session tmp>/screenshots/`` and are copied to ``tests/stack/artifacts/`` (git-ignored) for people to look at.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest

from tests.stack.airflow_stack import DAG_ID, AirflowClient, AirflowStack
from tests.stack.conftest import TwoRuns

if TYPE_CHECKING:
    from tests.conftest import LocalHub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
RUN_TIMEOUT_S = 900.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
KEEP_DIR = Path(__file__).resolve().parent / "artifacts"
UI_WAIT_S = 90.0
PREFIX = "/reranker"
SHOTS = ("01-dag-run", "02-publish-extra-links", "03-model-card-on-hub", "04-gx-data-docs",
         "05-runs-view-in-airflow-ui", "06-runs-view")


def _q(value: str) -> str:
    return quote(value, safe="")


def test_plugin_endpoints_require_airflow_auth(airflow_stack: AirflowStack, two_runs: TwoRuns) -> None:
    paths = [f"{PREFIX}/", f"{PREFIX}/api/runs", f"{PREFIX}/api/runs/{_q(two_runs.promoted)}",
             f"{PREFIX}/runs/{_q(two_runs.promoted)}/data-docs/index.html",
             f"{PREFIX}/runs/{_q(two_runs.promoted)}/model-card"]
    with httpx.Client(base_url=airflow_stack.base_url, trust_env=False, timeout=30) as anonymous:
        for path in paths:
            response = anonymous.get(path, follow_redirects=False)
            assert response.status_code == 401, (path, response.status_code, response.text[:300])
            forged = anonymous.get(path, headers={"Authorization": "Bearer not.a.jwt"}, follow_redirects=False)
            assert forged.status_code in (401, 403), (path, forged.status_code)
            cookie = anonymous.get(path, headers={"Cookie": "_token=not.a.jwt"}, follow_redirects=False)
            assert cookie.status_code in (401, 403), (path, cookie.status_code)


def test_runs_api_lists_both_runs_with_metrics(stack_client: AirflowClient, two_runs: TwoRuns,
                                               local_hub: LocalHub) -> None:
    body = stack_client.request("GET", f"{PREFIX}/api/runs", params={"limit": 100}).json()
    by_id = {run["run_id"]: run for run in body["runs"]}
    promoted, rejected = by_id[two_runs.promoted], by_id[two_runs.rejected]
    for run in (promoted, rejected):
        assert run["state"] == "success"
        assert run["primary_metric"] == "ndcg@10"
        assert isinstance(run["candidate"]["ndcg@10"], float) and isinstance(run["base"]["ndcg@10"], float)
        assert set(run["candidate"]) == {"ndcg@10", "map", "mrr@10"}
        assert len(run["fingerprint_short"]) == 8 and run["pairs"] > 0 and run["queries"] > 0
        assert run["validation_success"] is True and run["data_docs_url"]
        assert run["sources"]["evaluate"] == "xcom"  # read from Airflow's XComs
    assert promoted["fingerprint"] == rejected["fingerprint"]
    assert promoted["gate_outcome"] == "promote" and promoted["champion"] is None
    assert promoted["commit_sha"] == two_runs.commit_sha and promoted["commit_url"] == two_runs.commit_url
    assert promoted["model_card_url"] == f"{local_hub.endpoint}/{two_runs.repo}/blob/{two_runs.commit_sha}/README.md"
    assert rejected["gate_outcome"] in ("reject", "needs_approval") and rejected["gate_reasons"]
    assert rejected["champion"]["ndcg@10"] == pytest.approx(promoted["candidate"]["ndcg@10"])
    assert rejected["commit_sha"] is None

    one = stack_client.request("GET", f"{PREFIX}/api/runs/{_q(two_runs.rejected)}").json()
    assert one["run_id"] == two_runs.rejected
    stack_client.request("GET", f"{PREFIX}/api/runs/no-such-run", expect=(404,))

    page = stack_client.request("GET", f"{PREFIX}/").text
    assert f'data-run-id="{two_runs.promoted}"' in page and f'data-run-id="{two_runs.rejected}"' in page
    assert "<svg" in page and page.count('class="point"') >= 2

    redirect = stack_client.request("GET", f"{PREFIX}/runs/{_q(two_runs.promoted)}/model-card", expect=(307,),
                                    follow_redirects=False)
    assert redirect.headers["location"] == promoted["model_card_url"]


def test_data_docs_are_served_and_confined(stack_client: AirflowClient, two_runs: TwoRuns) -> None:
    base = f"{PREFIX}/runs/{_q(two_runs.promoted)}/data-docs"
    index = stack_client.request("GET", f"{base}/index.html")
    assert index.headers["content-type"].startswith("text/html") and "Expectation" in index.text
    stack_client.request("GET", f"{base}/static/styles/data_docs_default_styles.css")
    for escape in ("..%2Fvalidation.json", "..%2F..%2Fgate%2Fdecision.json", "%2Fetc%2Fpasswd", "static"):
        stack_client.request("GET", f"{base}/{escape}", expect=(404,))
    stack_client.request("GET", f"{PREFIX}/runs/no-such-run/data-docs/index.html", expect=(404,))


def test_extra_links_resolve_through_the_api(stack_client: AirflowClient, two_runs: TwoRuns,
                                             local_hub: LocalHub) -> None:
    def links(run_id: str, task_id: str) -> dict[str, str | None]:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/links"
        return dict(stack_client.request("GET", path).json()["extra_links"])

    card = f"{local_hub.endpoint}/{two_runs.repo}/blob/{two_runs.commit_sha}/README.md"
    docs = f"{PREFIX}/runs/{_q(two_runs.promoted)}/data-docs/index.html"
    assert links(two_runs.promoted, "publish") == {"Hub commit": two_runs.commit_url, "Model card": card}
    assert links(two_runs.promoted, "validate") == {"GX Data Docs": docs}
    assert links(two_runs.rejected, "validate") == {"GX Data Docs": docs.replace(_q(two_runs.promoted),
                                                                                 _q(two_runs.rejected))}
    assert links(two_runs.promoted, "train") == {}  # the links belong to their tasks only
    assert set(links(two_runs.rejected, "publish").values()) == {None}  # skipped: nothing pushed, no button


# -- the browser -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def screenshots(session_tmp: Path) -> Iterator[Path]:
    """Where this module's screenshots go; copied to ``tests/stack/artifacts/`` afterwards (also on failure)."""
    folder = session_tmp / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:  # a person must not mistake an earlier session's picture for this one's
        (KEEP_DIR / f"{name}.png").unlink(missing_ok=True)
    try:
        yield folder
    finally:
        KEEP_DIR.mkdir(parents=True, exist_ok=True)
        for png in sorted(folder.glob("*.png")):
            shutil.copy2(png, KEEP_DIR / png.name)
        print(f"screenshots: {folder} (copied to {KEEP_DIR})")


@pytest.fixture(scope="module")
def browser(session_tmp: Path) -> Iterator[Any]:
    """Headless system Chromium through chromedriver (Selenium never downloads a browser here)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = session_tmp / "chromium-profile"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-proxy-server",
                "--window-size=1440,1000", "--hide-scrollbars", f"--user-data-dir={profile}", "--lang=en-US"):
        options.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(session_tmp / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(UI_WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Any, what: str, timeout: float = UI_WAIT_S) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)
    except TimeoutException as exc:
        body = driver.find_element("tag name", "body").text[:2000] if driver.find_elements("tag name", "body") else ""
        raise AssertionError(f"timed out waiting for {what} at {driver.current_url}; page text:\n{body}") from exc


def _shot(driver: Any, folder: Path, name: str, *, full_page: bool = False) -> Path:
    """Save a PNG; ``full_page`` grows the window to the document's height first (headless Chromium allows it)."""
    path = folder / f"{name}.png"
    if full_page:
        height = int(driver.execute_script("return Math.max(document.body.scrollHeight, 800)"))
        driver.set_window_size(1440, min(height + 40, 4000))
    driver.save_screenshot(str(path))
    if full_page:
        driver.set_window_size(1440, 1000)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def _login(driver: Any, stack: AirflowStack) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{stack.base_url}/")
    user = _wait(driver, ec.visibility_of_element_located((By.NAME, "username")), "the login form")
    user.send_keys(stack.username)
    driver.find_element(By.NAME, "password").send_keys(stack.password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: "/auth/login" not in d.current_url and d.get_cookie("_token"), "the login to finish")


def test_browser_model_card_link_and_runs_view(
    browser: Any, screenshots: Path, airflow_stack: AirflowStack, two_runs: TwoRuns, local_hub: LocalHub
) -> None:
    from huggingface_hub import hf_hub_download
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from reranker_tasks.paths import safe_run_name

    base = airflow_stack.base_url
    run_page = f"{base}/dags/{DAG_ID}/runs/{_q(two_runs.promoted)}"
    _login(browser, airflow_stack)

    # The DAG run in the UI.
    browser.get(run_page)
    _wait(browser, ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{two_runs.promoted}')]")),
          "the run page")
    _wait(browser, ec.presence_of_element_located((By.XPATH, "//*[text()='publish']")), "the run's tasks")
    _shot(browser, screenshots, "01-dag-run")

    # The publish task's details carry the extra links; follow "Model card".
    browser.get(f"{run_page}/tasks/publish/details")
    card_link = _wait(browser, ec.visibility_of_element_located((By.LINK_TEXT, "Model card")), "the Model card link")
    _wait(browser, ec.visibility_of_element_located((By.LINK_TEXT, "Hub commit")), "the Hub commit link")
    _shot(browser, screenshots, "02-publish-extra-links")
    href = card_link.get_attribute("href")
    assert href == f"{local_hub.endpoint}/{two_runs.repo}/blob/{two_runs.commit_sha}/README.md"
    card_text = Path(hf_hub_download(two_runs.repo, "README.md", revision=two_runs.commit_sha,
                                     endpoint=local_hub.endpoint, token=local_hub.token)).read_text(encoding="utf-8")
    fetched = httpx.get(href, trust_env=False, timeout=30)
    assert fetched.status_code == 200 and fetched.text == card_text
    assert two_runs.promoted in card_text  # the card names the run that made it
    card_link.click()  # an external link: the UI opens it in a new tab
    _wait(browser, lambda d: len(d.window_handles) > 1 or d.current_url == href, "the model card to open")
    if len(browser.window_handles) > 1:
        browser.switch_to.window(browser.window_handles[-1])
    _wait(browser, lambda d: d.current_url == href, "the model card URL")
    _wait(browser, ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "ndcg"), "the card's text")
    _shot(browser, screenshots, "03-model-card-on-hub")
    if len(browser.window_handles) > 1:
        browser.close()
        browser.switch_to.window(browser.window_handles[0])

    # The Data Docs link of validate, served by the plugin behind the login.
    browser.get(f"{run_page}/tasks/validate/details")
    docs_link = _wait(browser, ec.visibility_of_element_located((By.LINK_TEXT, "GX Data Docs")), "the Data Docs link")
    docs_index = docs_link.get_attribute("href")
    browser.get(docs_index)
    _wait(browser, ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Expectation"), "the Data Docs index")
    # GX builds the index's tables with JavaScript from CDNs (unreachable here); its validation page is static HTML.
    docs_dir = airflow_stack.root / "artifacts" / safe_run_name(two_runs.promoted) / "validate" / "data_docs"
    result_page = next(p for p in sorted(docs_dir.glob("validations/**/*.html")) if "statistics" not in p.name)
    browser.get(docs_index.rsplit("/", 1)[0] + "/" + result_page.relative_to(docs_dir).as_posix())
    _wait(browser, ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Expectation Validation Result"),
          "the Data Docs validation result")
    assert "Succeeded" in browser.find_element(By.TAG_NAME, "body").text
    _shot(browser, screenshots, "04-gx-data-docs")

    # The runs view inside the Airflow UI (nav entry → iframe), then on its own, full page.
    browser.get(f"{base}/plugin/reranker-runs")
    frame = _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Reranker runs']")),
                  "the runs view frame")
    browser.switch_to.frame(frame)
    rows = _wait(browser, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "tr.run")] or None,
                 "the runs table in the frame")
    assert len(rows) >= 2
    browser.switch_to.default_content()
    time.sleep(1.0)  # let the frame finish painting
    _shot(browser, screenshots, "05-runs-view-in-airflow-ui")

    browser.get(f"{base}{PREFIX}/")
    _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "svg.chart")), "the chart")
    table = browser.find_element(By.ID, "runs").text
    for run_id in (two_runs.promoted, two_runs.rejected):
        row = browser.find_element(By.CSS_SELECTOR, f"tr.run[data-run-id='{run_id}']")
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1] == "success" and cells[4].split("\n")[0].replace(".", "", 1).isdigit(), cells
        assert "MAP" in cells[4] and "MRR@10" in cells[4], cells
    assert "promote" in table and ("reject" in table or "needs approval" in table)
    assert two_runs.commit_sha[:8] in table
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.run")) >= 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart circle.point")) >= 2
    _shot(browser, screenshots, "06-runs-view", full_page=True)
