"""The weather medallion on Delta tables: bronze from the Delta sink, silver month rebuilds as
single commits, quality and gold reading the snapshots, and a lake from before Delta refused
until ``lakestream lake upgrade`` converted it (issue #16)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable

from lakestream.cli import main
from lakestream.config import S3Settings
from lakestream.feeds import BUILTIN_FEEDS, FeedRegistry
from lakestream.lake.delta import is_delta_table, storage_options
from lakestream.lake.storage import Storage, open_storage
from lakestream.lake.upgrade import upgrade_lake
from lakestream.medallion.gold_schema import gold_weather_detailed
from lakestream.medallion.silver import (
    BRONZE,
    CLEANED,
    DATASETS,
    HOURLY,
    LegacyDatasetError,
)
from lakestream.pipelines.weather import WeatherService
from lakestream.quality import check_pipeline
from tests.conftest import s3_env
from tests.support.seaweedfs import SeaweedFS

from .bronze import BronzeWriter, record
from .conftest import make_settings
from .expected import RULE_EXPECTED, T0, rule_cases
from .test_silver import KEYS, _history, assert_aggregates, rows_of, silver, table

LEGACY_LAKE = Path(__file__).parents[1] / "fixtures" / "legacy_lake"


def delta_rows(storage: Storage, dataset: str, version: int | None = None) -> list[dict[str, Any]]:
    """A Delta dataset's rows as a Delta reader sees them, in key order."""
    return rows_of(storage, dataset, *KEYS.get(dataset, ("_kafka_offset",)), version=version)


def files_by_month(storage: Storage, dataset: str) -> dict[str, set[str]]:
    actions = pa.table(table(storage, dataset).get_add_actions(flatten=True)).to_pylist()
    months: dict[str, set[str]] = {}
    for a in actions:
        months.setdefault(f"{a['partition.year']}-{a['partition.month']}", set()).add(a["path"])
    return months


def test_silver_datasets_are_plain_delta_tables_holding_every_rule(tmp_path: Path) -> None:
    lake = open_storage(str(tmp_path / "lake"), S3Settings())
    BronzeWriter(lake).write(rule_cases())
    report = silver(lake)
    assert report.partitions == ["2025-03", "2025-04"]
    assert (report.rows_in, report.dropped_missing, report.dropped_out_of_range) == (15, 4, 2)
    assert report.duplicates == 1 and report.rows_out == len(RULE_EXPECTED)

    assert is_delta_table(lake, BRONZE)
    for dataset in DATASETS:
        assert is_delta_table(lake, dataset), dataset
        t = table(lake, dataset)
        protocol = t.protocol()
        assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
        assert not protocol.reader_features and not protocol.writer_features
        assert t.metadata().partition_columns == ["year", "month"]
        assert t.version() == 1  # created empty, then the months in one commit
        assert table(lake, dataset, 0).to_pyarrow_dataset().count_rows() == 0
        assert sorted(files_by_month(lake, dataset)) == ["2025-03", "2025-04"]
        got = delta_rows(lake, dataset)
        assert {(r["year"], r["month"]) for r in got} == {("2025", "03"), ("2025", "04")}
    cleaned = delta_rows(lake, CLEANED)
    assert [(r["city"], r["timestamp"]) for r in cleaned] == sorted(RULE_EXPECTED)
    for r in cleaned:
        assert (r["temperature"], r["humidity"], r["quality_score"]) == RULE_EXPECTED[
            (r["city"], r["timestamp"])], r
    assert_aggregates(lake, cleaned)


