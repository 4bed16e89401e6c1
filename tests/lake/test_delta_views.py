"""Reading a Delta lake: views, report and ``_metadata.json`` follow the log, not the folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakestream.config import S3Settings
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.reader import LakeReader
from lakestream.lake.report import lake_report
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import Storage, open_storage
from tests.conftest import s3_settings
from tests.lake.lakegen import FEED, land
from tests.support.seaweedfs import SeaweedFS

BAD = [b"{not json", b'{"id": "x"}']  # unparsable; missing the required time field


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(str(tmp_path / "lake"), S3Settings())
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket: str = request.getfixturevalue("s3_bucket")
    s3 = s3_settings(server)
    return open_storage(f"s3://{bucket}/lake", s3)


def _land_with_dead_letters(lake: Storage) -> int:
    sink = land(lake, 3, per_batch=5, partitions=2, delta=True)
    start = sink.next_offset[(FEED.topic, 1)] or 0
    sink.write(FEED.topic, 1, BAD, [None, None], [start, start + 1], [1736935200000] * 2)
    sink.publish_metadata()
    return 3 * 5 * 2


def test_views_read_exactly_the_snapshot_not_the_folder(lake: Storage) -> None:
    records = _land_with_dead_letters(lake)
    live = live_files(lake, FEED.dataset)
    assert live and all(f.records for f in live)
    # a file in a day folder that no commit references (a fenced writer's batch)
    stray = live[0].path.rsplit("/", 1)[0] + "/part-stray.snappy.parquet"
    lake.write_atomic(stray, lake.read(live[0].path))
    reader = LakeReader(lake, feeds=[FEED])
    try:
        assert reader.query("SELECT count(*), count(DISTINCT _kafka_partition::VARCHAR || ':' "
                            "|| _kafka_offset::VARCHAR) FROM feed")[1] == [(records, records)]
        _, days = reader.query("SELECT year, month, day, count(*) FROM feed GROUP BY ALL "
                               "ORDER BY ALL")
        assert days == [(2025, 1, 15, 16), (2025, 1, 16, 14)]
        assert reader.query("SELECT count(*) FROM feed WHERE day = 16")[1] == [(14,)]
        _, dead = reader.query("SELECT reason, _kafka_offset FROM dlq_feed ORDER BY 2")
        assert [r[1] for r in dead] == [15, 16] and all(r[0] for r in dead)
    finally:
        reader.close()


def test_report_and_metadata_come_from_the_log(lake: Storage) -> None:
    records = _land_with_dead_letters(lake)
    report = {d.name: d for d in lake_report(lake).datasets}
    feed, dlq = report["feed"], report["dlq_feed"]
    assert (feed.records, dlq.records) == (records, 2)
    assert feed.files == len(live_files(lake, FEED.dataset))
    meta = json.loads(lake.read(f"{FEED.dataset}/_metadata.json"))
    assert meta["format"] == "delta"
    assert (meta["records"], meta["rejected_records"]) == (records, 2)
    assert meta["files"] == feed.files + dlq.files
    assert meta["kafka_offsets"] == {"events:0": {"first": 0, "last": 14},
                                     "events:1": {"first": 0, "last": 16}}
    assert sum(p["records"] for p in meta["partitions"]) == records
    assert [f["name"] for f in meta["schema"]][:3] == ["id", "at", "amount"]


def test_a_table_whose_every_row_was_deleted_keeps_its_view_and_columns(lake: Storage) -> None:
    land(lake, 1, per_batch=3, partitions=1, delta=True)
    table = DeltaDataset(lake, FEED.dataset).table()
    table.delete()
    assert live_files(lake, FEED.dataset) == []
    reader = LakeReader(lake, feeds=[FEED])
    try:
        columns, rows = reader.query("SELECT * FROM feed")
        assert rows == [] and {"id", "amount", "_kafka_offset", "year", "day"} <= set(columns)
    finally:
        reader.close()
