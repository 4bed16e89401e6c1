"""The SQL engines the medallion layers run on: what they share, and DuckDB's.

An engine registers lake files as views, runs the shared SQL of
:mod:`lakestream.medallion.sql`, and writes a query's result as one Parquet file
per ``year=YYYY/month=MM`` partition into a staging folder (the partition
columns live in the folder names, not in the files: the hive convention every
engine reads). The silver builder then swaps the staged files into place.
On a Delta dataset an engine commits the result instead (:meth:`SqlEngine.write_delta`,
:mod:`lakestream.medallion.delta_tables`): a rebuild of some months is one commit.

DuckDB (the default) reads a local lake with ``read_parquet`` and an S3 lake
through pyarrow datasets (it cannot load its S3 extension offline, SPEC §2);
it writes through the lake's :class:`Storage`, so both work the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakestream.errors import TerminalError
from lakestream.lake.storage import Storage
from lakestream.lake.writer import parquet_bytes
from lakestream.medallion.delta_tables import Month, overwrite_months
from lakestream.medallion.sql import DUCKDB, Dialect

PARTITION_COLUMNS = ("year", "month")
PART_FILE = "data.parquet"


class MedallionError(TerminalError):
    """The medallion pipeline cannot run as configured (engine, lake, data)."""


@dataclass(frozen=True)
class StagedPartition:
    """One partition's file, written to staging, waiting to be swapped into place."""

    partition: str
    staged: str
    rows: int


def partition_path(year: int, month: int) -> str:
    """``year=YYYY/month=MM`` (zero-padded, as in the rest of the lake)."""
    return f"year={year:04d}/month={month:02d}"


class SqlEngine(ABC):
    """Runs the medallion SQL over lake files on one engine."""

    dialect: Dialect = DUCKDB
    name: str = ""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @abstractmethod
    def register(self, view: str, files: Sequence[str]) -> None:
        """Make lake files (relative paths) queryable as ``view`` (columns unioned by name)."""

    @abstractmethod
    def materialize(self, view: str, sql: str) -> int:
        """Compute ``sql`` once, keep it as ``view``; returns its row count."""

    @abstractmethod
    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a small query."""

    @abstractmethod
    def arrow(self, sql: str) -> pa.Table:
        """The result of ``sql`` as an Arrow table."""

    @abstractmethod
    def write_partitions(self, sql: str, staging: str,
                         order: Sequence[str]) -> list[StagedPartition]:
        """Write ``sql``'s rows (with ``year``/``month`` columns) as one file per partition.

        Args:
            sql: The query; its ``year`` and ``month`` columns pick the partition.
            staging: Lake-relative folder to write below (``<staging>/year=/month=/``).
            order: Columns each file is sorted by.
        """

    @abstractmethod
    def write_delta(self, sql: str, dataset: str, months: Sequence[Month], staging: str,
                    order: Sequence[str]) -> int:
        """Replace ``months`` of the Delta dataset ``dataset`` by ``sql``'s rows in one commit.

        Args:
            sql: The query; its int ``year`` and ``month`` columns pick the partition.
            dataset: The table's folder below the lake root.
            months: The (year, month) partitions replaced: every row of ``sql`` is in one.
            staging: A scratch folder the engine may write below (removed by the caller).
            order: Columns each file is sorted by.

        Returns:
            The rows written.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine's resources."""


class DuckDBEngine(SqlEngine):
    """The default engine: in-process DuckDB."""

    dialect = DUCKDB
    name = "duckdb"

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")

    def register(self, view: str, files: Sequence[str]) -> None:
        """Local: ``read_parquet`` over the files; S3: a pyarrow dataset (unified schema)."""
        q = self.dialect.quote
        if self.storage.is_local:
            paths = ", ".join("'" + self.storage.full(f).replace("'", "''") + "'" for f in files)
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {q(view)} AS SELECT * FROM read_parquet([{paths}], "
                "union_by_name = true, hive_partitioning = false)"
            )
            return
        full = [self.storage.full(f) for f in files]
        found = pads.dataset(full, filesystem=self.storage.fs, format="parquet")
        schema = pa.unify_schemas([frag.physical_schema for frag in found.get_fragments()],
                                  promote_options="permissive")
        dataset = pads.dataset(full, schema=schema, filesystem=self.storage.fs, format="parquet")
        self.con.register(f"__arrow_{view}", dataset)
        self.con.execute(f'CREATE OR REPLACE TEMP VIEW {q(view)} AS SELECT * FROM '
                         f'{q("__arrow_" + view)}')

    def materialize(self, view: str, sql: str) -> int:
        """A temporary table."""
        q = self.dialect.quote
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {q(view)} AS {sql}")
        return int(self.rows(f"SELECT COUNT(*) FROM {q(view)}")[0][0])

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Fetched through the DB-API."""
        return self.con.execute(sql).fetchall()

    def arrow(self, sql: str) -> pa.Table:
        """Fetched as Arrow."""
        relation = self.con.sql(sql)
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        table: pa.Table = fetch()
        return table

    def write_partitions(self, sql: str, staging: str,
                         order: Sequence[str]) -> list[StagedPartition]:
        """Sorted by partition, sliced, and written through the lake's storage."""
        q = self.dialect.quote
        keys = ", ".join(q(k) for k in (*PARTITION_COLUMNS, *order))
        table = self.arrow(f"SELECT * FROM ({sql}) w ORDER BY {keys}")
        return stage_sorted(self.storage, table, staging)

    def write_delta(self, sql: str, dataset: str, months: Sequence[Month], staging: str,
                    order: Sequence[str]) -> int:
        """A predicate overwrite of the months with ``write_deltalake`` (sorted rows)."""
        q = self.dialect.quote
        keys = ", ".join(q(k) for k in (*PARTITION_COLUMNS, *order))
        table = self.arrow(f"SELECT * FROM ({sql}) w ORDER BY {keys}")
        return overwrite_months(self.storage, dataset, table, months)

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


def stage_sorted(storage: Storage, table: pa.Table, staging: str) -> list[StagedPartition]:
    """Write a table sorted by year and month as one staged file per partition."""
    if table.num_rows == 0:
        return []
    key = pc.add(pc.multiply(table.column("year").cast(pa.int64()), 100),
                 table.column("month").cast(pa.int64()))
    counts = pc.value_counts(key)  # in order of first appearance: the sort order
    body = table.drop_columns(list(PARTITION_COLUMNS))
    staged: list[StagedPartition] = []
    start = 0
    for entry in counts.to_pylist():
        value, n = int(entry["values"]), int(entry["counts"])
        part = partition_path(value // 100, value % 100)
        path = f"{staging}/{part}/{PART_FILE}"
        storage.write_atomic(path, memoryview(parquet_bytes(body.slice(start, n))))
        staged.append(StagedPartition(part, path, n))
        start += n
    return staged


def open_engine(name: str, storage: Storage, s3: Any = None) -> SqlEngine:
    """The engine called ``name`` (``duckdb`` or ``spark``) over ``storage``.

    Raises:
        MedallionError: Unknown engine, or Spark is not installed.
    """
    if name == "duckdb":
        return DuckDBEngine(storage)
    if name == "spark":
        from lakestream.medallion.spark_engine import SparkEngine

        return SparkEngine(storage, s3)
    raise MedallionError(f"unknown engine '{name}'", "use duckdb or spark")
