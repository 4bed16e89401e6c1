"""Retention: the dry run lists exactly what the real run removes, and the metadata stays right.

Every dataset is a Delta table: what a run removes leaves the snapshot (the
log) at once; its files leave storage after the grace period
(``tests/governance/test_delta_retention.py``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lakestream.api import Lakestream
from lakestream.governance.retention import RetentionPlanner
from lakestream.governance.sqlguard import AccessDeniedError
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.lake.delta import is_delta_table
from lakestream.lake.metadata import read_metadata
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import Storage
from tests.conftest import s3_env
from tests.support.seaweedfs import SeaweedFS

from .conftest import api_for, run, write_project
from .lakebuild import EPOCH, build_silver, build_stream, build_table


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def listing(storage: Storage) -> set[str]:
    return {f.path for f in storage.list_files("")}


def live(storage: Storage) -> set[str]:
    """The data files of every dataset's snapshot (read through the Delta logs)."""
    return {f.path for area in storage.list_dirs("") for name in storage.list_dirs(area)
            if is_delta_table(storage, f"{area}/{name}")
            for f in live_files(storage, f"{area}/{name}")}


def retention_json(project: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert run(project, "retention", *args, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def dry_and_real(project: Path, storage: Storage,
                 capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], set[str]]:
    """Run a dry run then a real run; check they agree; return the plan and the files that left
    the snapshots."""
    before, files = live(storage), listing(storage)
    dry = retention_json(project, capsys, "--dry-run")
    assert listing(storage) == files and live(storage) == before, "a dry run changed the lake"
    real = retention_json(project, capsys)
    assert dry["dry_run"] is True and real["dry_run"] is False
    assert real["deletions"] == dry["deletions"]
    gone = before - live(storage)
    planned = {path for d in dry["deletions"] for path in d["files"]}
    assert {storage.url(p) for p in gone} == planned
    assert {f for o in real["deleted"] for f in o["removed_files"]} == planned
    return dry, gone


def month_end(partition: str) -> dt.date:
    year, month = (int(p.split("=")[1]) for p in partition.split("/"))
    return dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)


def deleted(plan: dict[str, Any], layer: str, view: str) -> list[dict[str, Any]]:
    return [d for d in plan["deletions"] if d["layer"] == layer and d["view"] == view]


