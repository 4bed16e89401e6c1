"""Bronze → silver: every rule of SPEC §4 row by row, aggregates, incremental and atomic runs.

Every dataset is a Delta table: rows are read through its log, as any Delta reader does.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest
from deltalake import DeltaTable

from lakestream.config import S3Settings
from lakestream.feeds import FeedRegistry
from lakestream.kafka import client
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.producer import produce
from lakestream.lake.delta import storage_options
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import Storage, open_storage
from lakestream.medallion.engines import DuckDBEngine
from lakestream.medallion.silver import (
    CLEANED,
    DAILY,
    DATASETS,
    HOURLY,
    REJECTED,
    SilverBuilder,
)
from lakestream.pipelines.weather import WeatherService
from tests.conftest import s3_env
from tests.support.seaweedfs import SeaweedFS

from .bronze import BronzeWriter, record
from .conftest import make_settings
from .expected import RULE_EXPECTED, T0, aggregates, heat_index, rule_cases

KEYS = {CLEANED: ("city", "timestamp"), DAILY: ("city", "date"),
        HOURLY: ("city", "date", "hour")}


def table(storage: Storage, dataset: str, version: int | None = None) -> DeltaTable:
    """A lake dataset's Delta table (at ``version``: as a reader of that version saw it)."""
    return DeltaTable(storage.url(dataset), version=version,
                      storage_options=storage_options(storage))


def rows_of(storage: Storage, dataset: str, *order: str,
            version: int | None = None) -> list[dict[str, Any]]:
    """Every row of a dataset as a Delta reader sees it (the log's live files), in ``order``.

    The partition columns come from the log: zero-padded strings (``"2025"``, ``"03"``).
    """
    rows = table(storage, dataset, version).to_pyarrow_dataset().to_table().to_pylist()
    return sorted(rows, key=lambda r: tuple(r[k] for k in order))


def month_files(storage: Storage, month: str) -> dict[str, Any]:
    """The live files of one ``month=MM`` partition of the three silver datasets."""
    return {f.path: f for ds in DATASETS for f in live_files(storage, ds)
            if f"/month={month}/" in f.path}


def silver(storage: Storage) -> Any:
    engine = DuckDBEngine(storage)
    try:
        return SilverBuilder(storage, engine).run()
    finally:
        engine.close()


