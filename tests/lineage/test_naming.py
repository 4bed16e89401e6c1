"""Dataset names by OpenLineage's conventions; stored quality results; the JSON-lines file."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.config import S3Settings, Settings
from lakestream.lake.storage import open_storage
from lakestream.lineage.naming import DatasetId, kafka_topic, lake_path, lake_table, sql_table
from lakestream.lineage.quality import stored_checks
from lakestream.lineage.transport import JsonLinesTransport
from lakestream.medallion.gold import GoldStore
from lakestream.medallion.gold_schema import data_quality_results

from .conftest import check_event, events_in, project_settings


@pytest.mark.parametrize(("bootstrap", "namespace"), [
    ("127.0.0.1:9092", "kafka://127.0.0.1:9092"),
    ("broker1:19092,broker2:19092", "kafka://broker1:19092"),
    ("kafka.internal", "kafka://kafka.internal:9092"),
    ("SASL_SSL://broker.example.com:9093", "kafka://broker.example.com:9093"),
])
def test_a_topic_is_named_on_its_first_bootstrap_server(bootstrap: str, namespace: str) -> None:
    assert kafka_topic(bootstrap, "weather-data") == DatasetId(namespace, "weather-data")


@pytest.mark.parametrize(("url", "schema", "expected"), [
    ("postgresql+psycopg://u:secret@db.example.com/weather_dw", None,
     DatasetId("postgres://db.example.com:5432", "weather_dw.public.gold_weather_detailed")),
    ("postgresql://u@db:6543/weather_dw", "gold",
     DatasetId("postgres://db:6543", "weather_dw.gold.gold_weather_detailed")),
    ("mysql+pymysql://u:p@mysql.example.com/lakestream", None,
     DatasetId("mysql://mysql.example.com:3306", "lakestream.gold_weather_detailed")),
    ("mariadb://u@maria:3307/lakestream", None,
     DatasetId("mysql://maria:3307", "lakestream.gold_weather_detailed")),
    ("sqlite:////srv/data/gold.db", None,
     DatasetId("sqlite:///srv/data/gold.db", "gold_weather_detailed")),
])
def test_a_database_table_is_named_by_its_server_database_and_schema(
        url: str, schema: str | None, expected: DatasetId) -> None:
    found = sql_table(sa.make_url(url), "gold_weather_detailed", schema)
    assert found == expected
    assert "secret" not in found.key


def test_a_relative_sqlite_file_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    found = sql_table(sa.make_url("sqlite:///data/gold.db"), "gold_weather_detailed")
    assert found.namespace == f"sqlite://{tmp_path / 'data' / 'gold.db'}"  # cwd is tmp_path


def test_a_lake_table_is_a_file_path_or_an_s3_key_and_maps_back(tmp_path: Path) -> None:
    local = open_storage(str(tmp_path / "lake"), S3Settings())
    bronze = lake_table(local, "bronze/weather")
    assert bronze == DatasetId("file", str(tmp_path / "lake" / "bronze" / "weather"))
    assert lake_path(local, bronze) == "bronze/weather"
    assert lake_path(local, DatasetId("file", "/elsewhere/bronze/weather")) is None

    s3 = open_storage("s3://analytics/lake", S3Settings(endpoint="http://127.0.0.1:1"))
    silver = lake_table(s3, "silver/weather_cleaned")
    assert silver == DatasetId("s3://analytics", "lake/silver/weather_cleaned")
    assert lake_path(s3, silver) == "silver/weather_cleaned"
    assert lake_path(s3, DatasetId("s3://other", "lake/silver/weather_cleaned")) is None
    whole_bucket = open_storage("s3://analytics", S3Settings(endpoint="http://127.0.0.1:1"))
    assert lake_table(whole_bucket, "bronze/weather") == DatasetId("s3://analytics",
                                                                   "bronze/weather")


def test_stored_quality_results_are_read_back_by_run_the_last_of_each_check(
        tmp_path: Path) -> None:
    settings: Settings = project_settings(tmp_path / "project")
    assert stored_checks(settings, "run-1") == []  # no gold store yet: nothing, no error
    store = GoldStore(settings)
    row = {"pipeline": "weather", "dataset": "silver/weather_cleaned", "observed": 99.0,
           "threshold": "= 100 %", "checked_at": dt.datetime(2026, 1, 1, 12)}
    store.insert(data_quality_results, [
        {**row, "run_id": "run-1", "check_name": "validity.temperature", "status": "fail",
         "detail": "the silver audit"},
        {**row, "run_id": "run-2", "check_name": "validity.temperature", "status": "fail",
         "detail": "another run"},
        {**row, "run_id": "run-1", "check_name": "validity.temperature", "status": "pass",
         "detail": "the lake check, later", "observed": 100.0},
        {**row, "run_id": "run-1", "check_name": "uniqueness", "status": "warn", "detail": "d"},
    ])
    store.close()
    found = stored_checks(settings, "run-1")
    assert [(c.name, c.status, c.detail) for c in found] == [
        ("validity.temperature", "pass", "the lake check, later"), ("uniqueness", "warn", "d")]
    assert found[0].observed == 100.0 and found[0].blocking is None


def test_concurrent_writers_never_mix_their_lines(tmp_path: Path) -> None:
    from lakestream.lineage.runs import RunLineage
    from lakestream.lineage.transport import EventSink

    path = tmp_path / "lineage" / "events.jsonl"
    long_error = "x" * 20_000  # one event far larger than a pipe or buffer page

    def writer(n: int) -> None:
        sink = EventSink(tmp_path, f"writer {n}")  # data_dir: the JSON-lines file is `path`
        assert sink.client is not None
        assert isinstance(sink.client.transport, JsonLinesTransport)
        run = RunLineage("weather", f"run-{n}", sink, None)
        for _ in range(15):
            run.ended("failed", long_error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = events_in(path)  # every line parses
    assert len(events) == 6 * 15
    assert all(e["run"]["facets"]["errorMessage"]["message"] == long_error for e in events)
    check_event(events[0])


def test_the_schema_check_rejects_what_the_spec_rejects() -> None:
    event = events_in(Path(__file__).parent / "data" / "weather_run.jsonl")[4]
    check_event(event)
    for broken in (
        {**event, "eventType": "DONE"},
        {**event, "run": {**event["run"], "runId": "weather-20260101"}},
        {**event, "producer": None},
        {**event, "outputs": [{**event["outputs"][0], "outputFacets": {"outputStatistics": {
            **event["outputs"][0]["outputFacets"]["outputStatistics"], "rowCount": "six"}}}]},
        {**event, "job": {**event["job"], "facets": {"jobType": {
            k: v for k, v in event["job"]["facets"]["jobType"].items() if k != "integration"}}}},
    ):
        with pytest.raises((AssertionError, ValueError)):
            check_event(json.loads(json.dumps(broken)))
