"""DuckDB and Spark build the same silver, bit for bit, from the same bronze (first and later runs).

Spark has no S3 connector here (SPEC §2): both lakes are local folders.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakestream.config import S3Settings
from lakestream.lake.storage import Storage, open_storage
from lakestream.medallion.engines import open_engine
from lakestream.medallion.silver import DATASETS, SilverBuilder, dataset_files

from .bronze import BronzeWriter
from .expected import rule_cases
from .test_silver import _history

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def build(storage: Storage, engine: str) -> None:
    sql_engine = open_engine(engine, storage)
    try:
        SilverBuilder(storage, sql_engine).run()
    finally:
        sql_engine.close()


def assert_same_silver(a: Storage, b: Storage) -> int:
    compared = 0
    for dataset in DATASETS:
        files = dataset_files(a, dataset)
        assert files == dataset_files(b, dataset), dataset
        for rel in files:
            left, right = pq.read_table(a.full(rel)), pq.read_table(b.full(rel))
            assert [f.type for f in left.schema] == [f.type for f in right.schema], rel
            assert left.column_names == right.column_names, rel
            assert left.to_pylist() == right.to_pylist(), rel
            compared += left.num_rows
    return compared


def test_duckdb_and_spark_silver_are_identical(tmp_path: Path) -> None:
    duck = open_storage(str(tmp_path / "duck"), S3Settings())
    first = [*rule_cases(), *_history(80, ("Paris", "Tokyo", "Sydney", "Reykjavik"),
                                      dt.datetime(2025, 3, 28, tzinfo=dt.UTC))]
    BronzeWriter(duck).write(first)
    shutil.copytree(tmp_path / "duck", tmp_path / "spark")
    spark = open_storage(str(tmp_path / "spark"), S3Settings())
    build(duck, "duckdb")
    build(spark, "spark")
    assert assert_same_silver(duck, spark) > 300

    later = _history(30, ("Paris", "Lima"), dt.datetime(2025, 4, 2, 12, tzinfo=dt.UTC))
    refetch = {**first[-1], "main": {**first[-1]["main"], "temp": 1.25},
               "fetched_at": "2025-04-01T23:59:59.000Z"}
    for lake in (duck, spark):
        BronzeWriter(lake).write([refetch, *later])
    build(duck, "duckdb")
    build(spark, "spark")
    assert assert_same_silver(duck, spark) > 400
