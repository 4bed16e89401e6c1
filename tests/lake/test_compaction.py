"""Compaction of a stream landed by the ingest's sink: small files merged in one commit, same
rows and values, the ingest's resume point intact (the dataset is a Delta table)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.lake.compaction import compact_dataset
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.reader import LakeReader
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import Storage, open_storage
from tests.conftest import s3_settings
from tests.lake.lakegen import FEED, checksums, land, local_lake
from tests.support.seaweedfs import SeaweedFS

DAY = "streams/feed/year=2025/month=01/day=15"


def _live(storage: Storage, folder: str = DAY) -> list[str]:
    """The day's data files in the table's snapshot (read through the log)."""
    return [f.path for f in live_files(storage, folder)]


def _version(storage: Storage) -> int:
    return int(DeltaDataset(storage, "streams/feed").table().version())


def test_compaction_keeps_every_row_and_every_column_checksum(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 8)
    before, files_before = checksums(tmp_path), _live(storage)

    results = compact_dataset(storage, "streams/feed")

    assert checksums(tmp_path) == before
    assert {r.mode for r in results} == {"delta"}
    assert [r.date for r in results] == ["2025-01-15", "2025-01-16"]
    after = _live(storage)
    assert len(after) == 1 < len(files_before)
    assert sorted(results[0].rewritten) == files_before, "every small file of the day merged"


def test_the_ingest_resumes_where_it_was_after_a_compaction_without_warnings(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = local_lake(tmp_path)
    land(storage, 6)
    compact_dataset(storage, "streams/feed")

    restarted = DeltaLakeSink(storage, FEED)
    with caplog.at_level(logging.WARNING, logger="lakestream"):
        nexts = [restarted.recover(FEED.topic, p) for p in range(2)]
    assert nexts == [60, 60]
    assert not caplog.records
    # the restarted ingest appends on top; nothing is lost or doubled
    before = checksums(tmp_path)[1][0]
    land_more = [b'{"id": "late", "at": "2025-01-15T23:00:00Z", "amount": 1}']
    restarted.write(FEED.topic, 0, land_more, [None], [60], [None])
    assert checksums(tmp_path)[1][0] == before + 1
    assert [restarted.recover(FEED.topic, p) for p in range(2)] == [61, 60]


def test_a_second_compaction_has_nothing_left_to_do(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 5)
    assert compact_dataset(storage, "streams/feed")
    version = _version(storage)
    assert compact_dataset(storage, "streams/feed") == []
    assert _version(storage) == version


def test_dry_run_and_a_single_day_change_only_what_they_say(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 5)
    other = "streams/feed/year=2025/month=01/day=16"
    untouched, version = _live(storage, other), _version(storage)
    planned = compact_dataset(storage, "streams/feed", dry_run=True)
    assert [r.mode for r in planned] == ["dry-run", "dry-run"]
    assert _live(storage, other) == untouched and _version(storage) == version

    [result] = compact_dataset(storage, "streams/feed", day="2025-01-15")
    assert result.date == "2025-01-15" and result.files_after < result.files_before
    assert sorted(result.rewritten) == sorted(next(p for p in planned
                                                   if p.date == "2025-01-15").rewritten)
    assert _live(storage, other) == untouched and _version(storage) == version + 1


def test_files_with_a_new_column_merge_into_one(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 3, days=("2025-01-15",), extra={"note": 7})
    land(storage, 3, days=("2025-01-15",), extra={"note": 7, "region": "eu"})
    before = checksums(tmp_path)
    assert "region" in before[0] and len(_live(storage)) == 12

    [result] = compact_dataset(storage, "streams/feed")

    assert checksums(tmp_path) == before
    assert result.files_after == 1 == len(_live(storage))


def test_readers_never_see_both_the_small_and_the_merged_files(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 12, days=("2025-01-15",))
    expected = checksums(tmp_path)[1][0]
    seen: list[int] = []
    done = threading.Event()

    def scan() -> None:
        while not done.is_set():
            reader = LakeReader(storage)
            seen.append(reader.query("SELECT count(*) FROM feed")[1][0][0])
            reader.close()

    thread = threading.Thread(target=scan)
    thread.start()
    try:
        while len(seen) < 2:
            time.sleep(0.01)
        for target in (4096, 16384, 1 << 20):
            compact_dataset(storage, "streams/feed", target=target)
        scanned = len(seen)
        while len(seen) < scanned + 2:
            time.sleep(0.01)
    finally:
        done.set()
        thread.join()
    assert set(seen) == {expected}


@pytest.mark.integration
def test_s3_compaction_is_one_commit(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    storage = open_storage(f"s3://{s3_bucket}/lake", s3_settings(seaweedfs))
    land(storage, 4, days=("2025-01-15",))
    count = "SELECT count(*), count(DISTINCT id), sum(amount) FROM feed"
    before, version, files = LakeReader(storage).query(count)[1], _version(storage), \
        _live(storage)

    [result] = compact_dataset(storage, "streams/feed")

    assert result.mode == "delta" and result.files_after < result.files_before
    assert _version(storage) == version + 1 and sorted(result.rewritten) == files
    assert LakeReader(storage).query(count)[1] == before
    assert len(_live(storage)) == 1
    assert all(storage.exists(p) for p in files), "removed files stay until vacuum"


@pytest.mark.integration
def test_compaction_then_an_ingest_restart_lands_new_records_once_without_warnings(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from lakestream.api import Lakestream
    from tests.conftest import settings_for, unique_topic, write_feed
    from tests.ingest.helpers import generated, send

    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    api = Lakestream(settings_for(workdir))
    servers = api.settings.kafka.bootstrap_servers
    assert servers

    def ingest() -> int:
        engine = api.ingest_engine(api.select_feeds(None, "feed"), until_idle=True,
                                   idle_timeout_s=1.0)
        return engine.run().written

    for seed in (1, 2):  # two runs: several small files per day
        send(servers, topic, generated(300, seed=seed))
        assert ingest() == 300
    before = checksums(workdir / "lake")
    assert compact_dataset(api.storage, "streams/feed")
    assert checksums(workdir / "lake") == before

    send(servers, topic, generated(200, seed=4))
    with caplog.at_level(logging.WARNING, logger="lakestream"):
        assert ingest() == 200
    assert not [r for r in caplog.records if r.name.startswith("lakestream.lake")]
    _, rows = api.query("SELECT count(*), count(DISTINCT transaction_id) FROM feed")
    assert rows == [(800, 800)]
