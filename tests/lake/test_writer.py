"""The writer: one decoded batch → staged Parquet files per UTC event day, and DLQ rows."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakestream.config import S3Settings
from lakestream.decode.schemas import TIMESTAMP
from lakestream.lake.storage import Storage, open_storage
from lakestream.lake.writer import BatchId, dlq_table, stage_data, stage_dlq

UTC = dt.UTC
BATCH = BatchId(
    dataset="streams/orders", feed="orders", topic="orders", partition=3, start=1000, end=1005
)


@pytest.fixture
def lake(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "lake"), S3Settings())


def read_staged(lake: Storage, path: str) -> pa.Table:
    return pq.read_table(io.BytesIO(lake.read(path)))


def events() -> pa.Table:
    times = [
        dt.datetime(2025, 1, 1, 23, 59, 59, 999000, tzinfo=UTC),
        dt.datetime(2025, 1, 2, 0, 0, 0, tzinfo=UTC),
        # 23:30 at UTC-2 on the 1st is 01:30 UTC on the 2nd: the UTC day decides
        dt.datetime(2025, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
        dt.datetime(2024, 12, 31, 12, 0, tzinfo=UTC),  # a late event lands in its own day
        dt.datetime(2025, 1, 1, 0, 0, tzinfo=UTC),
    ]
    return pa.table({"id": ["a", "b", "c", "d", "e"], "event_time": pa.array(times, TIMESTAMP)})


def test_a_batch_is_split_by_utc_event_day_into_hive_partitions(lake: Storage) -> None:
    staged = stage_data(lake, BATCH, events(), "event_time")
    name = "orders-3-000000001000-000000001005.parquet"
    assert [f.final for f in staged] == [
        f"streams/orders/year=2024/month=12/day=31/{name}",
        f"streams/orders/year=2025/month=01/day=01/{name}",
        f"streams/orders/year=2025/month=01/day=02/{name}",
    ]
    assert [f.date for f in staged] == ["2024-12-31", "2025-01-01", "2025-01-02"]
    assert [f.records for f in staged] == [1, 2, 2]
    assert all(f.kind == "data" for f in staged)
    by_day = {f.date: read_staged(lake, f.staging).column("id").to_pylist() for f in staged}
    assert by_day == {"2024-12-31": ["d"], "2025-01-01": ["a", "e"], "2025-01-02": ["b", "c"]}


def test_staged_files_are_snappy_parquet_outside_the_dataset(lake: Storage) -> None:
    staged = stage_data(lake, BATCH, events(), "event_time")
    for f in staged:
        assert not f.staging.startswith("streams/")  # a reader's glob cannot see them
        assert f.bytes == len(lake.read(f.staging))
        meta = pq.ParquetFile(io.BytesIO(lake.read(f.staging))).metadata
        assert meta.row_group(0).column(0).compression == "SNAPPY"
    assert [f.path for f in lake.list_files("streams")] == []


def test_file_names_are_deterministic_per_batch(lake: Storage) -> None:
    first = stage_data(lake, BATCH, events(), "event_time")
    again = stage_data(lake, BATCH, events(), "event_time")  # a retry after a crash
    assert [(f.staging, f.final) for f in first] == [(f.staging, f.final) for f in again]
    assert len(lake.list_files("_staging")) == 3  # overwritten, not duplicated
    other = stage_data(
        lake, BatchId("streams/orders", "orders", "orders", 3, 1006, 1010), events(), "event_time"
    )
    assert {f.final for f in other}.isdisjoint({f.final for f in first})


def test_a_single_day_batch_writes_one_file_with_every_row(lake: Storage) -> None:
    table = pa.table(
        {
            "id": [str(i) for i in range(50)],
            "event_time": pa.array(
                [dt.datetime(2025, 3, 9, i % 24, tzinfo=UTC) for i in range(50)], TIMESTAMP
            ),
        }
    )
    [only] = stage_data(lake, BATCH, table, "event_time")
    assert only.final.startswith("streams/orders/year=2025/month=03/day=09/")
    assert read_staged(lake, only.staging).equals(table)


def test_dlq_rows_keep_the_raw_bytes_reason_and_kafka_coordinates(lake: Storage) -> None:
    values: list[bytes | None] = [b'{"ok": 1}', b"\xff\xfenot utf-8 {", None, b"[1]"]
    keys = ["k0", "k1", None, "k3"]
    offsets = [1000, 1001, 1002, 1003]
    ts_ms = int(dt.datetime(2025, 1, 2, 10, tzinfo=UTC).timestamp() * 1000)
    timestamps: list[int | None] = [ts_ms, ts_ms, ts_ms + 1, None]
    rejected = [
        (1, "JSON parse error: Invalid value."),
        (2, "empty message"),
        (3, "not a JSON object"),
    ]

    table = dlq_table(BATCH, rejected, values, keys, offsets, timestamps)
    rows = table.to_pylist()
    assert [r["raw"] for r in rows] == [b"\xff\xfenot utf-8 {", None, b"[1]"]
    assert [r["reason"] for r in rows] == [reason for _, reason in rejected]
    assert [r["_kafka_offset"] for r in rows] == [1001, 1002, 1003]
    assert [r["_kafka_key"] for r in rows] == ["k1", None, "k3"]
    assert {r["_kafka_topic"] for r in rows} == {"orders"}
    assert {r["_kafka_partition"] for r in rows} == {3}
    assert rows[0]["_kafka_timestamp"] == dt.datetime(2025, 1, 2, 10, tzinfo=UTC)
    assert all(r["rejected_at"] is not None for r in rows)

    staged = stage_dlq(lake, BATCH, table)
    today = dt.datetime.now(UTC).date()
    expected_days = sorted({"2025-01-02", today.isoformat()})  # no Kafka time: today
    assert [f.date for f in staged] == expected_days
    assert all(f.kind == "dlq" and f.final.startswith("_dlq/orders/year=") for f in staged)
    assert sum(f.records for f in staged) == 3
    landed = pa.concat_tables([read_staged(lake, f.staging) for f in staged])
    assert sorted(landed.column("_kafka_offset").to_pylist()) == [1001, 1002, 1003]
    assert b"\xff\xfenot utf-8 {" in landed.column("raw").to_pylist()
