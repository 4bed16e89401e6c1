"""DuckDB and Spark build the same silver, bit for bit, from the same bronze (first and later runs).

Both commit Delta tables (DuckDB through delta-rs, Spark's Parquet committed by delta-rs);
they are compared through the log. Spark has no S3 connector here (SPEC §2): both lakes are
local folders.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakestream.config import S3Settings
from lakestream.lake.storage import Storage, open_storage
from lakestream.medallion.engines import open_engine
from lakestream.medallion.silver import DATASETS, SilverBuilder, dataset_files

from .bronze import BronzeWriter
from .expected import rule_cases
from .test_silver import KEYS, _history, rows_of

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def build(storage: Storage, engine: str) -> None:
    sql_engine = open_engine(engine, storage)
    try:
        SilverBuilder(storage, sql_engine).run()
    finally:
        sql_engine.close()
    assert storage.list_files("_staging") == []  # no scratch file left behind


def assert_same_silver(a: Storage, b: Storage) -> int:
    """The same rows through the log, and files of the same physical types; rows compared."""
    compared = 0
    for dataset in DATASETS:
        left, right = rows_of(a, dataset, *KEYS[dataset]), rows_of(b, dataset, *KEYS[dataset])
        assert left == right, dataset
        types = set()
        for storage in (a, b):
            for rel in dataset_files(storage, dataset):
                schema = pq.read_schema(storage.full(rel))
                types.add(tuple((f.name, f.type) for f in schema))
        assert len(types) == 1, (dataset, types)  # one column list, one type each
        compared += len(left)
    return compared


def test_duckdb_and_spark_silver_are_identical(tmp_path: Path) -> None:
    duck = open_storage(str(tmp_path / "duck"), S3Settings())
    first = [*rule_cases(), *_history(80, ("Paris", "Tokyo", "Sydney", "Reykjavik"),
                                      dt.datetime(2025, 3, 28, tzinfo=dt.UTC))]
    BronzeWriter(duck).write(first)
    shutil.copytree(tmp_path / "duck", tmp_path / "spark")  # the very same bronze table
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
    assert 1.25 in [r["temperature"] for r in rows_of(spark, DATASETS[0], "city")]


def test_spark_commits_delta_silver_identical_to_duckdb_through_the_log(tmp_path: Path) -> None:
    """Spark writes Parquet, delta-rs commits it: same rows as DuckDB, one commit a rebuild."""
    from deltalake import DeltaTable

    from .test_silver_delta import delta_rows, files_by_month

    first = [*rule_cases(), *_history(80, ("Paris", "Tokyo", "Sydney"),
                                      dt.datetime(2025, 3, 28, tzinfo=dt.UTC))]
    lakes = {name: open_storage(str(tmp_path / name), S3Settings()) for name in ("duck", "spark")}
    writers = {name: BronzeWriter(lake) for name, lake in lakes.items()}
    for writer in writers.values():
        writer.write(first)
    build(lakes["duck"], "duckdb")
    build(lakes["spark"], "spark")

    def same(min_rows: int) -> None:
        compared = 0
        for dataset in DATASETS:
            duck, spark = (DeltaTable(lake.full(dataset)) for lake in lakes.values())
            assert spark.schema() == duck.schema(), dataset
            protocol = spark.protocol()
            assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
            assert not protocol.reader_features and not protocol.writer_features
            rows = delta_rows(lakes["spark"], dataset)
            assert rows == delta_rows(lakes["duck"], dataset), dataset
            compared += len(rows)
            actions = pa.table(spark.get_add_actions(flatten=True)).to_pylist()
            for a in actions:  # numRecords from the footers
                path = lakes["spark"].full(f"{dataset}/{a['path']}")
                assert a["num_records"] == pq.ParquetFile(path).metadata.num_rows
                assert a["path"].startswith(f"year={a['partition.year']}/"
                                            f"month={a['partition.month']}/part-")
        assert compared > min_rows

    same(300)
    spark_table = DeltaTable(lakes["spark"].full(DATASETS[0]))
    version, before = spark_table.version(), files_by_month(lakes["spark"], DATASETS[0])
    assert sorted(before) == ["2025-03", "2025-04"]

    later = _history(10, ("Paris", "Lima"), dt.datetime(2025, 4, 2, 12, tzinfo=dt.UTC))
    for writer in writers.values():
        writer.write(later)
    build(lakes["duck"], "duckdb")
    build(lakes["spark"], "spark")
    same(320)
    spark_table = DeltaTable(lakes["spark"].full(DATASETS[0]))
    after = files_by_month(lakes["spark"], DATASETS[0])
    assert spark_table.version() == version + 1  # the April rebuild is one commit
    commit = spark_table.history(1)[0]
    assert commit.get("lakestream.operation") == "silver rebuild", commit  # Spark's files
    assert after["2025-03"] == before["2025-03"] and not after["2025-04"] & before["2025-04"]
    cleaned = delta_rows(lakes["spark"], DATASETS[0])
    assert len({tuple(r[k] for k in KEYS[DATASETS[0]]) for r in cleaned}) == len(cleaned)

    # Spark goes on with a table DuckDB created: the same rows, one more commit
    refetch = {**later[-1], "main": {**later[-1]["main"], "temp": 2.75},
               "fetched_at": "2025-04-03T00:00:00.000Z"}
    for writer in writers.values():
        writer.write([refetch])
    build(lakes["duck"], "spark")
    build(lakes["spark"], "duckdb")
    same(320)
    assert 2.75 in [r["temperature"] for r in delta_rows(lakes["duck"], DATASETS[0])]