def test_a_month_rebuild_is_one_commit_replacing_exactly_that_month(tmp_path: Path) -> None:
    lake = open_storage(str(tmp_path / "lake"), S3Settings())
    writer = BronzeWriter(lake)
    jan_feb = _history(72, ("Paris", "London"), dt.datetime(2025, 1, 30, tzinfo=dt.UTC))
    writer.write(jan_feb)
    silver(lake)
    before = {ds: (table(lake, ds).version(), files_by_month(lake, ds), delta_rows(lake, ds))
              for ds in DATASETS}

    refetch = {**jan_feb[-1], "main": {**jan_feb[-1]["main"], "temp": 5.55},
               "fetched_at": "2025-02-02T23:59:00.000Z"}
    writer.write([refetch, *_history(5, ("Paris",), dt.datetime(2025, 2, 3, tzinfo=dt.UTC))])
    report = silver(lake)
    assert report.partitions == ["2025-02"] and report.duplicates == 1
    for ds in DATASETS:
        version, files, rows = before[ds]
        t = table(lake, ds)
        assert t.version() == version + 1, ds  # the rebuild is one commit
        now = files_by_month(lake, ds)
        assert now["2025-01"] == files["2025-01"], ds  # January untouched
        assert not now["2025-02"] & files["2025-02"], ds  # February replaced whole
        # a reader sees the month before or after the commit, never a mix
        assert delta_rows(lake, ds, version) == rows
        after = delta_rows(lake, ds)
        assert [r for r in after if r["month"] == "01"] == [r for r in rows if r["month"] == "01"]
        assert len(after) >= len(rows)
    cleaned = delta_rows(lake, CLEANED)
    assert len({(r["city"], r["timestamp"]) for r in cleaned}) == len(cleaned)
    assert [r["temperature"] for r in cleaned if r["city"] == jan_feb[-1]["city"]
            and r["timestamp"] == dt.datetime(2025, 2, 1, 23, tzinfo=dt.UTC)] == [5.55]

    # nothing new: no commit; the state lost (a run killed before saving it): same rows
    versions = {ds: table(lake, ds).version() for ds in DATASETS}
    assert silver(lake).bronze_files == 0
    assert {ds: table(lake, ds).version() for ds in DATASETS} == versions
    rows_by_dataset = {ds: delta_rows(lake, ds) for ds in DATASETS}
    lake.delete("silver/_state/weather.json")
    again = silver(lake)
    assert again.bronze_files == len(table(lake, BRONZE).file_uris())
    assert again.partitions == ["2025-01", "2025-02"]
    assert {ds: delta_rows(lake, ds) for ds in DATASETS} == rows_by_dataset


