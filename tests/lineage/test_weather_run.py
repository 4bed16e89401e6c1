"""A real run of the weather DAG through the DAG runner (embedded broker, simulated source, local
lake, SQLite gold): every event it emits is valid OpenLineage, and they reach a local endpoint
standing in for Marquez."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestream.api import Lakestream
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.orchestrate.catalog import WEATHER_TASKS, weather_dag
from lakestream.orchestrate.runner import RunReport
from lakestream.pipelines.weather import WeatherOptions

from .conftest import Endpoint, check_event, events_in, project_settings

pytestmark = pytest.mark.integration

TASKS = [t.name for t in WEATHER_TASKS]


def weather_run(api: Lakestream, cities: tuple[str, ...], hours: int, seed: int) -> RunReport:
    """One run of the weather DAG on the simulated source, in this process."""
    options = WeatherOptions(source="simulated", cities=cities, hours=hours, seed=seed)
    return api.orchestrator.run(weather_dag(options))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Lakestream]:
    """A project with a broker of its own (the weather topic's name is fixed)."""
    with EmbeddedBroker(tmp_path / "broker") as broker:
        yield Lakestream(project_settings(tmp_path / "project", broker.bootstrap_servers))


def test_a_weather_run_reaches_a_local_http_endpoint_standing_in_for_marquez(
        api: Lakestream, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", endpoint.url)
    report = weather_run(api, ("Paris", "Tokyo"), 3, seed=4)
    assert report.status == "success", report.failed_task

    received = endpoint.wait_for(2 + 2 * len(TASKS))
    assert len(received) == 2 + 2 * len(TASKS)
    for event in received:
        check_event(event)
    assert endpoint.of("weather") == ["START", "COMPLETE"]
    for task in TASKS:
        assert endpoint.of(f"weather.{task}") == ["START", "COMPLETE"], task
    assert not api.lineage.events_file.exists()

    ends = {e["job"]["name"]: e for e in received if e["eventType"] == "COMPLETE"}
    (topic,) = ends["weather.ingest_data"]["outputs"]
    assert topic["namespace"] == f"kafka://{api.bootstrap()}" and topic["name"] == "weather-data"
    assert topic["outputFacets"]["outputStatistics"]["rowCount"] == 6  # 2 cities, 3 hours
    (bronze,) = ends["weather.consume_to_s3"]["outputs"]
    lake = Path(api.settings.lake.root).resolve()
    assert (bronze["namespace"], bronze["name"]) == ("file", str(lake / "bronze" / "weather"))
    bronze_fields = {f["name"]: f for f in bronze["facets"]["schema"]["fields"]}
    assert bronze_fields["main"]["type"] == "struct"  # read from the Delta log, nested
    assert "temp" in {f["name"] for f in bronze_fields["main"]["fields"]}

    tags = {t["key"]: t["value"] for t in ends["weather"]["run"]["facets"]["tags"]["tags"]}
    assert tags["lakestream.run_id"] == report.run_id  # the run log's id
    stored = api.quality_run(report.run_id).results  # the checks of this run, audits included
    checked = {Path(d["name"]).name: d["inputFacets"]["dataQualityAssertions"]["assertions"]
               for d in ends["weather.quality_check"]["inputs"]
               if "dataQualityAssertions" in d["inputFacets"]}
    asserted = {(a["assertion"], a["success"]) for found in checked.values() for a in found}
    assert asserted == {(r["check_name"], r["status"] != "fail") for r in stored}
    assert {a["column"] for a in checked["weather_cleaned"] if "column" in a} >= \
        {"temperature", "humidity"}


def test_a_weather_run_writes_valid_events_to_the_local_file(api: Lakestream) -> None:
    report = weather_run(api, ("Paris",), 2, seed=9)
    assert report.status == "success", report.failed_task
    events = events_in(api.lineage.events_file)
    assert len(events) == 2 + 2 * len(TASKS)
    for event in events:
        check_event(event)
    graph = api.lineage.graph()
    assert {j.state for j in graph.jobs.values()} == {"COMPLETE"}
    bronze = next(d for d in graph.datasets.values() if d.name.endswith("/bronze/weather"))
    assert bronze.rows == 2 and bronze.checks
