"""The dashboard's Lineage page and ``/api/lineage``: the picture, and what each principal sees."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from lakestream.api import Lakestream
from lakestream.lake.delta import DeltaDataset
from lakestream.lineage import Check, Lineage, TaskResult
from lakestream.web import create_app

from .conftest import project_settings

FAILED = Check("validity.temperature", "silver/weather_cleaned", "fail", 97.5, "= 100 %",
               "1 of 40 values outside [-100, 60] °C", True)


@dataclass
class Site:
    api: Lakestream
    client: TestClient
    tokens: dict[str, str]


def record_run(lineage: Lineage) -> None:
    """One weather run whose quality check failed, through the real emitter."""
    run = lineage.run("weather", "weather-20260101T000000-abcdef", "127.0.0.1:9092")
    run.started()
    for task, result in (("ingest_data", TaskResult("success", 6, 6)),
                         ("consume_to_s3", TaskResult("success", 6, 6)),
                         ("process_silver", TaskResult("success", 6, 5)),
                         ("load_gold", TaskResult("success", 14, 14)),
                         ("quality_check", TaskResult("failed", 1, 1, "validity.temperature "
                                                      "failed", [FAILED]))):
        run.task_started(task)
        run.task_ended(task, 1, result)
    run.ended("failed", "quality_check failed")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A project with bronze and silver in its lake, one recorded run, and tokens."""
    api = Lakestream(project_settings(tmp_path / "project", "127.0.0.1:9092"))
    silver = DeltaDataset(api.storage, "silver/weather_cleaned")
    silver.ensure(pa.schema([("city", pa.string()), ("temperature", pa.float64())]))
    silver.append(pa.table({"city": ["Paris"], "temperature": [21.5]}))  # a view now
    record_run(api.lineage)
    api.governance.grant("solo", "bronze_weather", "read", actor="tests")
    tokens = {who: api.tokens.issue(who)[0] for who in ("admin", "solo", "nobody")}
    with TestClient(create_app(api)) as client:
        yield Site(api, client, tokens)


def get(site: Site, who: str, url: str = "/api/lineage") -> dict[str, Any]:
    response = site.client.get(url, headers={"Authorization": f"Bearer {site.tokens[who]}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_api_answers_the_whole_graph_to_an_admin(site: Site) -> None:
    body = get(site, "admin")
    assert body["events"] == 12 and body["skipped_lines"] == 0
    assert body["destination"] == str(site.api.lineage.events_file)
    jobs = {j["name"]: j for j in body["jobs"]}
    assert jobs["weather"]["state"] == "FAIL" and jobs["weather"]["kind"] == "DAG"
    assert jobs["weather.quality_check"]["error"] == "validity.temperature failed"
    assert jobs["weather.quality_check"]["run_id"] == "weather-20260101T000000-abcdef"
    names = {d["name"].rsplit("/", 1)[-1] for d in body["datasets"]}
    assert {"weather-data", "weather", "weather_cleaned", "gold_weather_detailed"} <= names
    cleaned = next(d for d in body["datasets"]
                   if d["name"].endswith("silver/weather_cleaned"))
    assert cleaned["rows"] == 5 and cleaned["checks"][0]["success"] is False
    assert {"from": cleaned["key"], "to": "lakestream/weather.load_gold"} in body["edges"]
    only = get(site, "admin", "/api/lineage?job=weather.load_gold")
    assert {j["name"] for j in only["jobs"]} == {"weather", "weather.load_gold"}


def test_the_page_draws_the_graph_as_an_inline_svg(site: Site) -> None:
    site.client.cookies.set("lakestream_token", site.tokens["admin"])
    try:
        response = site.client.get("/lineage")
    finally:
        site.client.cookies.clear()
    assert response.status_code == 200
    html = response.text
    assert '<a href="/lineage" class="on">Lineage</a>' in html
    svg = html[html.index('<svg class="lineage"'):html.index("</svg>")]
    labels = re.findall(r"<text x=\"\d+\" y=\"\d+\">([^<]+)</text>", svg)
    assert {"weather-data", "bronze/weather", "silver/weather_cleaned", "gold_weather_detailed",
            "consume_to_s3", "quality_check"} <= set(labels)
    # every edge of the run but those of the daily and hourly aggregates, which this lake does
    # not hold: no view, so no principal may read them
    assert len(re.findall(r'<path class="edge"', svg)) == 1 + 2 + 4 + 6 + 3 - 4
    assert 'class="node job fail"' in svg and 'class="node dataset bad"' in svg
    assert "1 check(s) failed" in svg
    x = {key: int(px) for key, px in re.findall(
        r'data-key="([^"]+)">\s*<title>[^<]*</title>\s*<rect x="(\d+)"', svg)}
    bronze = next(k for k in x if k.endswith("/bronze/weather"))
    assert x["kafka://127.0.0.1:9092/weather-data"] < x["lakestream/weather.consume_to_s3"] \
        < x[bronze] < x["lakestream/weather.process_silver"]  # inputs left, outputs right
    assert 'id="lineage-jobs"' in html and "validity.temperature failed" in html


def test_a_principal_sees_only_the_datasets_it_may_read_and_no_withheld_figures(
        site: Site) -> None:
    body = get(site, "solo")  # reads bronze only: the weather runs, not their figures
    text = json.dumps(body)
    assert {j["name"] for j in body["jobs"]} >= {"weather.consume_to_s3"}
    assert all(j["error"] is None for j in body["jobs"])
    shown = {d["name"].rsplit("/", 2)[-2:][-1] for d in body["datasets"]}
    assert shown == {"weather-data", "weather"}
    assert all(d["rows"] is None and d["checks"] == [] for d in body["datasets"])
    for hidden in ("weather_cleaned", "gold_weather", "data_quality_results",
                   "validity.temperature"):
        assert hidden not in text

    nobody = get(site, "nobody")
    assert nobody["jobs"] == [] and nobody["datasets"] == [] and nobody["edges"] == []
    site.client.cookies.set("lakestream_token", site.tokens["nobody"])
    try:
        page = site.client.get("/lineage").text
    finally:
        site.client.cookies.clear()
    assert "<svg class=\"lineage\"" not in page and "datasets you may read" in page
    audit = site.api.governance.audit_entries(principal="nobody",
                                              since=dt.datetime.now(dt.UTC) - dt.timedelta(
                                                  minutes=5))
    listed = [e.detail for e in audit if e.detail.get("via") == "api:lineage"]
    assert listed and listed[0]["shown"] == 0 and listed[0]["withheld"] == 6


def test_lineage_needs_a_token(site: Site) -> None:
    assert site.client.get("/api/lineage").status_code == 401
    page = site.client.get("/lineage", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/lineage"