@pytest.mark.integration
def test_kafka_to_s3_bronze_to_silver_applies_every_rule(
    tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str
) -> None:
    env = s3_env(seaweedfs)
    settings = make_settings(
        tmp_path, lake=f"s3://{s3_bucket}/lake",
        s3={"endpoint": env["LAKESTREAM_S3_ENDPOINT"],
            "access_key": env["LAKESTREAM_S3_ACCESS_KEY"],
            "secret_key": env["LAKESTREAM_S3_SECRET_KEY"]},
        kafka={"session_timeout_ms": 2000, "partitions": 1})
    storage = open_storage(settings.lake.root, settings.s3)
    service = WeatherService(settings, storage, FeedRegistry(tmp_path / "feeds"))
    with EmbeddedBroker(tmp_path / "broker") as broker:
        bootstrap = broker.bootstrap_servers
        client.ensure_topics(bootstrap, ["weather-data"], 1)
        cases = rule_cases()
        produce(client.producer_config(settings, bootstrap), "weather-data",
                [(str(c.get("city")).encode(), orjson.dumps(c)) for c in cases])
        first = service.ingest(bootstrap, idle_timeout_s=1.5)
        replay = settings.model_copy(update={"kafka": settings.kafka.model_copy(
            update={"group_id": "another-group"})})
        again = WeatherService(replay, storage, service.feeds).ingest(bootstrap, 1.5)
    assert first.written == len(cases) and again.written == 0  # replay lands nothing twice

    bronze = rows_of(storage, "bronze/weather", "_kafka_offset")
    assert [r["_kafka_offset"] for r in bronze] == list(range(len(cases)))
    assert {r["_kafka_topic"] for r in bronze} == {"weather-data"}
    assert {r["_kafka_partition"] for r in bronze} == {0}
    assert all(r["_kafka_timestamp"] is not None for r in bronze)
    assert sorted(f.path.split("/")[2] for f in live_files(storage, "bronze/weather")) == [
        "year=2025", "year=2025"]

    report = service.silver("duckdb", warn_only=True)  # the cases fail completeness: 13 of 15
    assert (report.rows_in, report.dropped_missing, report.dropped_out_of_range) == (15, 4, 2)
    rejected = rows_of(storage, REJECTED, "_kafka_offset")
    assert len(rejected) == report.rejected_rows == 6
    assert sorted(r["reason"] for r in rejected) == sorted(
        reason for reason, n in report.rejected.items() for _ in range(n))
    assert report.duplicates == 1 and report.partitions == ["2025-03", "2025-04"]
    rows = rows_of(storage, CLEANED, "city", "timestamp")
    assert [(r["city"], r["timestamp"]) for r in rows] == sorted(RULE_EXPECTED)
    for r in rows:
        temperature, humidity, score = RULE_EXPECTED[(r["city"], r["timestamp"])]
        assert (r["temperature"], r["humidity"], r["quality_score"]) == (temperature, humidity,
                                                                         score), r
        ts = r["timestamp"]
        assert (r["year"], r["month"], r["day"], r["hour"]) == (
            f"{ts.year:04d}", f"{ts.month:02d}", ts.day, ts.hour)
        assert r["heat_index"] == pytest.approx(heat_index(temperature, humidity), abs=1e-9)
    paris = next(r for r in rows if r["city"] == "Paris" and r["timestamp"] == T0)
    assert paris["fetched_at"] == T0 + dt.timedelta(minutes=5)  # the latest fetch won
    sydney = next(r for r in rows if r["city"] == "Sydney")
    assert sydney["wind_speed"] is None and sydney["weather_description"] is None
    dubai = next(r for r in rows if r["city"] == "Dubai")
    assert dubai["heat_index"] > 60  # very hot and humid feels far hotter


def _history(hours: int, cities: tuple[str, ...], start: dt.datetime) -> list[dict[str, Any]]:
    from lakestream.sources.weather_sim import SimulatedWeather

    sim = SimulatedWeather(seed=5, missing_rate=0.1, bad_rate=0.02)
    out = []
    for h in range(hours):
        at = start + dt.timedelta(hours=h)
        out += [{**sim.current(c, at), "city": c,
                 "fetched_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z")} for c in cities]
    return out


