"""The events of a DAG run, as a lineage consumer receives them: valid, complete, named right.

The DAG here is the weather DAG's shape with tasks that only report rows (no
broker): what is under test is what the runner emits around them, through
the real transports, against the vendored OpenLineage JSON schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import open_storage
from lakestream.lineage import Check, Lineage
from lakestream.orchestrate.dag import Dag, DagPolicy, Task, TaskContext, TaskOutput, chain
from lakestream.orchestrate.executors import ThreadExecutor
from lakestream.orchestrate.notify import Notifier
from lakestream.orchestrate.runner import DagRunner, RunReport
from lakestream.orchestrate.service import Orchestrator
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.runlog import RunLog, SafeRunLog

from .conftest import Endpoint, check_event, events_in, project_lineage, project_settings

BOOTSTRAP = "127.0.0.1:9092"
FAST = DagPolicy(retries=1, retry_delay_s=0.01, run_timeout_s=30, sla_s=None)
CHECKS = [Check("validity.temperature", "silver/weather_cleaned", "fail", 97.5, "= 100 %",
                "1 of 40 values outside [-100, 60] °C", True),
          Check("completeness.city", "bronze/weather", "pass", 100.0, ">= 90 %", "all", True),
          Check("freshness", "silver/weather_cleaned", "warn", 3.0, "warn > 2 h", "3 h", False)]


def flaky(failures: int, output: TaskOutput) -> Callable[[TaskContext], TaskOutput]:
    calls = {"n": 0}

    def run(_ctx: TaskContext) -> TaskOutput:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError(f"broker away {calls['n']}")
        return output

    return run


def failing(_ctx: TaskContext) -> TaskOutput:
    raise RuntimeError("1 quality check(s) failed: validity.temperature")


def weather_dag(quality: Callable[[TaskContext], Any] | None = None) -> Dag:
    """The weather DAG's tasks, reporting rows; ``consume_to_s3`` fails once."""
    tasks = [Task("ingest_data", lambda _c: TaskOutput(6, 6)),
             Task("consume_to_s3", flaky(1, TaskOutput(6, 6))),
             Task("process_silver", lambda _c: TaskOutput(6, 5)),
             Task("load_gold", lambda _c: TaskOutput(14, 14)),
             Task("quality_check", quality or (lambda _c: TaskOutput(3, 3))),
             Task("notify_success", lambda _c: None)]
    return Dag("weather", chain(*tasks), FAST, success_task="notify_success")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A project whose lake holds bronze and silver as Delta tables (their schemas are read)."""
    made = project_settings(tmp_path / "project", BOOTSTRAP)
    storage = open_storage(made.lake.root, made.s3)
    DeltaDataset(storage, "bronze/weather").ensure(pa.schema([
        ("city", pa.string()), ("main", pa.struct([("temp", pa.float64())]))]))
    DeltaDataset(storage, "silver/weather_cleaned").ensure(pa.schema([
        ("city", pa.string()), ("temperature", pa.float64())]))
    return made


def run_dag(settings: Settings, dag: Dag, lineage: Lineage) -> RunReport:
    engine = make_engine(sa.make_url(f"sqlite:///{Path(settings.data_dir) / 'runs.db'}"))
    try:
        runner = DagRunner(dag, ThreadExecutor(), SafeRunLog(RunLog(engine)), Notifier(None),
                           lineage=lambda pipeline, run_id: lineage.run(pipeline, run_id,
                                                                        BOOTSTRAP))
        return runner.run()
    finally:
        engine.dispose()


def by_job(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        found.setdefault(event["job"]["name"], []).append(event)
    return found


def test_a_dag_run_emits_start_and_an_end_for_itself_and_every_attempt_all_valid(
        settings: Settings) -> None:
    lineage = project_lineage(settings, read_checks=lambda _run_id: CHECKS)
    report = run_dag(settings, weather_dag(), lineage)
    assert report.status == "success"

    events = events_in(lineage.events_file)
    for event in events:
        check_event(event)
    jobs = by_job(events)
    assert [e["eventType"] for e in jobs["weather"]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in jobs["weather.consume_to_s3"]] == \
        ["START", "FAIL", "START", "COMPLETE"]
    for task in ("ingest_data", "process_silver", "load_gold", "quality_check",
                 "notify_success"):
        assert [e["eventType"] for e in jobs[f"weather.{task}"]] == ["START", "COMPLETE"]

    run_uuid = jobs["weather"][0]["run"]["runId"]
    assert jobs["weather"][1]["run"]["runId"] == run_uuid
    assert jobs["weather"][0]["job"]["facets"]["jobType"]["jobType"] == "DAG"
    attempts = jobs["weather.consume_to_s3"]
    assert attempts[0]["run"]["runId"] == attempts[1]["run"]["runId"] != \
        attempts[2]["run"]["runId"]
    assert attempts[1]["run"]["facets"]["errorMessage"]["message"] == "broker away 1"
    tags = {t["key"]: t["value"] for t in attempts[3]["run"]["facets"]["tags"]["tags"]}
    assert tags["lakestream.run_id"] == report.run_id and tags["lakestream.attempt"] == "2"
    for event in events:
        if event["job"]["name"] != "weather":
            assert event["job"]["namespace"] == "lakestream"
            assert event["job"]["facets"]["jobType"]["jobType"] == "TASK"
            parent = event["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == run_uuid
            assert (parent["job"]["namespace"], parent["job"]["name"]) == ("lakestream", "weather")
            assert parent["root"]["run"]["runId"] == run_uuid


def test_each_task_names_its_datasets_with_schemas_counts_and_assertions(
        settings: Settings) -> None:
    lineage = project_lineage(settings, read_checks=lambda _run_id: CHECKS)
    run_dag(settings, weather_dag(), lineage)
    jobs = by_job(events_in(lineage.events_file))
    lake = Path(settings.lake.root).resolve()
    gold = f"sqlite://{Path(settings.data_dir).resolve() / 'gold.db'}"

    (topic,) = jobs["weather.ingest_data"][-1]["outputs"]
    assert (topic["namespace"], topic["name"]) == ("kafka://127.0.0.1:9092", "weather-data")
    assert topic["outputFacets"]["outputStatistics"]["rowCount"] == 6
    assert "city" in {f["name"] for f in topic["facets"]["schema"]["fields"]}  # the feed's

    consume = jobs["weather.consume_to_s3"]
    assert [d["name"] for d in consume[0]["inputs"]] == ["weather-data"]
    assert consume[0]["outputs"] == [{"namespace": "file", "name": str(lake / "bronze/weather"),
                                      "facets": {}, "outputFacets": {}}]  # START: names only
    (bronze,) = consume[-1]["outputs"]
    assert bronze["facets"]["schema"]["fields"] == [
        {"name": "city", "type": "string"},
        {"name": "main", "type": "struct", "fields": [{"name": "temp", "type": "double"}]}]
    assert consume[-1]["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == 6

    silver = jobs["weather.process_silver"][-1]["outputs"]
    assert [Path(d["name"]).name for d in silver] == \
        ["weather_cleaned", "weather_daily_agg", "weather_hourly_agg"]
    assert silver[0]["outputFacets"]["outputStatistics"]["rowCount"] == 5
    assert silver[1]["outputFacets"] == {} and "schema" not in silver[1]["facets"]  # no table yet

    golds = jobs["weather.load_gold"][-1]["outputs"]
    assert {(d["namespace"], d["name"]) for d in golds} == {
        (gold, "gold_weather_detailed"), (gold, "gold_weather_daily_aggregates"),
        (gold, "gold_weather_hourly_aggregates")}
    detailed = next(d for d in golds if d["name"] == "gold_weather_detailed")
    fields = {f["name"]: f for f in detailed["facets"]["schema"]["fields"]}
    assert fields["temperature"]["description"] == "°C" and "outputStatistics" not in \
        detailed["outputFacets"]  # three tables, one total: no per-table count

    quality = jobs["weather.quality_check"][-1]
    inputs = {Path(d["name"]).name: d for d in quality["inputs"]}
    cleaned = inputs["weather_cleaned"]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert cleaned[0] == {"assertion": "validity.temperature", "success": False,
                          "column": "temperature", "severity": "error",
                          "name": "validity.temperature", "expected": "= 100 %",
                          "actual": "97.5", "params": {
                              "status": "fail",
                              "detail": "1 of 40 values outside [-100, 60] °C"}}
    assert cleaned[1]["success"] is True and "column" not in cleaned[1]  # a warning passes
    assert cleaned[1]["severity"] == "warn"
    (city,) = inputs["weather"]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert city["column"] == "city" and city["success"] is True
    assert [d["name"] for d in quality["outputs"]] == ["data_quality_results"]


def test_a_failing_task_fails_itself_and_its_run_and_the_tasks_after_it_emit_nothing(
        settings: Settings) -> None:
    lineage = project_lineage(settings, read_checks=lambda _run_id: CHECKS)
    report = run_dag(settings, weather_dag(failing), lineage)
    assert report.status == "failed"

    events = events_in(lineage.events_file)
    for event in events:
        check_event(event)
    jobs = by_job(events)
    assert [e["eventType"] for e in jobs["weather.quality_check"]] == \
        ["START", "FAIL", "START", "FAIL"]
    failed = jobs["weather.quality_check"][-1]
    assert failed["run"]["facets"]["errorMessage"]["message"] == \
        "1 quality check(s) failed: validity.temperature"
    assert failed["run"]["facets"]["errorMessage"]["programmingLanguage"] == "python"
    assert any("dataQualityAssertions" in d["inputFacets"] for d in failed["inputs"])
    assert [e["eventType"] for e in jobs["weather"]] == ["START", "FAIL"]
    assert "validity.temperature" in jobs["weather"][-1]["run"]["facets"]["errorMessage"][
        "message"]
    assert "weather.notify_success" not in jobs


def test_events_reach_a_local_http_endpoint_standing_in_for_marquez(
        settings: Settings, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", endpoint.url)
    lineage = project_lineage(settings, read_checks=lambda _run_id: CHECKS)
    assert lineage.destination().text == endpoint.url
    report = run_dag(settings, weather_dag(failing), lineage)
    assert report.status == "failed"

    received = endpoint.wait_for(16)
    assert len(received) == 16  # the run, and each attempt: START and its end
    assert set(endpoint.paths) == {"/api/v1/lineage"}
    assert not lineage.events_file.exists()  # an endpoint is configured: no local file
    for event in received:
        check_event(event)
    assert endpoint.of("weather") == ["START", "FAIL"]
    assert endpoint.of("weather.ingest_data") == ["START", "COMPLETE"]
    assert endpoint.of("weather.consume_to_s3") == ["START", "FAIL", "START", "COMPLETE"]
    assert endpoint.of("weather.quality_check") == ["START", "FAIL", "START", "FAIL"]
    load = [e for e in received if e["job"]["name"] == "weather.load_gold"][-1]
    assert {d["name"] for d in load["outputs"]} == {
        "gold_weather_detailed", "gold_weather_daily_aggregates",
        "gold_weather_hourly_aggregates"}
    assert {Path(d["name"]).name for d in load["inputs"]} == {
        "weather_cleaned", "weather_daily_agg", "weather_hourly_agg"}
    client_tags = {t["key"] for t in received[0]["run"]["facets"]["tags"]["tags"]}
    assert {"lakestream.run_id", "openlineage_client_version"} <= client_tags


@pytest.mark.parametrize("transport", [
    {"OPENLINEAGE__TRANSPORT__TYPE": "http", "OPENLINEAGE__TRANSPORT__URL": "http://127.0.0.1:9",
     "OPENLINEAGE__TRANSPORT__RETRY": '{"total": 0, "connect": 0, "read": 0}',
     "OPENLINEAGE__TRANSPORT__TIMEOUT": "2"},
    {"OPENLINEAGE__TRANSPORT__TYPE": "http"},  # no url: openlineage-python refuses it
], ids=["unreachable endpoint", "refused configuration"])
def test_a_transport_that_fails_warns_once_and_the_run_goes_on(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        transport: dict[str, str]) -> None:
    for key, value in transport.items():
        monkeypatch.setenv(key, value)
    lineage = project_lineage(settings, read_checks=lambda _run_id: CHECKS)
    with caplog.at_level(logging.WARNING, logger="lakestream.lineage"):
        report = run_dag(settings, weather_dag(), lineage)
    assert report.status == "success"
    assert [t.status for t in report.tasks] == ["success"] * 6
    warnings = [r for r in caplog.records if r.name.startswith("lakestream.lineage")]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert f"lineage of weather run {report.run_id} (the run goes on): its events are not " \
        "sent: " in warnings[0].getMessage()
    assert not lineage.events_file.exists()


def test_openlineage_disabled_emits_nothing(settings: Settings,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9")  # would fail if it were used
    lineage = project_lineage(settings)
    assert lineage.destination().kind == "disabled"
    report = run_dag(settings, weather_dag(), lineage)
    assert report.status == "success"
    assert not lineage.events_file.exists()


def test_a_runner_given_no_lineage_emits_nothing(settings: Settings) -> None:
    engine = make_engine(sa.make_url(f"sqlite:///{Path(settings.data_dir) / 'runs.db'}"))
    try:
        report = DagRunner(weather_dag(), ThreadExecutor(), SafeRunLog(RunLog(engine)),
                           Notifier(None)).run()
    finally:
        engine.dispose()
    assert report.status == "success"
    assert not (Path(settings.data_dir) / "lineage").exists()


def test_the_orchestrator_names_topics_on_the_configured_kafka(settings: Settings) -> None:
    lineage = project_lineage(settings, read_checks=lambda _run_id: [])
    engine = make_engine(sa.make_url(f"sqlite:///{Path(settings.data_dir) / 'wh.db'}"))
    try:
        # no facade: the weather DAG's tasks need none. Orchestrator handles api=None but
        # annotates api as TaskApi (reported)
        orchestrator = Orchestrator(settings, lambda: engine, None,  # type: ignore[arg-type]
                                    {"weather": weather_dag()}, lineage)
        report = orchestrator.run("weather", in_process=True)
    finally:
        engine.dispose()
    assert report.status == "success"
    events = events_in(lineage.events_file)
    assert len(events) == 2 + 2 * 7  # the run, six tasks, consume_to_s3 twice
    ingest = [e for e in events if e["job"]["name"] == "weather.ingest_data"][-1]
    assert ingest["outputs"][0]["namespace"] == "kafka://127.0.0.1:9092"
    tags = {t["key"]: t["value"] for t in events[0]["run"]["facets"]["tags"]["tags"]}
    assert tags["lakestream.run_id"] == report.run_id


def test_the_job_namespace_comes_from_openlineage_namespace(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "analytics-prod")
    lineage = project_lineage(settings, read_checks=lambda _run_id: [])
    run_dag(settings, weather_dag(), lineage)
    events = events_in(lineage.events_file)
    assert {e["job"]["namespace"] for e in events} == {"analytics-prod"}
    task = next(e for e in events if e["job"]["name"] == "weather.load_gold")
    assert task["run"]["facets"]["parent"]["job"]["namespace"] == "analytics-prod"


def test_an_event_that_cannot_be_built_warns_once_and_the_run_goes_on(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # wrong types on purpose (observed "n/a", blocking ""): a check the event cannot be built from
    odd = Check("freshness", "silver/weather_cleaned", "pass", "n/a", "", "")  # type: ignore[arg-type]
    lineage = project_lineage(settings, read_checks=lambda _run_id: [odd])
    with caplog.at_level(logging.WARNING, logger="lakestream.lineage"):
        report = run_dag(settings, weather_dag(), lineage)
    assert report.status == "success"
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("lakestream.lineage")]
    assert len(warnings) == 1, warnings
    assert f"lineage of weather run {report.run_id} (the run goes on): the " \
        "weather.quality_check end event cannot be built and is left out" in warnings[0]
    jobs = by_job(events_in(lineage.events_file))
    assert [e["eventType"] for e in jobs["weather.quality_check"]] == ["START"]
    for job in ("weather", "weather.load_gold", "weather.notify_success"):  # the others go on
        assert [e["eventType"] for e in jobs[job]] == ["START", "COMPLETE"]