def test_quality_and_gold_read_the_snapshot_not_the_folders(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = open_storage(settings.lake.root, settings.s3)
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    history = _history(6, ("Paris", "Tokyo"), now - dt.timedelta(hours=5))
    writer = BronzeWriter(storage)
    writer.write(history)
    silver(storage)
    refetch = {**history[-1], "main": {**history[-1]["main"], "temp": 1.5},
               "fetched_at": (now + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    writer.write([refetch])
    silver(storage)
    # the rebuild's replaced files are still on disk (until vacuum): a folder reader
    # would count every key twice
    on_disk = [f for f in storage.list_files(CLEANED) if f.path.endswith(".parquet")]
    assert len(on_disk) > len(table(storage, CLEANED).file_uris())

    report = check_pipeline("weather", storage, now=now)
    results = {r.name: r for r in report.results}
    assert results["uniqueness"].status == "pass", results["uniqueness"].detail
    assert results["completeness.city"].detail.startswith("13 of 13 records")
    assert results["freshness"].status == "pass" and report.ok, report.failed

    service = WeatherService(settings, storage, FeedRegistry(tmp_path / "feeds"))
    store = service.gold_store
    try:
        loaded = service.gold()
        cleaned = delta_rows(storage, CLEANED)
        assert loaded.rows_in["gold_weather_detailed"] == len(cleaned)
        detailed = store.select(gold_weather_detailed, "city", "timestamp")
        assert [(r["city"], r["temperature"]) for r in detailed] == [
            (r["city"], r["temperature"]) for r in cleaned]
        assert 1.5 in [r["temperature"] for r in detailed]
        assert service.gold().rows_in == loaded.rows_in  # a second load changes nothing
        assert store.select(gold_weather_detailed, "city", "timestamp") == detailed
    finally:
        store.close()


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_lake_from_before_delta_is_refused_until_upgraded(tmp_path: Path, capsys: Any) -> None:
    root = tmp_path / "lake"
    shutil.copytree(LEGACY_LAKE, root, ignore=shutil.ignore_patterns("README.md"))
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(
        {"data_dir": str(tmp_path / "data"), "lake": {"root": str(root)}}))
    lake = open_storage(str(root), S3Settings())
    legacy = sorted(pq.read_table(root / f"{CLEANED}/year=2026/month=12/data.parquet")
                    .to_pylist(), key=lambda r: (r["city"], r["timestamp"]))
    files = tree(root)
    for step in (lambda: silver(lake), lambda: check_pipeline("weather", lake)):
        with pytest.raises(LegacyDatasetError) as refused:
            step()
        assert "bronze/weather is not a Delta table" in str(refused.value)
        assert "`lakestream lake upgrade`" in str(refused.value)
    args = ["--config", str(tmp_path / "lakestream.yaml")]
    for command in (["medallion", "silver"], ["medallion", "gold"]):
        assert main([*args, *command]) == 1, command
        err = capsys.readouterr().err
        assert "is not a Delta table" in err and "lakestream lake upgrade" in err, command
        assert "Traceback" not in err
    assert tree(root) == files  # refused before writing anything

    upgrade_lake(lake, BUILTIN_FEEDS)
    lake = open_storage(str(root), S3Settings())
    assert silver(lake).bronze_files == 0  # the upgrade kept bronze's files: nothing new
    cleaned = delta_rows(lake, CLEANED)
    assert {(r.pop("year"), r.pop("month")) for r in cleaned} == {("2026", "12")}
    assert cleaned == legacy  # the legacy file holds no partition column (hive folders)
    writer = BronzeWriter(lake)
    assert writer.next == 6  # the ingest goes on after the legacy offsets
    writer.write([record("Lima", dt.datetime(2026, 12, 4, 9, tzinfo=dt.UTC))])
    versions = {ds: table(lake, ds).version() for ds in DATASETS}
    report = silver(lake)
    assert report.bronze_files == 1 and report.partitions == ["2026-12"]
    assert {ds: table(lake, ds).version() for ds in DATASETS} == {
        ds: v + 1 for ds, v in versions.items()}
    assert len(delta_rows(lake, CLEANED)) == len(legacy) + 1


def test_a_silver_dataset_from_before_delta_is_refused(tmp_path: Path) -> None:
    lake = open_storage(str(tmp_path / "lake"), S3Settings())
    BronzeWriter(lake).write(_history(3, ("Paris",), dt.datetime(2025, 7, 1, tzinfo=dt.UTC)))
    legacy = f"{HOURLY}/year=2026/month=12/data.parquet"
    lake.write_atomic(legacy, (LEGACY_LAKE / legacy).read_bytes())
    with pytest.raises(LegacyDatasetError, match="weather_hourly_agg is not a Delta table"):
        silver(lake)
    assert [is_delta_table(lake, ds) for ds in DATASETS] == [False] * 3  # nothing written
    assert lake.list_files(CLEANED) == [] and lake.list_files("silver/_state") == []
    lake.delete(legacy)
    assert silver(lake).rows_out > 0  # a dataset not created yet is no legacy one
    assert [is_delta_table(lake, ds) for ds in DATASETS] == [True] * 3


@pytest.mark.integration
def test_delta_medallion_on_s3(tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    env = s3_env(seaweedfs)
    settings = make_settings(tmp_path, lake=f"s3://{s3_bucket}/lake",
                             s3={"endpoint": env["LAKESTREAM_S3_ENDPOINT"],
                                 "access_key": env["LAKESTREAM_S3_ACCESS_KEY"],
                                 "secret_key": env["LAKESTREAM_S3_SECRET_KEY"]})
    storage = open_storage(settings.lake.root, settings.s3)
    writer = BronzeWriter(storage)
    writer.write(rule_cases())
    first = silver(storage)
    assert first.rows_out == len(RULE_EXPECTED) and first.partitions == ["2025-03", "2025-04"]
    writer.write([record("Paris", T0, temp=14.0, fetched=T0 + dt.timedelta(minutes=9))])
    assert silver(storage).partitions == ["2025-03"]

    def s3_table(dataset: str) -> DeltaTable:
        return DeltaTable(storage.url(dataset), storage_options=storage_options(storage))

    for dataset in DATASETS:
        assert s3_table(dataset).version() == 2, dataset  # created, first run, one rebuild
    rows = s3_table(CLEANED).to_pyarrow_dataset().to_table().to_pylist()
    assert sorted((r["city"], r["timestamp"]) for r in rows) == sorted(RULE_EXPECTED)
    assert [r["temperature"] for r in rows if (r["city"], r["timestamp"]) == ("Paris", T0)] == \
        [14.0]
    results = {r.name: r for r in check_pipeline("weather", storage).results}
    assert results["uniqueness"].status == "pass"
    assert results["completeness.city"].detail.startswith("14 of 16 records")
