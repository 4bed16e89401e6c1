"""The SQL engines the medallion layers run on: what they share, and DuckDB's.

An engine registers lake files (a Delta table's live files, from its log) as
views, runs the shared SQL of :mod:`lakestream.medallion.sql`, and writes a
query's result as Parquet below a staging folder, in ``year=YYYY/month=MM``
folders (:meth:`SqlEngine.stage`), which the silver run audits and then
publishes to a Delta table in one commit
(:mod:`lakestream.medallion.delta_tables`). The partition columns live in the
folder names and the log, not in the files.

DuckDB (the default) reads a local lake with ``read_parquet`` and an S3 lake
through pyarrow datasets (it cannot load its S3 extension offline);
pyarrow writes its result to either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from lakestream.errors import LakestreamError, TerminalError
from lakestream.lake.storage import Storage
from lakestream.medallion.delta_tables import write_staged
from lakestream.medallion.sql import DUCKDB, Dialect

PARTITION_COLUMNS = ("year", "month")


class MedallionError(LakestreamError, TerminalError):
    """The medallion pipeline cannot run as configured (engine, lake, data)."""


class HeldBack(MedallionError):
    """A run's audit (its blocking quality checks) did not let it publish: nothing changed."""


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
    def stage(self, sql: str, staging: str, order: Sequence[str]) -> pa.Schema:
        """Write ``sql``'s rows as Parquet below ``staging``, one ``year=/month=`` folder each.

        Args:
            sql: The query; its int ``year`` and ``month`` columns pick the folder.
            staging: A folder below the lake root, outside every table (emptied first).
            order: Columns each file is sorted by.

        Returns:
            The table schema of the files: their columns plus string ``year``/``month``.
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

    def stage(self, sql: str, staging: str, order: Sequence[str]) -> pa.Schema:
        """Sorted rows as Arrow, written by pyarrow."""
        q = self.dialect.quote
        keys = ", ".join(q(k) for k in (*PARTITION_COLUMNS, *order))
        self.storage.delete_dir(staging)
        return write_staged(self.storage, staging, self.arrow(f"SELECT * FROM ({sql}) w "
                                                              f"ORDER BY {keys}"))

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


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
