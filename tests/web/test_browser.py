"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): every page,
its numbers against the lake's, the click-through from a feed to a partition, screenshots.

Screenshots go to ``$LAKESTREAM_SCREENSHOTS`` (default ``lakestream-data/screenshots``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakestream.kafka.lag import BrokerWatermarks
from lakestream.lake.metadata import read_metadata
from lakestream.observe.lag import TANSU_NOTE, sink_positions
from tests.web.conftest import TRANSACTIONS_DAG_RUNS, WEATHER_RUNS, DemoLake, Tokens

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("LAKESTREAM_SCREENSHOTS", "lakestream-data/screenshots"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium (never a downloaded one), headless."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: str, tokens: Tokens) -> Iterator[Any]:
    """A logged-in page (admin); fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto("/login")
    tab.fill("#token", tokens.admin)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{server}/")
    yield tab
    context.close()
    assert errors == []


def load(page: Any, path: str) -> None:
    page.goto(path)
    page.wait_for_selector("body[data-loaded]")


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def cell(page: Any, table: str, row: str, col: str) -> str:
    return str(page.get_attribute(f'#{table} tr[data-row="{row}"] td[data-col="{col}"]',
                                  "data-value"))


def test_pages_need_a_login_and_a_bad_token_is_refused(browser: Any, server: str) -> None:
    context = browser.new_context(base_url=server)
    tab = context.new_page()
    tab.goto("/datasets/transaction_stream")
    assert "/login?next=/datasets/transaction_stream" in tab.url
    tab.fill("#token", "lst_wrong")
    tab.click("button[type=submit]")
    assert tab.is_visible("#login-failed")
    context.close()


def test_overview_shows_the_lakes_numbers(page: Any, demo_lake: DemoLake) -> None:
    load(page, "/")
    storage = demo_lake.api.storage
    for name, path in [("transaction_stream", "streams/transaction_stream"),
                       ("transaction_stream_anonymized", "streams/transaction_stream_anonymized"),
                       ("product_purchase_counts", "tables/product_purchase_counts")]:
        meta = read_metadata(storage, path)
        assert meta is not None
        assert int(cell(page, "datasets", name, "records")) == meta["records"]
        assert int(cell(page, "datasets", name, "dlq_records")) == meta["rejected_records"]
        shown = page.inner_text(f'#datasets tr[data-row="{name}"] td[data-col="records"]')
        assert int(shown.replace(",", "")) == meta["records"]
    cleaned = demo_lake.api.query("SELECT count(*) FROM silver_weather_cleaned")[1][0][0]
    assert int(cell(page, "datasets", "silver_weather_cleaned", "records")) == cleaned
    assert page.locator("#runs tbody tr").count() >= 3
    shot(page, "overview")


def test_click_through_feed_to_partition(page: Any, demo_lake: DemoLake) -> None:
    load(page, "/")
    page.click('#datasets a:text-is("transaction_stream")')
    page.wait_for_url(re.compile(r"/datasets/transaction_stream$"))
    page.wait_for_selector("body[data-loaded] #partitions")
    days = dict(demo_lake.api.query(
        "SELECT strftime(make_date(year, month, day), '%Y-%m-%d'), count(*) "
        "FROM transaction_stream GROUP BY ALL")[1])
    for day, count in days.items():
        assert int(cell(page, "partitions", day, "records")) == count
    assert page.locator("#schema tbody tr").count() >= 16
    assert page.locator("#dlq tbody tr").count() == 5
    groups = page.locator("#dlq-reasons tbody tr")
    assert groups.count() >= 1
    assert sum(int(groups.nth(i).locator("td").nth(1).inner_text().replace(",", ""))
               for i in range(groups.count())) == 5
    assert page.locator("code:text-is('lakestream dlq replay --feed transaction_stream "
                        "--dry-run')").count() == 1
    shot(page, "feed_transaction_stream")
    newest = max(days)
    page.click(f'#partitions a:text-is("{newest}")')
    page.wait_for_url(re.compile(rf"/partitions/{newest}$"))
    page.wait_for_selector("body[data-loaded] #rows")
    files = list(Path(demo_lake.api.storage.url(
        "streams/transaction_stream/year={}/month={}/day={}".format(*newest.split("-"))))
        .glob("*.parquet"))
    assert page.locator("#files tbody tr").count() == len(files)
    assert page.inner_text('[data-card="records"] .value').replace(",", "") == str(days[newest])
    assert page.locator("#rows tbody tr").count() == min(20, days[newest])
    shot(page, "partition_transaction_stream")


def test_runs_page_has_timeline_tasks_and_durations(page: Any, client: Any,
                                                    admin: dict[str, str]) -> None:
    runs = client.get("/api/runs", params={"limit": 30}, headers=admin).json()["runs"]
    load(page, "/runs")
    assert page.locator("#run-list details").count() == len(runs)
    assert page.locator('svg[aria-label="runs timeline"] rect').count() == len(runs)
    weather = next(r for r in runs if r["pipeline"] == "weather")
    page.click(f'details[id="{weather["run_id"]}"] summary')
    tasks = page.locator(f'details[id="{weather["run_id"]}"] tbody tr')
    assert tasks.count() == len(weather["tasks"])
    shot(page, "runs")


def test_quality_page_shows_checks_over_time(page: Any, client: Any,
                                             admin: dict[str, str]) -> None:
    results = client.get("/api/quality", headers=admin).json()["results"]
    load(page, "/quality")
    checks = {r["check_name"] for r in results}
    assert page.locator("#matrix tr").count() == len(checks)
    runs = {r["run_id"] for r in results}  # the weather runs and the transactions DAG's run
    assert len(runs) == WEATHER_RUNS + TRANSACTIONS_DAG_RUNS
    assert page.locator("#matrix tr").first.locator("td").count() == len(runs)  # a column a run
    latest = [r for r in results if r["run_id"] == results[0]["run_id"]]
    for r in latest:
        assert page.get_attribute(f'#latest tr[data-row="{r["check_name"]}"] td[data-col="status"]',
                                  "data-value") == r["status"]
    shot(page, "quality")


def test_data_charts_equal_the_lake(page: Any, demo_lake: DemoLake) -> None:
    load(page, "/charts")
    rows = demo_lake.api.query(
        "SELECT payment_method_name, transaction_count, total_amount FROM payment_method_totals "
        "WHERE version = (SELECT max(version) FROM payment_method_totals)")[1]
    for name, count, total in rows:
        assert int(cell(page, "table-payment_methods", name, "transaction_count")) == count
        assert float(cell(page, "table-payment_methods", name, "total_amount")) == \
            pytest.approx(total)
    lines = page.locator('#chart-weather_temperature svg path[stroke]')
    assert lines.count() == 5  # one line per city
    currencies = demo_lake.api.query("SELECT count(DISTINCT currency) FROM "
                                     "transaction_stream_anonymized WHERE status = 'completed'")
    assert page.locator("#table-currencies tbody tr").count() == currencies[1][0][0]
    shot(page, "charts")


@pytest.fixture
def tansu_lag(demo_lake: DemoLake) -> Iterator[dict[str, int]]:
    """The server's broker answers like Tansu, with given watermarks."""
    lag = demo_lake.api.monitor.lag_monitor
    saved = lag.source
    extra = {"records": 3}
    positions = sink_positions(demo_lake.api.storage, demo_lake.api.feeds)
    lag.source = lambda _topics: BrokerWatermarks("tansu_cluster", {
        (t, p): (0, pos + extra["records"]) for (_, t, p), pos in positions.items()})
    lag.forget()
    yield extra
    lag.source = saved
    lag.forget()


def test_overview_says_lag_is_approximate_on_tansu_and_updates_without_reload(
        page: Any, tansu_lag: dict[str, int]) -> None:
    load(page, "/")
    assert page.is_visible(f"text={TANSU_NOTE}")
    before = page.inner_text('[data-card="lag"] .value')
    first_load = page.evaluate("performance.timeOrigin")
    tansu_lag["records"] = 1000
    deadline = time.monotonic() + 10
    while page.inner_text('[data-card="lag"] .value') == before and time.monotonic() < deadline:
        page.wait_for_timeout(200)  # the page polls the API; the test does not reload it
    after = page.inner_text('[data-card="lag"] .value')
    assert after != before and int(after.replace(",", "")) > int(before.replace(",", ""))
    assert page.evaluate("performance.timeOrigin") == first_load  # the same page, no reload
    shot(page, "overview_tansu_lag")


def test_the_demos_token_sees_every_page_filled(browser: Any, server: str,
                                                demo_lake: DemoLake) -> None:
    from lakestream.demo import dashboard_token

    token = dashboard_token(str(demo_lake.config))  # what `make serve` prints
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto("/login")
    tab.fill("#token", token)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{server}/")
    charts = [f"#chart-{name} svg" for name in ("weather_temperature", "weather_daily",
                                                "payment_methods", "top_products", "currencies")]
    for path, filled in [("/", ["#datasets tbody tr", "#runs tbody tr"]),
                         ("/datasets/transaction_stream",
                          ["#partitions tbody tr", "#dlq tbody tr"]),
                         ("/datasets/silver_weather_cleaned", ["#partitions tbody tr"]),
                         ("/runs", ["#run-list details"]),
                         ("/quality", ["#matrix tr", "#latest tr"]),
                         ("/charts", charts)]:
        load(tab, path)
        assert tab.locator(".banner.bad").count() == 0, path
        assert "may read" not in tab.inner_text("body"), path
        for selector in filled:
            assert tab.locator(selector).count() > 0, (path, selector)
    load(tab, "/")
    assert tab.locator("#datasets tbody tr").count() == len(
        demo_lake.api.monitor.catalog.datasets())
    context.close()
    assert errors == []
