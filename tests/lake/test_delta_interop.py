"""What Lakestream commits to a Delta table, other engines read with the same rows (issue #16).

The table is stream-shaped: hive partitions ``year/month/day`` as zero-padded
strings, a struct column, a UTC timestamp with microseconds, several commits
with offsets, and a commit that adds an optional column and a struct field.
It is read by delta-rs (``deltalake``), polars (``read_delta``), DuckDB's
delta extension (delta-kernel-rs, an implementation independent of delta-rs)
and Spark (the snapshot's files as Parquet: no Delta jars here). DuckDB and
Spark read local tables only (SPEC §2); polars also reads SeaweedFS.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from deltalake import DeltaTable, write_deltalake

from lakestream.config import S3Settings
from lakestream.lake.delta import DeltaDataset, OffsetRange
from lakestream.lake.storage import Storage, open_storage
from tests.conftest import s3_settings
from tests.support.seaweedfs import SeaweedFS

from .interop import Row, jsonable, read_deltalake, read_spark

ReadWith = Callable[..., list[Row]]
PARTITIONS = ["year", "month", "day"]
START = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
DAYS_SQL = "SELECT day, count(*) AS n FROM lake GROUP BY day"
LOCAL_READERS = ("deltalake", "polars", "duckdb-delta")
S3_READERS = ("deltalake", "polars")  # DuckDB and Spark have no S3 offline (SPEC §2)


# -- the table ----------------------------------------------------------------------------------


def _events(first: int, count: int, day: int, evolved: bool = False) -> pa.Table:
    """``count`` transactions of 2026-12-``day``; ``evolved`` adds ``channel`` and ``user.city``."""
    numbers = range(first, first + count)
    # Microseconds that are not multiples of 1000: a reader that truncates to ms shows.
    times = [START.replace(day=day) + dt.timedelta(minutes=n, microseconds=n * 7 + 1)
             for n in numbers]
    users = [{"user_id": f"U{n % 7:05d}", "country": "FR" if n % 2 else "JP"} for n in numbers]
    columns: dict[str, Any] = {
        "transaction_id": [f"tx-{n:05d}" for n in numbers],
        "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "amount": [round(n * 1.25, 2) for n in numbers],
        "user": users,
    }
    if evolved:
        columns["user"] = [{**u, "city": None if n % 3 == 0 else f"city-{n % 4}"}
                           for u, n in zip(users, numbers, strict=True)]
        columns["channel"] = [None if n % 5 == 0 else ("web", "app")[n % 2] for n in numbers]
    columns.update(year=["2026"] * count, month=["12"] * count, day=[f"{day:02d}"] * count)
    return pa.table(columns)


def _expected(*batches: pa.Table) -> list[Row]:
    """The rows as every reader must return them: later columns and fields null in old rows."""
    rows = []
    for batch in batches:
        for row in map(jsonable, batch.to_pylist()):
            row["user"].setdefault("city", None)
            row.setdefault("channel", None)
            rows.append(row)
    return rows


def write_stream(storage: Storage) -> tuple[DeltaDataset, list[Row]]:
    """Three commits through Lakestream's commit path; the rows they hold."""
    data = DeltaDataset(storage, "streams/transaction_stream", PARTITIONS)
    first = pa.concat_tables([_events(0, 30, 3), _events(30, 25, 4)])
    second = pa.concat_tables([_events(55, 20, 4), _events(75, 20, 5)])
    third = pa.concat_tables([_events(95, 15, 5, evolved=True), _events(110, 25, 6, evolved=True)])
    data.append(first, [OffsetRange("transactions", 0, None, 54)])
    data.append(second, [OffsetRange("transactions", 1, None, 39)])
    data.append(third, [OffsetRange("transactions", 0, 54, 94)])
    return data, _expected(first, second, third)


def remove_and_rebuild(data: DeltaDataset, rows: list[Row]) -> tuple[list[Row], set[str]]:
    """Delete day 04, rebuild day 05 (predicate overwrite); the rows left, the files removed."""
    before = set(data.table().file_uris())
    data.table().delete("day = '04'")
    rebuilt = _events(200, 12, 5, evolved=True)
    write_deltalake(data.table(), rebuilt, mode="overwrite", predicate="day = '05'",
                    partition_by=PARTITIONS, storage_options=data.options)
    removed = before - set(data.table().file_uris())
    kept = [r for r in rows if r["day"] not in ("04", "05")]
    return kept + _expected(rebuilt), removed


# -- comparing ----------------------------------------------------------------------------------


def data_key(row: Row) -> tuple[Any, ...]:
    """The data columns compared between readers, flattened so rows sort."""
    return (row["transaction_id"], row["event_time"], row["amount"], row["user"]["user_id"],
            row["user"]["country"], row["user"]["city"], row["channel"])


def key(row: Row) -> tuple[Any, ...]:
    """The data and the partition columns."""
    return (*data_key(row), row["year"], row["month"], row["day"])


