"""``lakestream export`` from a real Tansu broker: appends, day rebuilds, table versions."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from lakestream.errors import FeedError
from lakestream.export.kafka_scan import KafkaScan
from tests.conftest import s3_env, unique_topic, write_feed
from tests.export.helpers import api_for, bootstrap, day_rows, glob_count, scan_while
from tests.ingest.helpers import generated, send, transaction_ids

pytestmark = pytest.mark.integration

DAY = (2025, 3, 10)  # the generator's "now": most events fall on it, late ones before


def _stream(workdir: Path, n: int = 2000, seed: int = 1) -> list[tuple[bytes | None, bytes]]:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    messages = generated(n, seed=seed)
    send(bootstrap(workdir), topic, messages)
    return messages


def test_tansu_offsets_for_times_is_detected_as_unusable(workdir: Path) -> None:
    messages = _stream(workdir, 50)
    topic = api_for(workdir).feeds.get("feed").topic
    scan = KafkaScan({"bootstrap.servers": bootstrap(workdir)}, topic)
    assert scan.offsets_for_time([0, 1, 2, 3], 0) is None
    chunks = list(scan.read({p: -2 for p in range(4)}))
    assert sum(len(c) for c in chunks) == len(messages)


def test_export_appends_only_what_is_new_and_logs_it(workdir: Path) -> None:
    first = _stream(workdir, 600, seed=2)
    api = api_for(workdir)
    [result] = api.batch.export(stream="feed")
    assert (result.mode, result.records) == ("append", 600)
    assert api.batch.export(stream="feed")[0].records == 0
    more = generated(300, seed=3)
    send(bootstrap(workdir), api.feeds.get("feed").topic, more)
    assert api.batch.export(everything=True, pipeline="test")[0].records == 300

    _, rows = api.query("SELECT count(*), count(DISTINCT transaction_id) FROM feed")
    assert rows == [(900, 900)]
    log = json.loads((workdir / "lake/streams/feed/_exports.json").read_text())
    assert log["last_export"]["mode"] == "append" and log["last_export"]["records"] == 300
    assert sum(o["last"] - o["first"] + 1 for o in log["last_export"]["offsets"].values()) == 900
    assert len(log["history"]) == 3
    assert sorted(transaction_ids(first + more)) == sorted(
        r[0] for r in api.query("SELECT transaction_id FROM feed")[1])


def test_rebuilding_a_day_twice_gives_the_rows_the_ingest_wrote(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    _stream(workdir, 2000, seed=4)
    api = api_for(workdir)
    api.batch.export(stream="feed")
    ingested = day_rows(api, *DAY)
    assert len(ingested) > 1000

    first = api.batch.export(stream="feed", day=_date())[-1]
    after_first = day_rows(api, *DAY)
    folder = workdir / "lake/streams/feed/year=2025/month=03/day=10"
    files_first = sorted(p.name for p in folder.iterdir())
    second = api.batch.exports.rebuild_day("feed", _date())

    assert first.rebuild is not None and second.rebuild is not None
    assert first.rebuild.mode == "swap"
    assert after_first == ingested == day_rows(api, *DAY)
    assert files_first == sorted(p.name for p in folder.iterdir())
    assert second.rebuild.records_before == second.rebuild.records_after == len(ingested)
    assert not list((workdir / "lake/_staging").rglob("*.parquet"))

    # the ingest's recovery finds every file its ledger names: no warning, no duplicate
    more = generated(200, seed=5)
    send(bootstrap(workdir), api.feeds.get("feed").topic, more)
    with caplog.at_level(logging.WARNING, logger="lakestream"):
        engine = api.ingest_engine(api.select_feeds(None, "feed"), until_idle=True,
                                   idle_timeout_s=1.5)
        assert engine.run().written == 200
    assert not [r for r in caplog.records if "missing" in r.getMessage()]
    _, rows = api.query("SELECT count(*), count(DISTINCT transaction_id) FROM feed")
    assert rows == [(2200, 2200)]


def test_a_rebuild_restores_a_day_whose_files_were_lost(workdir: Path) -> None:
    _stream(workdir, 800, seed=6)
    api = api_for(workdir)
    api.batch.export(stream="feed")
    before = day_rows(api, *DAY)
    folder = workdir / "lake/streams/feed/year=2025/month=03/day=10"
    for path in sorted(folder.iterdir())[::2]:
        path.unlink()
    assert len(day_rows(api, *DAY)) < len(before)

    [_, rebuilt] = api.batch.export(stream="feed", day=_date())

    assert rebuilt.rebuild is not None and rebuilt.rebuild.records_after == len(before)
    assert day_rows(api, *DAY) == before


def test_readers_scanning_during_rebuilds_see_one_complete_day(workdir: Path) -> None:
    _stream(workdir, 1500, seed=7)
    api = api_for(workdir)
    api.batch.export(stream="feed")
    expected = len(day_rows(api, *DAY))
    seen = scan_while(lambda: [api.batch.exports.rebuild_day("feed", _date()) for _ in range(5)],
                       lambda: glob_count(workdir / "lake", *DAY))
    assert set(seen) == {(expected, expected)}, Counter(seen)


def test_s3_rebuild_is_consistent_for_lakestreams_reader(
        workdir: Path, seaweedfs, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    _stream(workdir, 1000, seed=8)
    api = api_for(workdir, **s3_env(seaweedfs), LAKESTREAM_LAKE_ROOT=f"s3://{s3_bucket}/lake")
    api.batch.export(stream="feed")
    before = day_rows(api, *DAY)
    expected = len(before)

    def count() -> tuple[int, int]:
        _, rows = api.query("SELECT count(*), count(DISTINCT transaction_id) FROM feed "
                            "WHERE year = 2025 AND month = 3 AND day = 10")
        return rows[0]

    seen = scan_while(lambda: [api.batch.exports.rebuild_day("feed", _date()) for _ in range(2)],
                       count)
    assert set(seen) == {(expected, expected)}, Counter(seen)
    assert day_rows(api, *DAY) == before
    day = "streams/feed/year=2025/month=03/day=10"
    manifest = json.loads(api.storage.read(f"{day}/_day.json"))
    live = [f.path.rsplit("/", 1)[1] for f in api.storage.list_files(day)
            if f.path.endswith(".parquet")]
    assert manifest["generation"] == 2 and not set(manifest["superseded"]) & set(live)


def test_table_export_writes_versions_and_prunes_beyond_the_limit(workdir: Path) -> None:
    topic = unique_topic("table")
    write_feed(workdir / "feeds", "totals", topic, kind="table", layer="tables",
               schema={"user_id": "string", "total": "float64"}, key=["user_id"],
               required=[], time_field=None)
    rows = [(f"U{i % 5}".encode(), json.dumps({"user_id": f"U{i % 5}", "total": i}).encode())
            for i in range(40)]
    send(bootstrap(workdir), topic, rows, partitions=2)
    api = api_for(workdir, lake={"table_versions": 3})

    results = [api.batch.export(table="totals")[0] for _ in range(5)]

    assert [r.version for r in results] == ["v1", "v2", "v3", "v4", "v5"]
    assert {r.records for r in results} == {5}
    versions = sorted(p.name for p in (workdir / "lake/tables/totals").glob("version=*"))
    assert versions == ["version=v3", "version=v4", "version=v5"]
    _, got = api.query("SELECT user_id, total FROM totals WHERE version = 'v5' ORDER BY 1")
    assert got == [(f"U{u}", float(35 + u)) for u in range(5)]
    assert json.loads((workdir / "lake/tables/totals/_metadata.json").read_text())[
        "current_version"] == "v5"


def test_a_disabled_or_unknown_feed_is_not_exported(workdir: Path) -> None:
    _stream(workdir, 10, seed=9)
    api = api_for(workdir)
    api.feeds.set_enabled("feed", False)
    with pytest.raises(FeedError, match="feed 'feed' is disabled"):
        api.batch.export(stream="feed")
    with pytest.raises(FeedError, match="no enabled feed"):
        api.batch.export(everything=True, pipeline="test")
    with pytest.raises(FeedError, match="unknown feed 'fede'"):
        api.batch.export(stream="fede")
    assert not (workdir / "lake/streams/feed").exists()


def _date():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.date(*DAY)
