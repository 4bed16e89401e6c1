"""Read the lake with DuckDB: one view per dataset, hive partitioning on.

Local lakes are scanned by DuckDB's own ``read_parquet`` (partition pruning
included). DuckDB cannot fetch its S3 extension offline (SPEC §2), so S3 lakes
are scanned through pyarrow datasets registered in DuckDB, which push filters
on ``year``/``month``/``day`` down to the partition paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from lakestream.errors import QueryError
from lakestream.lake.layout import DLQ, METADATA, STREAMS, TABLES
from lakestream.lake.storage import Storage

AREAS = (STREAMS, TABLES, "bronze", "silver", "gold")


@dataclass(frozen=True)
class Dataset:
    """A dataset found in the lake: its view name and folder."""

    name: str
    path: str
    area: str


def discover(storage: Storage) -> list[Dataset]:
    """Every dataset folder of the lake that holds Parquet files."""
    found: list[Dataset] = []
    for area in AREAS:
        for name in storage.list_dirs(area):
            if not name.startswith(("_", ".")):
                found.append(
                    Dataset(
                        name if area in (STREAMS, TABLES) else f"{area}_{name}",
                        f"{area}/{name}",
                        area,
                    )
                )
    for name in storage.list_dirs(DLQ):
        found.append(Dataset(f"dlq_{name}", f"{DLQ}/{name}", DLQ))
    return [d for d in found if _has_parquet(storage, d.path)]


def _current_version(storage: Storage, path: str) -> str | None:
    try:
        meta = json.loads(storage.read(f"{path}/{METADATA}"))
    except (FileNotFoundError, ValueError):
        return None
    current = meta.get("current_version") if isinstance(meta, dict) else None
    return str(current) if current else None


def _has_parquet(storage: Storage, path: str) -> bool:
    return any(f.path.endswith(".parquet") for f in storage.list_files(path))


class LakeReader:
    """A DuckDB connection with one view per lake dataset."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.datasets = discover(storage)
        self.con = duckdb.connect(":memory:")
        for ds in self.datasets:
            self._register(ds)

    def _register(self, ds: Dataset) -> None:
        hive = _hive_schema(ds)
        if self.storage.is_local:
            glob = self.storage.url(ds.path).replace("'", "''") + "/**/*.parquet"
            types = ", ".join(f"'{f.name}': {_SQL_TYPES[f.type]}" for f in hive)
            partitioning = f"hive_partitioning = true, hive_types = {{{types}}}" if types else \
                "hive_partitioning = false"
            self.con.execute(
                f"CREATE VIEW \"{ds.name}\" AS SELECT * FROM read_parquet('{glob}', "
                f"{partitioning}, union_by_name = true)"
            )
            return
        base = self.storage.full(ds.path)
        files = [self.storage.full(f.path) for f in self.storage.list_files(ds.path)
                 if f.path.endswith(".parquet")]
        found = pads.dataset(files, filesystem=self.storage.fs, format="parquet")
        schema = pa.unify_schemas([frag.physical_schema for frag in found.get_fragments()],
                                  promote_options="permissive")
        schema = pa.schema([*schema, *(f for f in hive if f.name not in schema.names)])
        unified = pads.dataset(files, schema=schema, filesystem=self.storage.fs, format="parquet",
                               partitioning=pads.partitioning(flavor="hive", schema=hive)
                               if len(hive) else None,
                               partition_base_dir=base)
        self.con.register(f"__arrow_{ds.name}", unified)
        self.con.execute(f'CREATE VIEW "{ds.name}" AS SELECT * FROM "__arrow_{ds.name}"')

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql``; return column names and rows."""
        try:
            cursor = self.con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            return columns, cursor.fetchall()
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0]
            names = ", ".join(d.name for d in self.datasets) or "none yet (run `lakestream ingest`)"
            hint = f"datasets in this lake: {names}" if "does not exist" in message else None
            raise QueryError(message, hint) from None

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()


_SQL_TYPES = {pa.int32(): "INTEGER", pa.string(): "VARCHAR"}


def _hive_schema(ds: Dataset) -> pa.Schema:
    if ds.area == TABLES and "/version=" in ds.path:
        return pa.schema([])
    if ds.area == TABLES:
        return pa.schema([("version", pa.string())])
    return pa.schema([("year", pa.int32()), ("month", pa.int32()), ("day", pa.int32())])