def days(rows: list[Row]) -> dict[str, int]:
    return dict(Counter(r["day"] for r in rows))


def read(reader: str, data: DeltaDataset, read_with: ReadWith, query: Any = None) -> list[Row]:
    if reader == "deltalake":
        return read_deltalake(data.uri, query, data.options)
    # the connection only: the retry settings are delta-rs's (polars wants other types)
    options = {k: v for k, v in (data.options or {}).items()
               if k not in ("max_retries", "retry_timeout", "connect_timeout")}
    return read_with(reader, data.uri, query, storage_options=options)


def assert_every_reader_sees(data: DeltaDataset, rows: list[Row], readers: tuple[str, ...],
                             read_with: ReadWith) -> None:
    want = sorted(map(key, rows))
    for reader in readers:
        got = read(reader, data, read_with)
        assert sorted(map(key, got)) == want, reader
        if reader != "deltalake":  # the engine's own aggregation, over partition values
            counted = read(reader, data, read_with, DAYS_SQL)
            assert {r["day"]: r["n"] for r in counted} == days(rows), reader


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, tuple[str, ...]]:
    """A lake and the readers that can read it here."""
    if request.param == "local":
        return open_storage(str(tmp_path / "lake"), S3Settings()), LOCAL_READERS
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket: str = request.getfixturevalue("s3_bucket")
    s3 = s3_settings(server)
    return open_storage(f"s3://{bucket}/lake", s3), S3_READERS


# -- tests --------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_every_reader_reads_the_rows_lakestream_committed(
    lake: tuple[Storage, tuple[str, ...]], read_with: ReadWith
) -> None:
    storage, readers = lake
    data, rows = write_stream(storage)
    assert len(rows) == 135 and days(rows) == {"03": 30, "04": 45, "05": 35, "06": 25}
    assert_every_reader_sees(data, rows, readers, read_with)


@pytest.mark.integration
@pytest.mark.slow
def test_commits_that_remove_files_are_respected_by_every_reader(
    lake: tuple[Storage, tuple[str, ...]], read_with: ReadWith
) -> None:
    """A delete and a day rebuild leave their old files on disk: only the log says they are gone."""
    storage, readers = lake
    data, rows = write_stream(storage)
    rows, removed = remove_and_rebuild(data, rows)
    assert days(rows) == {"03": 30, "05": 12, "06": 25}
    on_disk = {f.path for f in storage.list_files(data.rel) if f.path.endswith(".parquet")}
    assert {storage.url(p) for p in on_disk} >= removed and len(removed) == 4
    folder = pads.dataset(storage.full(data.rel), filesystem=storage.fs, format="parquet",
                          partitioning="hive")
    assert folder.count_rows() == 135 + 12, "a reader of the folder, not the log, counts twice"

    assert_every_reader_sees(data, rows, readers, read_with)
    for reader in readers[1:]:
        [one_day] = read(reader, data, read_with,
                         "SELECT count(*) AS n FROM lake WHERE day = '05'")
        assert one_day["n"] == 12, reader


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.spark
def test_spark_reads_the_same_rows_from_the_snapshot_files(tmp_path: Path, spark: Any) -> None:
    data, rows = write_stream(open_storage(str(tmp_path / "lake"), S3Settings()))
    assert sorted(map(key, read_spark(spark, data.uri))) == sorted(map(key, rows))

    # As plain Parquet the partition columns are missing (they are in folder names only), and
    # without mergeSchema Spark takes one file's schema: channel and user.city may be dropped.
    files = data.table().file_uris()
    plain = spark.read.option("mergeSchema", "true").parquet(*files)
    assert not set(PARTITIONS) & set(plain.columns)
    got = [jsonable(row) for row in plain.toArrow().to_pylist()]
    assert sorted(map(data_key, got)) == sorted(map(data_key, rows))
    # With basePath but not the table's schema, Spark infers day=04 to be the integer 4.
    inferred = spark.read.option("basePath", data.uri).parquet(*files).select("day").distinct()
    assert sorted(r.day for r in inferred.collect()) == [3, 4, 5, 6]

    rows, _ = remove_and_rebuild(data, rows)
    got = read_spark(spark, data.uri)
    assert sorted(map(key, got)) == sorted(map(key, rows)) and days(got) == days(rows)


def test_a_dataset_table_uses_no_table_feature_a_reader_could_lack(tmp_path: Path) -> None:
    """Reader 1 / writer 2, no table features: what delta-rs, kernel and Spark all read."""
    data, rows = write_stream(open_storage(str(tmp_path / "lake"), S3Settings()))
    remove_and_rebuild(data, rows)
    table = DeltaTable(data.uri)
    protocol = table.protocol()
    print(f"protocol of {data.rel} at v{table.version()}: {protocol}")
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert not protocol.reader_features and not protocol.writer_features
    # to_pyarrow_dataset refuses deletion vectors and column mapping: it must accept ours.
    assert table.to_pyarrow_dataset().count_rows() == 30 + 12 + 25