def test_aggregates_match_an_independent_computation(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    records = _history(60, ("Paris", "Tokyo", "Sydney"), dt.datetime(2025, 5, 30, tzinfo=dt.UTC))
    records += [record("Paris", dt.datetime(2025, 5, 30, 5, tzinfo=dt.UTC), temp=7.77)]
    BronzeWriter(storage).write(records)
    silver(storage)
    cleaned = rows_of(storage, CLEANED, "city", "timestamp")
    assert len(cleaned) > 150
    assert_aggregates(storage, cleaned)


def assert_aggregates(storage: Storage, cleaned: list[dict[str, Any]]) -> None:
    """The daily and hourly datasets hold the independent computation's aggregates of
    ``cleaned``."""
    for dataset, hourly in ((DAILY, False), (HOURLY, True)):
        expected = aggregates(cleaned, hourly)
        got = rows_of(storage, dataset, *KEYS[dataset])
        assert len(got) == len(expected), dataset
        for row in got:
            key = (row["city"], row["date"], row["hour"]) if hourly else (row["city"],
                                                                          row["date"])
            for column, value in expected[key].items():
                want = value if value is None else pytest.approx(value, rel=1e-12, abs=1e-9)
                assert row[column] == want, (key, column)


def test_silver_is_incremental_and_equal_to_a_full_recomputation(tmp_path: Path) -> None:
    lake = open_storage(str(tmp_path / "lake"), S3Settings())
    writer = BronzeWriter(lake)
    jan_feb = _history(72, ("Paris", "London"), dt.datetime(2025, 1, 30, tzinfo=dt.UTC))
    writer.write(jan_feb)
    assert silver(lake).partitions == ["2025-01", "2025-02"]
    january = month_files(lake, "01")
    assert len(january) == 3  # one file per dataset

    # later data: a re-fetch of a February observation and new February hours only
    refetch = {**jan_feb[-1], "main": {**jan_feb[-1]["main"], "temp": 5.55},
               "fetched_at": "2025-02-02T23:59:00.000Z"}
    february = _history(5, ("Paris",), dt.datetime(2025, 2, 3, tzinfo=dt.UTC))
    writer.write([refetch, *february])
    report = silver(lake)
    assert report.partitions == ["2025-02"] and report.duplicates == 1
    assert month_files(lake, "01") == january  # January untouched
    assert silver(lake).bronze_files == 0  # nothing new: nothing done

    full = open_storage(str(tmp_path / "full"), S3Settings())
    BronzeWriter(full).write([*jan_feb, refetch, *february])
    silver(full)
    for dataset in DATASETS:
        assert rows_of(lake, dataset, *KEYS[dataset]) == rows_of(full, dataset,
                                                                 *KEYS[dataset]), dataset
    assert any(r["temperature"] == 5.55 for r in rows_of(lake, CLEANED, "city", "timestamp"))


def test_a_month_is_replaced_in_one_commit_and_staging_is_cleaned(tmp_path: Path) -> None:
    lake = open_storage(str(tmp_path / "lake"), S3Settings())
    writer = BronzeWriter(lake)
    writer.write(_history(30, ("Paris",), dt.datetime(2025, 6, 1, tzinfo=dt.UTC)))
    lake.write_atomic("_staging/silver/crashed-run/weather_cleaned/x.parquet", b"half")
    silver(lake)
    assert lake.list_files("_staging/silver") == []
    before = {}
    for ds in DATASETS:
        paths = [f.path for f in live_files(lake, ds)]
        assert len(paths) == 1 and paths[0].startswith(f"{ds}/year=2025/month=06/"), paths
        before[ds] = (table(lake, ds).version(), set(paths), rows_of(lake, ds, *KEYS[ds]))

    # a run that died after moving a data file into the table, before committing it:
    # the log does not hold it, so no reader sees its rows (twice)
    crashed = f"{CLEANED}/year=2025/month=06/part-crashed-run.parquet"
    lake.write_atomic(crashed, lake.read(next(iter(before[CLEANED][1]))))
    assert rows_of(lake, CLEANED, *KEYS[CLEANED]) == before[CLEANED][2]

    writer.write(_history(10, ("Paris",), dt.datetime(2025, 6, 2, tzinfo=dt.UTC)))
    assert silver(lake).partitions == ["2025-06"]
    for ds in DATASETS:
        version, files, rows = before[ds]
        assert table(lake, ds).version() == version + 1, ds  # the month in one commit
        now = {f.path for f in live_files(lake, ds)}
        assert len(now) == 1 and not now & files, ds  # replaced whole
        # a reader of the version before sees the old month, whole
        assert rows_of(lake, ds, *KEYS[ds], version=version) == rows, ds
        after = rows_of(lake, ds, *KEYS[ds])
        keys = [tuple(r[k] for k in KEYS[ds]) for r in after]
        assert len(set(keys)) == len(keys) and after != rows, ds  # the new month
        assert {tuple(r[k] for k in KEYS[ds]) for r in rows} <= set(keys), ds
    assert crashed not in {f.path for f in live_files(lake, CLEANED)}
    assert lake.list_files("_staging/silver") == []
