"""The writer: one decoded batch → staged Parquet files per UTC event day, and DLQ rows."""

from __future__ import annotations

import datetime as dt
import io
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakestream.config import S3Settings
from lakestream.decode.schemas import TIMESTAMP
from lakestream.lake.dead_letters import DATE_COLUMNS, commit_dead_letters, with_dates
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import Storage, open_storage
from lakestream.lake.writer import BatchId, dlq_table

UTC = dt.UTC
BATCH = BatchId(
    dataset="streams/orders", feed="orders", topic="orders", partition=3, start=1000, end=1005
)


@pytest.fixture
def lake(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "lake"), S3Settings())


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


def _committed(lake: Storage, rel: str) -> pa.Table:
    """The table's rows, read through its log."""
    return DeltaDataset(lake, rel).table().to_pyarrow_dataset().to_table()


def test_a_batch_is_split_by_utc_event_day_into_hive_partitions(lake: Storage) -> None:
    data = DeltaDataset(lake, "streams/orders", DATE_COLUMNS)
    data.append(with_dates(events(), events().column("event_time")))
    live = live_files(lake, "streams/orders")
    assert [f.path.rsplit("/", 1)[0] for f in live] == [
        "streams/orders/year=2024/month=12/day=31",
        "streams/orders/year=2025/month=01/day=01",
        "streams/orders/year=2025/month=01/day=02",
    ]
    assert [f.records for f in live] == [1, 2, 2]
    rows = _committed(lake, "streams/orders").to_pylist()
    by_day: dict[str, list[str]] = {}
    for r in rows:
        by_day.setdefault(f"{r['year']}-{r['month']}-{r['day']}", []).append(r["id"])
    assert {d: sorted(ids) for d, ids in by_day.items()} == {
        "2024-12-31": ["d"], "2025-01-01": ["a", "e"], "2025-01-02": ["b", "c"]}


def test_committed_files_are_snappy_parquet(lake: Storage) -> None:
    data = DeltaDataset(lake, "streams/orders", DATE_COLUMNS)
    data.append(with_dates(events(), events().column("event_time")))
    for f in live_files(lake, "streams/orders"):
        meta = pq.ParquetFile(io.BytesIO(lake.read(f.path))).metadata
        assert meta.row_group(0).column(0).compression == "SNAPPY"
        assert f.size == len(lake.read(f.path))


def test_a_single_day_batch_writes_one_file_with_every_row(lake: Storage) -> None:
    table = pa.table(
        {
            "id": [str(i) for i in range(50)],
            "event_time": pa.array(
                [dt.datetime(2025, 3, 9, i % 24, tzinfo=UTC) for i in range(50)], TIMESTAMP
            ),
        }
    )
    DeltaDataset(lake, "streams/orders", DATE_COLUMNS).append(
        with_dates(table, table.column("event_time")))
    [only] = live_files(lake, "streams/orders")
    assert only.path.startswith("streams/orders/year=2025/month=03/day=09/")
    assert _committed(lake, "streams/orders").select(["id", "event_time"]).to_pylist() == \
        table.to_pylist()  # Delta keeps microseconds: the same instants


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

    dlq = DeltaDataset(lake, "_dlq/orders", DATE_COLUMNS)
    assert commit_dead_letters(dlq, BATCH, None, rejected, values, keys, offsets,
                               timestamps) == (3, 1003)
    today = dt.datetime.now(UTC).date()
    expected_days = sorted({"2025-01-02", today.isoformat()})  # no Kafka time: today
    live = live_files(lake, "_dlq/orders")
    assert sorted({f.path.rsplit("/", 1)[0] for f in live}) == [
        f"_dlq/orders/year={d[:4]}/month={d[5:7]}/day={d[8:]}" for d in expected_days]
    assert sum(f.records or 0 for f in live) == 3
    landed = _committed(lake, "_dlq/orders")
    assert sorted(landed.column("_kafka_offset").to_pylist()) == [1001, 1002, 1003]
    assert b"\xff\xfenot utf-8 {" in landed.column("raw").to_pylist()
    # the batch replayed after a crash adds nothing twice
    assert commit_dead_letters(dlq, BATCH, 1003, rejected, values, keys, offsets,
                               timestamps) == (0, 1003)
    assert _committed(lake, "_dlq/orders").num_rows == 3


def test_event_days_are_the_utc_days_of_any_time_including_before_1970_and_none() -> None:
    rnd = random.Random(7)
    millis = [rnd.choice([None, rnd.randint(-10**13, 10**13), rnd.randint(-3 * 86_400_000,
                          3 * 86_400_000), -1, 0, 86_399_999, 86_400_000]) for _ in range(3000)]
    times = pa.chunked_array([pa.array(millis[:1000], pa.int64()).cast(TIMESTAMP),
                              pa.array(millis[1000:], pa.int64()).cast(TIMESTAMP)])
    got = with_dates(pa.table({"n": range(3000)}), times)
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    for ms, y, m, d in zip(millis, *(got.column(c).to_pylist() for c in DATE_COLUMNS),
                           strict=True):
        if ms is None:
            assert (y, m, d) == (None, None, None)
            continue
        day = epoch + dt.timedelta(milliseconds=ms)
        assert (y, m, d) == (f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"), ms
