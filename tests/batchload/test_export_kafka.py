"""``lakestream export`` from a real Tansu broker: appends, day rebuilds, table versions."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakestream.errors import FeedError, QueryError
from lakestream.kafka.scan import KafkaScan
from lakestream.lake.delta import DeltaDataset, app_id
from lakestream.lake.snapshot import live_files
from lakestream.lake.table_versions import delta_table_versions
from tests.batchload.helpers import api_for, bootstrap, day_rows, delta_count, scan_while
from tests.conftest import s3_env, unique_topic, write_feed
from tests.ingest.helpers import generated, send, transaction_ids
from tests.support.seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration

DAY = (2025, 3, 10)  # the generator's "now": most events fall on it, late ones before
DAY_DIR = "streams/feed/year=2025/month=03/day=10"


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

    data = DeltaDataset(api.storage, "streams/feed")
    topic = api.feeds.get("feed").topic
    offsets = _offsets_in_log(data, topic)
    version = data.table().version()
    first = api.batch.export(stream="feed", day=_date())[-1]
    after_first = day_rows(api, *DAY)
    files_first = live_files(api.storage, DAY_DIR)
    second = api.batch.exports.rebuild_day("feed", _date())

    assert first.rebuild is not None and second.rebuild is not None
    assert first.rebuild.mode == second.rebuild.mode == "delta"
    assert after_first == ingested == day_rows(api, *DAY)
    # each rebuild is one commit (nothing new to append: the append committed nothing),
    # removing the day's live files of its snapshot and adding the new ones
    assert data.table().version() == version + 2
    history = data.table().history(2)
    assert [h["operation"] for h in history] == ["WRITE", "WRITE"]
    assert all(h.get("lakestream.operation") == "rebuild" for h in history), history
    files_second = live_files(api.storage, DAY_DIR)
    assert not {f.path for f in files_first} & {f.path for f in files_second}
    assert sum(f.records or 0 for f in files_second) == len(ingested)
    assert second.rebuild.records_before == second.rebuild.records_after == len(ingested)
    assert _offsets_in_log(data, topic) == offsets  # a rebuild is not a consumer
    assert not list((workdir / "lake/_staging").rglob("*.parquet"))

    # the ingest resumes from the offsets in the log: no warning, no duplicate
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
    live = live_files(api.storage, DAY_DIR)
    lost = live[::2]
    assert lost
    for f in lost:
        api.storage.delete(f.path)
    with pytest.raises(QueryError, match="part-"):  # the log names files storage lost
        day_rows(api, *DAY)

    [_, rebuilt] = api.batch.export(stream="feed", day=_date())

    assert rebuilt.rebuild is not None and rebuilt.rebuild.records_after == len(before)
    assert rebuilt.rebuild.missing_files == len(lost)
    assert day_rows(api, *DAY) == before
    assert not {f.path for f in lost} & {f.path for f in live_files(api.storage, "streams/feed")}
    assert delta_count(api.storage, *DAY) == (len(before), len(before))  # any Delta reader


def test_readers_scanning_during_rebuilds_see_one_complete_day(workdir: Path) -> None:
    _stream(workdir, 1500, seed=7)
    api = api_for(workdir)
    api.batch.export(stream="feed")
    expected = len(day_rows(api, *DAY))

    def both() -> tuple[tuple[int, int], tuple[int, int]]:
        """The day through Lakestream's reader and through deltalake (a fresh log read each)."""
        _, rows = api.query("SELECT count(*), count(DISTINCT transaction_id) FROM feed "
                            "WHERE year = 2025 AND month = 3 AND day = 10")
        return rows[0], delta_count(api.storage, *DAY)

    seen = scan_while(lambda: [api.batch.exports.rebuild_day("feed", _date()) for _ in range(5)],
                       both)
    assert set(seen) == {((expected, expected), (expected, expected))}, Counter(seen)


def test_s3_rebuild_is_consistent_for_lakestreams_reader(
        workdir: Path, seaweedfs: SeaweedFS, s3_bucket: str) -> None:
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
    # two rebuilds, two commits; what they replaced left the log (still on storage until
    # vacuum, for readers of an older version), and the live files hold the day once
    history = DeltaDataset(api.storage, "streams/feed").table().history(2)
    assert [h.get("lakestream.operation") for h in history] == ["rebuild", "rebuild"]
    live = live_files(api.storage, DAY_DIR)
    on_storage = [f for f in api.storage.list_files(DAY_DIR) if f.path.endswith(".parquet")]
    assert {f.path for f in live} < {f.path for f in on_storage}
    assert sum(f.records or 0 for f in live) == expected
    assert delta_count(api.storage, *DAY) == (expected, expected)


def test_table_export_writes_versions_and_prunes_beyond_the_limit(workdir: Path) -> None:
    topic = unique_topic("table")
    write_feed(workdir / "feeds", "totals", topic, kind="table", layer="tables",
               schema={"user_id": "string", "total": "float64"}, key=["user_id"],
               required=[], time_field=None)
    rows = [(f"U{i % 5}".encode(), json.dumps({"user_id": f"U{i % 5}", "total": i}).encode())
            for i in range(40)]
    send(bootstrap(workdir), topic, rows, partitions=2)
    api = api_for(workdir, {"table_versions": 3})

    results = [api.batch.export(table="totals")[0] for _ in range(5)]

    assert [r.version for r in results] == ["v1", "v2", "v3", "v4", "v5"]
    assert {r.records for r in results} == {5}
    assert delta_table_versions(api.storage, "tables/totals") == ["v3", "v4", "v5"]
    # v5's commit added v5 and removed v2 in the same log entry
    table = DeltaDataset(api.storage, "tables/totals", ["version"]).table()
    before = DeltaDataset(api.storage, "tables/totals", ["version"]).table()
    before.load_as_version(table.version() - 1)
    assert _versions_of(before) == {"v2", "v3", "v4"} and _versions_of(table) == {"v3", "v4", "v5"}
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


def _offsets_in_log(data: DeltaDataset, topic: str) -> dict[str, int | None]:
    return data.transaction_versions(app_id(topic, p) for p in range(4))


def _versions_of(table: DeltaTable) -> set[str]:
    """The ``version`` partitions the snapshot's live files hold."""
    files = table.get_add_actions(flatten=True)
    return set(files.column("partition.version").to_pylist())


def _date() -> dt.date:
    return dt.date(*DAY)
