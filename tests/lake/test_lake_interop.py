"""A whole lake as Lakestream writes it, read by other engines with the same rows (issue #16).

The lake is written by Lakestream's own writers, not by hand: the streams'
sink (generator transactions over two Kafka partitions and four days, with
bad records going to the dead-letter table, a schema that grows a field),
an aggregate table with versions (the newest kept ones only), in-band
compaction of a day with many small files, and a retention delete of the
oldest day. Every dataset is then read by Lakestream's own reader and by
delta-rs, polars and DuckDB's delta extension (delta-kernel-rs), and each
must see exactly the same records (by Kafka coordinates), the same dead
letters and the same table versions. Spark reads the streams from the
snapshot's files (no Delta jars here, SPEC §2).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestream.config import S3Settings
from lakestream.decode.schemas import TRANSACTION_REQUIRED
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.delta_maintenance import (
    compact_small_files,
    delete_partitions,
    partition_files,
)
from lakestream.lake.reader import LakeReader
from lakestream.lake.storage import Storage, open_storage
from lakestream.lake.table_versions import VersionedTable
from lakestream.sources.generator import TransactionGenerator

from .interop import Row, read_deltalake, read_spark

ReadWith = Callable[..., list[Row]]
FEED = Feed(name="transaction_stream", topic="transactions", schema="transactions",
            time_field="event_time", required=TRANSACTION_REQUIRED)
TABLE = "tables/user_transaction_summary"
READERS = ("polars", "duckdb-delta")
BAD = [b"{not json", b'{"transaction_id": "t", "amount": "many"}', b"[]"]


def _messages(count: int, seed: int) -> list[bytes]:
    import datetime as dt

    days = [dt.datetime(2026, 12, d, 12, tzinfo=dt.UTC) for d in (1, 2, 3, 4)]
    out = []
    for i, (_, value) in enumerate(TransactionGenerator(seed=seed).messages(count)):
        event = json.loads(value)
        event["event_time"] = days[i % 4].isoformat().replace("+00:00", "Z")
        if i % 50 == 7:
            event["channel"] = "app"  # a field that appears later: the schema grows
        out.append(json.dumps(event).encode())
    return out


def build_lake(storage: Storage) -> None:
    """Streams, dead letters, a versioned table, a compaction and a retention delete."""
    sink = DeltaLakeSink(storage, FEED)
    for partition in (0, 1):
        sink.recover(FEED.topic, partition)
        offset = 0
        for batch in range(40):  # many small commits: day partitions with many files
            values = _messages(20, seed=partition * 100 + batch)
            if batch % 10 == 3:
                values[5:5 + len(BAD)] = BAD
            offsets = list(range(offset, offset + len(values)))
            sink.write(FEED.topic, partition, values, [b"k"] * len(values), offsets,
                       [1796342400000] * len(values))
            offset += len(values)
    table = VersionedTable(storage, TABLE, "transaction_flattened")
    expected: dict[int, int | None] = {0: None}
    for number in range(1, 10):
        rows = pa.table({"user_id": [f"U{n}" for n in range(number)],
                         "total": [float(n * number) for n in range(number)]})
        table.commit(rows, number, {0: number * 10}, expected, keep=7)
        expected = {0: number * 10}
    data = DeltaDataset(storage, FEED.dataset, ["year", "month", "day"])
    assert compact_small_files(data, min_files=16, target_bytes=64 << 20).partitions
    oldest = min(partition_files(data))
    delete_partitions(data, {oldest: [f.path for f in partition_files(data)[oldest]]})
    sink.publish_metadata()


def coordinates(rows: list[Row]) -> Counter[tuple[Any, Any]]:
    """Each record by its Kafka coordinates (a duplicate counts twice)."""
    return Counter((r["_kafka_partition"], r["_kafka_offset"]) for r in rows)


def lakestream_rows(storage: Storage, view: str) -> list[Row]:
    reader = LakeReader(storage, feeds=[FEED])
    try:
        columns, rows = reader.query(f'SELECT * FROM "{view}"')
    finally:
        reader.close()
    return [dict(zip(columns, r, strict=True)) for r in rows]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    storage = open_storage(str(tmp_path_factory.mktemp("interop") / "lake"), S3Settings())
    build_lake(storage)
    return storage


@pytest.mark.integration
@pytest.mark.slow
def test_every_reader_sees_the_streams_and_dead_letters_lakestream_sees(
        lake: Storage, read_with: ReadWith) -> None:
    for dataset, view in ((FEED.dataset, "transaction_stream"),
                          ("_dlq/transaction_stream", "dlq_transaction_stream")):
        ours = coordinates(lakestream_rows(lake, view))
        assert ours and max(ours.values()) == 1, f"{view}: a record twice"
        uri = lake.url(dataset)
        assert coordinates(read_deltalake(uri)) == ours, f"{view}: deltalake"
        for reader in READERS:
            got = read_with(reader, uri, "SELECT _kafka_partition, _kafka_offset FROM lake")
            assert coordinates(got) == ours, f"{view}: {reader}"
    rows = lakestream_rows(lake, "transaction_stream")
    assert {r["day"] for r in rows} == {2, 3, 4}, "retention removed the oldest day"
    assert sum(1 for r in rows if r.get("channel") == "app") > 0, "the grown field is there"
    dead = lakestream_rows(lake, "dlq_transaction_stream")
    assert len(dead) == 2 * 4 * len(BAD)


@pytest.mark.integration
@pytest.mark.slow
def test_every_reader_sees_the_kept_table_versions(lake: Storage, read_with: ReadWith) -> None:
    ours = lakestream_rows(lake, "user_transaction_summary_history")
    versions = Counter(r["version"] for r in ours)
    assert versions == {f"v{n}": n for n in range(3, 10)}, "the 7 newest versions, whole"
    current = lakestream_rows(lake, "user_transaction_summary")
    assert len(current) == 9
    uri = lake.url(TABLE)
    assert Counter(r["version"] for r in read_deltalake(uri)) == versions
    for reader in READERS:
        got = read_with(reader, uri, "SELECT version FROM lake")
        assert Counter(r["version"] for r in got) == versions, reader


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.spark
def test_spark_reads_the_streams_from_the_snapshot(lake: Storage, spark: Any) -> None:
    ours = coordinates(lakestream_rows(lake, "transaction_stream"))
    got = read_spark(spark, lake.url(FEED.dataset), ["_kafka_partition", "_kafka_offset"])
    assert coordinates(got) == ours


def test_the_lake_is_what_the_test_expects(tmp_path: Path) -> None:
    """The builder itself (no other engine): 1,600 records, 24 dead letters, 9 versions."""
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    build_lake(storage)
    meta = json.loads(storage.read(f"{FEED.dataset}/_metadata.json"))
    assert meta["rejected_records"] == 2 * 4 * len(BAD)
    assert {k: v["last"] for k, v in meta["kafka_offsets"].items()} == {
        "transactions:0": 799, "transactions:1": 799}
    assert meta["records"] == len(lakestream_rows(storage, "transaction_stream"))
