"""Every declared dataset is a view of `lakestream query`, empty until data arrives (local, S3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakestream.config import S3Settings
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.ingest.tables import TableSink
from lakestream.lake.reader import LakeReader
from lakestream.lake.storage import Storage, open_storage

ORDERS = Feed(name="orders", topic="orders", schema={"id": "string", "total": "double"},
              time_field="at", required=("id", "at"))
TOTALS = Feed(name="totals", topic="totals", kind="table", layer="tables",
              schema={"k": "string", "n": "int64"}, key=("k",))
FEEDS = [ORDERS, TOTALS]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty lake, on the local disk or in a fresh SeaweedFS bucket."""
    if request.param == "local":
        return open_storage(str(tmp_path / "lake"), S3Settings())
    server, bucket = request.getfixturevalue("seaweedfs"), request.getfixturevalue("s3_bucket")
    return open_storage(f"s3://{bucket}/lake", S3Settings(
        endpoint=server.endpoint_url, access_key=server.access_key,
        secret_key=server.secret_key))


def query(storage: Storage, sql: str) -> list[tuple[Any, ...]]:
    reader = LakeReader(storage, feeds=FEEDS)
    try:
        return reader.query(sql)[1]
    finally:
        reader.close()


def columns(storage: Storage, view: str) -> dict[str, str]:
    return {str(name): str(kind) for name, kind, *_ in query(storage, f"DESCRIBE {view}")}


def test_a_clean_lake_has_every_declared_view_empty_with_its_columns(lake: Storage) -> None:
    reader = LakeReader(lake, feeds=FEEDS)
    names = sorted(d.name for d in reader.datasets)
    reader.close()

    assert names == ["dlq_orders", "dlq_totals", "orders", "totals", "totals_history"]
    for view in names:
        assert query(lake, f"SELECT count(*) FROM {view}") == [(0,)]
    assert columns(lake, "orders") == {
        "id": "VARCHAR", "total": "DOUBLE", "at": "TIMESTAMP WITH TIME ZONE",
        "_kafka_partition": "INTEGER", "_kafka_offset": "BIGINT",
        "_kafka_timestamp": "TIMESTAMP WITH TIME ZONE", "_kafka_key": "VARCHAR",
        "year": "INTEGER", "month": "INTEGER", "day": "INTEGER"}
    assert columns(lake, "totals_history") == {"k": "VARCHAR", "n": "BIGINT",
                                               "version": "VARCHAR"}
    assert list(columns(lake, "dlq_orders"))[:2] == ["raw", "reason"]
    assert query(lake, "SELECT sum(total) FROM orders WHERE year = 2025") == [(None,)]


def test_views_fill_as_data_arrives(lake: Storage) -> None:
    sink = DeltaLakeSink(lake, ORDERS)
    sink.recover(ORDERS.topic, 0)
    values = [json.dumps({"id": "o1", "at": "2025-05-01T10:00:00Z", "total": 2.5}).encode(),
              json.dumps({"id": "o2", "at": "2025-05-01T10:00:00Z", "total": "12.50"}).encode()]
    sink.write(ORDERS.topic, 0, values, [None, None], [0, 1], [1746093600000] * 2)

    assert query(lake, "SELECT id, total FROM orders") == [("o1", 2.5)]
    assert query(lake, "SELECT reason FROM dlq_orders") == [
        ("field total: expected double, found string",)]
    assert query(lake, "SELECT count(*) FROM dlq_totals") == [(0,)]


def test_a_table_is_its_current_version_and_history_keeps_every_version(lake: Storage) -> None:
    sink = TableSink(lake, TOTALS, keep=10)
    sink.load()
    for version in range(3):
        for key in ("a", "b"):
            row = {"k": key, "n": version * 10 + (key == "b")}
            sink.apply(0, version * 2 + (key == "b"), key.encode(), json.dumps(row).encode())
        sink.snapshot()

    assert query(lake, "SELECT version, k, n FROM totals ORDER BY k") == [
        ("v3", "a", 20), ("v3", "b", 21)]
    assert query(lake, "SELECT version, count(*) FROM totals_history GROUP BY 1 ORDER BY 1") == [
        ("v1", 2), ("v2", 2), ("v3", 2)]