def test_local_retention_deletes_exactly_the_plan_and_keeps_metadata_right(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = api_for(project)
    feeds = {f.name: f for f in api.feeds}
    day = today()
    counts = build_stream(api.storage, feeds["events"], day, days=400, batches=2, partitions=2)
    build_table(api.storage, feeds["totals"], versions=12)
    silver = build_silver(api.storage, day, months=14)

    plan, _ = dry_and_real(project, api.storage, capsys)

    cutoff = day - dt.timedelta(days=90)  # events keeps 90 days (its feed file)
    events = deleted(plan, "streams", "events")
    assert {d["date"] for d in events} == {k for k in counts if k <= cutoff.isoformat()}
    assert len(events) == 310 and sum(d["rows"] for d in events) == 310 * 4
    dlq = deleted(plan, "dlq", "dlq_events")
    assert dlq and all(d["date"] <= cutoff.isoformat() for d in dlq)
    versions = [d["partition"] for d in deleted(plan, "tables", "totals")]
    assert versions == [f"version=v{n}" for n in range(1, 6)]  # 7 kept: v6..v12
    old_months = {p for p in silver if month_end(p) <= cutoff}  # silver keeps 90 days
    assert {d["partition"] for d in deleted(plan, "silver", "silver_weather_cleaned")} == old_months
    assert old_months and old_months != set(silver)

    meta = read_metadata(api.storage, "streams/events")
    assert meta is not None
    kept = {k: v for k, v in counts.items() if k > cutoff.isoformat()}
    assert meta["records"] == sum(kept.values())
    assert {p["date"]: p["records"] for p in meta["partitions"]} == kept
    assert api.query("SELECT count(*) FROM events")[1] == [(sum(kept.values()),)]
    table_meta = read_metadata(api.storage, "tables/totals")
    assert table_meta is not None and table_meta["current_version"] == "v12"
    assert [v["version"] for v in table_meta["versions"]] == [f"v{n}" for n in range(6, 13)]

    audit = api.governance.audit_entries(action="retention_delete")
    assert {e.dataset for e in audit} == {"events", "dlq_events", "totals",
                                          "silver_weather_cleaned"}
    by_view = {e.dataset: e.detail for e in audit}
    assert by_view["events"]["partitions"] == 310 and by_view["events"]["rows"] == 1240
    assert retention_json(project, capsys)["deletions"] == []  # a second run finds nothing


def test_the_metadata_stays_right_when_ingest_goes_on(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = api_for(project)
    feed = {f.name: f for f in api.feeds}["events"]
    day = today()
    counts = build_stream(api.storage, feed, day, days=120, batches=1)
    dry_and_real(project, api.storage, capsys)
    late = day - dt.timedelta(days=100)  # a late event for a day retention already removed
    sink = DeltaLakeSink(api.storage, feed)
    start = sink.recover(feed.topic, 0)
    assert start is not None
    records = [(late, "late"), (day, "new")]
    values = [json.dumps({"id": i, "ts": f"{d}T06:00:00+00:00"}).encode() for d, i in records]
    stamps = [int((dt.datetime.now(dt.UTC) - EPOCH).total_seconds() * 1000)] * 2
    sink.write(feed.topic, 0, values, [None, None], [start, start + 1], stamps)
    sink.publish_metadata()
    meta = read_metadata(api.storage, feed.dataset)
    assert meta is not None
    kept = sum(n for d, n in counts.items() if d > (day - dt.timedelta(days=90)).isoformat())
    assert meta["records"] == kept + 2
    partitions = {p["date"]: p["records"] for p in meta["partitions"]}
    assert partitions[late.isoformat()] == 1 and partitions[day.isoformat()] == counts[
        day.isoformat()] + 1


def test_today_and_the_current_version_are_never_planned(project: Path) -> None:
    api = api_for(project)
    feeds = {f.name: f for f in api.feeds}
    day = today()
    build_stream(api.storage, feeds["events"], day, days=3, batches=1)
    build_table(api.storage, feeds["totals"], versions=3)
    tight = [feeds["events"].model_copy(update={"retention_days": 1}),
             feeds["totals"].model_copy(update={"retention_versions": 1})]
    plan = RetentionPlanner(api.storage, api.settings, tight).plan()
    dates = {d.date for d in plan.deletions if d.layer == "streams"}
    assert dates == {(day - dt.timedelta(days=n)).isoformat() for n in (1, 2)}
    assert [d.partition for d in plan.deletions if d.layer == "tables"] == ["version=v1",
                                                                            "version=v2"]


def test_retention_of_one_feed_and_layer(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api = api_for(project)
    feeds = {f.name: f for f in api.feeds}
    build_stream(api.storage, feeds["events"], today(), days=100, batches=1)
    build_table(api.storage, feeds["totals"], versions=9)
    plan = retention_json(project, capsys, "--dry-run", "--feed", "totals")
    assert {d["layer"] for d in plan["deletions"]} == {"tables"}
    plan = retention_json(project, capsys, "--dry-run", "--layer", "streams")
    assert {d["view"] for d in plan["deletions"]} == {"events"}
    assert run(project, "retention", "--dry-run", "--feed", "nope") == 2


def test_the_table_output_says_what_would_go(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = api_for(project)
    build_table(api.storage, {f.name: f for f in api.feeds}["totals"], versions=9)
    assert run(project, "retention", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "version=v1" in out and "version=v2" in out and "version=v3" not in out
    assert "would delete 2 partition(s)/version(s)" in out


def s3_project(root: Path, seaweedfs: SeaweedFS, bucket: str,
               monkeypatch: pytest.MonkeyPatch) -> Lakestream:
    """A project at ``root`` whose lake is ``s3://bucket/lake`` on SeaweedFS; its facade."""
    write_project(root, lake=f"s3://{bucket}/lake")
    for var, value in s3_env(seaweedfs).items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(root)
    api = api_for(root, **s3_env(seaweedfs))
    assert not api.storage.is_local
    return api


@pytest.mark.integration
@pytest.mark.slow
def test_s3_retention_deletes_exactly_the_plan(
    tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    api = s3_project(tmp_path, seaweedfs, s3_bucket, monkeypatch)
    feeds = {f.name: f for f in api.feeds}
    counts = build_stream(api.storage, feeds["events"], today(), days=400, batches=1,
                          per_day=1)
    build_table(api.storage, feeds["totals"], versions=12)

    plan, _gone = dry_and_real(tmp_path, api.storage, capsys)

    assert len(deleted(plan, "streams", "events")) == 310
    assert len(deleted(plan, "tables", "totals")) == 5
    meta = read_metadata(api.storage, "streams/events")
    assert meta is not None
    cutoff = (today() - dt.timedelta(days=90)).isoformat()
    assert meta["records"] == sum(n for d, n in counts.items() if d > cutoff)
    assert api.query("SELECT count(*) FROM events")[1] == [(meta["records"],)]
    assert not any("version=v5/" in p for p in live(api.storage))
    api.governance.grant("bob", "events", "read", actor="admin")  # locked-down reads on S3
    assert api.query("SELECT count(*) FROM events", principal="bob")[1] == [(meta["records"],)]
    with pytest.raises(AccessDeniedError):
        api.query("SELECT count(*) FROM totals", principal="bob")


@pytest.mark.integration
def test_gold_rows_past_365_days_are_removed_in_postgresql(
    project: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}"
    monkeypatch.setenv("LAKESTREAM_GOLD_URL", url)
    day = today()
    expected = _fill_gold(url, day, days=400)
    plan = retention_json(project, capsys, "--dry-run", "--layer", "gold")
    planned = {d["view"]: d["rows"] for d in plan["deletions"]}
    assert planned == expected
    real = retention_json(project, capsys, "--layer", "gold")
    assert real["deletions"] == plan["deletions"]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            oldest = conn.exec_driver_sql(
                'SELECT min("timestamp") FROM gold_weather_detailed').scalar_one()
            left = conn.exec_driver_sql("SELECT count(*) FROM gold_weather_daily_aggregates"
                                        ).scalar_one()
    finally:
        engine.dispose()
    assert oldest.date() == day - dt.timedelta(days=364)
    assert left == 2 * 365
    audit = api_for(project).governance.audit_entries(action="retention_delete")
    assert {e.dataset: e.detail["rows"] for e in audit} == expected


def _fill_gold(url: str, day: dt.date, days: int) -> dict[str, int]:
    """Gold tables as the weather pipeline names them (made here: columns reduced to the time
    column and a measure); one row per city and day. Returns the rows past 365 days per table."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    detailed = sa.Table("gold_weather_detailed", meta, sa.Column("city", sa.String(64)),
                        sa.Column("timestamp", sa.DateTime()), sa.Column("temperature", sa.Float))
    daily = sa.Table("gold_weather_daily_aggregates", meta, sa.Column("city", sa.String(64)),
                     sa.Column("date", sa.Date()), sa.Column("temperature_avg", sa.Float))
    try:
        meta.create_all(engine)
        whens = [(day - dt.timedelta(days=i), city) for i in range(days)
                 for city in ("Paris", "Tokyo")]
        with engine.begin() as conn:
            conn.execute(detailed.insert(), [
                {"city": c, "timestamp": dt.datetime(w.year, w.month, w.day, 23, 30),
                 "temperature": 10.0} for w, c in whens])
            conn.execute(daily.insert(), [{"city": c, "date": w, "temperature_avg": 10.0}
                                          for w, c in whens])
    finally:
        engine.dispose()
    old = 2 * (days - 365)
    return {"gold_weather_daily_aggregates": old, "gold_weather_detailed": old}
