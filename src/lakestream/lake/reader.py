"""Read the lake with DuckDB: one view per dataset, hive partitioning on.

Local lakes are scanned by DuckDB's own ``read_parquet`` (partition pruning
included). DuckDB cannot fetch its S3 extension (httpfs) offline, so S3 lakes
are scanned through pyarrow datasets registered in DuckDB, which push filters
on ``year``/``month``/``day`` down to the partition paths.

Every dataset is a Delta table; its view reads exactly the files of its
snapshot (``lake/snapshot.py``): a compaction, a day rebuild or a retention
run committing meanwhile is seen whole or not at all, and a query that meets a
file a vacuum deleted meanwhile runs again on the newer snapshot. A dataset
written before Lakestream kept the lake as Delta tables is refused with the
hint to run ``lakestream lake upgrade``.

Given the feed registry, every declared dataset has its view before its first
file (empty, with its declared columns), and so has every feed's dead-letter
dataset ``dlq_<feed>``. A table ``t`` is its current version; ``t_history`` is
every version kept, with its ``version`` column.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from lakestream.decode.schemas import KAFKA_COLUMNS, arrow_schema
from lakestream.errors import QueryError
from lakestream.feeds import Feed
from lakestream.lake.delta import DeltaDataset, check_not_legacy, is_delta_table
from lakestream.lake.layout import DLQ, STREAMS, TABLES, dlq_path
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import Storage
from lakestream.lake.writer import DLQ_SCHEMA

_VANISHED = re.compile(
    r"No such file|No files found|Failed to open|NoSuchKey|Path does not exist", re.I
)
_RETRIES = 3

AREAS = (STREAMS, TABLES, "bronze", "silver", "gold")


HISTORY = "_history"
_DAY_COLUMNS = (("year", pa.int32()), ("month", pa.int32()), ("day", pa.int32()))


@dataclass(frozen=True)
class Dataset:
    """A dataset of the lake: its view name and folder.

    Attributes:
        name: The view name.
        path: The dataset's folder below the lake root.
        area: ``streams``, ``tables``, ``bronze``, ``silver``, ``gold`` or ``_dlq``.
        history: For a table: the view holds every version (else the current one).
        columns: The view's columns while the dataset has no file yet (``None``:
            it has files, the columns come from them).
    """

    name: str
    path: str
    area: str
    history: bool = False
    columns: pa.Schema | None = None


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


def lake_views(storage: Storage, feeds: Iterable[Feed] = ()) -> list[Dataset]:
    """Every view of the lake: the datasets found, and each feed's dataset and dead letters.

    A declared dataset without files is a view with its declared columns; a table
    is two views, ``<t>_history`` (every version, listed first so that a path
    into the table needs the wider grant) and ``<t>`` (the current version).
    """
    views = {d.path: d for d in discover(storage)}
    for feed in feeds:
        if feed.dataset not in views:
            name = feed.name if feed.layer in (STREAMS, TABLES) else f"{feed.layer}_{feed.name}"
            views[feed.dataset] = Dataset(name, feed.dataset, feed.layer,
                                          columns=declared_columns(feed))
        if dlq_path(feed.name) not in views:
            views[dlq_path(feed.name)] = Dataset(
                f"dlq_{feed.name}", dlq_path(feed.name), DLQ,
                columns=pa.schema([*DLQ_SCHEMA, *_DAY_COLUMNS]))
    found: list[Dataset] = []
    for ds in views.values():
        if ds.area == TABLES:
            columns = ds.columns
            found.append(Dataset(f"{ds.name}{HISTORY}", ds.path, ds.area, True, columns))
        found.append(ds)
    return found


def declared_columns(feed: Feed) -> pa.Schema:
    """The columns of a feed's dataset before its first file: declared ones, then ours."""
    declared = list(arrow_schema(feed.schema_spec, feed.time_field))
    if feed.kind == "table":
        return pa.schema([*declared, ("version", pa.string())])
    topic = [("_kafka_topic", pa.string())] if feed.layer == "bronze" else []
    return pa.schema([*declared, *KAFKA_COLUMNS, *topic, *_DAY_COLUMNS])


def current_version(storage: Storage, path: str) -> str | None:
    """The version a table's view shows: the newest in its log (``None``: none yet)."""
    from lakestream.lake.table_versions import current_delta_version

    return current_delta_version(storage, path) if is_delta_table(storage, path) else None


def _has_parquet(storage: Storage, path: str) -> bool:
    return any(f.path.endswith(".parquet") for f in storage.list_files(path))


class LakeReader:
    """A DuckDB connection with one view per lake dataset.

    Args:
        storage: The lake.
        only: For a principal (``query --as``): the view names they may read. Only
            those views are created, and the connection is then locked down: no
            file access outside their folders, no external access, no extension
            loading, configuration locked, one ``SELECT`` statement per query.
    """

    def __init__(self, storage: Storage, only: Collection[str] | None = None,
                 feeds: Iterable[Feed] = ()) -> None:
        self.storage = storage
        self.only = None if only is None else frozenset(n.lower() for n in only)
        self.feeds = list(feeds)
        self.datasets: list[Dataset] = []
        self.con = duckdb.connect(":memory:")
        self._open()

    def _open(self) -> None:
        """Create the views; a file vanishing under a replacement meanwhile means: list again."""
        for attempt in range(_RETRIES + 1):
            try:
                self._open_views()
                return
            except duckdb.Error as exc:
                if attempt == _RETRIES or not _VANISHED.search(str(exc)):
                    raise self._error(exc) from None
                self.con.close()
                self.con = duckdb.connect(":memory:")

    def _open_views(self) -> None:
        self.datasets = [d for d in lake_views(self.storage, self.feeds)
                         if self.only is None or d.name.lower() in self.only]
        for ds in self.datasets:
            self._register(ds)
        if self.only is not None:
            self._lock_down()

    def _lock_down(self) -> None:
        """Views exist now; from here on the connection reads nothing else (governance)."""
        folders = [self.storage.full(d.path).rstrip("/") + "/" for d in self.datasets
                   if self.storage.is_local]
        quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in folders)
        for statement in (f"SET allowed_directories = [{quoted}]", "SET temp_directory = ''",
                          "SET autoinstall_known_extensions = false",
                          "SET autoload_known_extensions = false",
                          "SET enable_external_access = false", "SET lock_configuration = true"):
            self.con.execute(statement)

    def _require_one_select(self, sql: str) -> None:
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            raise self._error(exc) from None
        kinds = [s.type.name for s in statements]
        if kinds != ["SELECT"]:
            got = " + ".join(kinds) or "nothing"
            raise QueryError(f"only one SELECT statement may run here, not {got}")

    def _register(self, ds: Dataset) -> None:
        hive = _hive_schema(ds)
        folder = ds.path
        if ds.area == TABLES and not ds.history and ds.columns is None:
            version = current_version(self.storage, ds.path)
            folder = f"{ds.path}/version={version}" if version else ds.path
        if ds.columns is not None:
            self._register_arrow(ds, ds.columns.empty_table())
            return
        check_not_legacy(self.storage, ds.path)
        live = [f.path for f in live_files(self.storage, folder) if f.path.endswith(".parquet")]
        if not live:  # every file removed (retention): the table's columns, no rows
            self._register_arrow(ds, _delta_columns(DeltaDataset(self.storage, ds.path),
                                                    hive).empty_table())
            return
        if self.storage.is_local:
            paths = ", ".join("'" + self.storage.url(p).replace("'", "''") + "'" for p in live)
            self._register_local(ds, f"[{paths}]", hive)
            return
        base = self.storage.full(ds.path)
        files = [self.storage.full(p) for p in live]
        found = pads.dataset(files, filesystem=self.storage.fs, format="parquet")
        schema = pa.unify_schemas([frag.physical_schema for frag in found.get_fragments()],
                                  promote_options="permissive")
        schema = pa.schema([*schema, *(f for f in hive if f.name not in schema.names)])
        unified = pads.dataset(files, schema=schema, filesystem=self.storage.fs, format="parquet",
                               partitioning=pads.partitioning(flavor="hive", schema=hive)
                               if len(hive) else None,
                               partition_base_dir=base)
        self._register_arrow(ds, unified)

    def _register_arrow(self, ds: Dataset, data: pa.Table | pads.Dataset) -> None:
        self.con.register(f"__arrow_{ds.name}", data)
        self.con.execute(f'CREATE VIEW "{ds.name}" AS SELECT * FROM "__arrow_{ds.name}"')

    def _register_local(self, ds: Dataset, source: str, hive: pa.Schema) -> None:
        types = ", ".join(f"'{f.name}': {_SQL_TYPES[f.type]}" for f in hive)
        partitioning = f"hive_partitioning = true, hive_types = {{{types}}}" if types else \
            "hive_partitioning = false"
        self.con.execute(
            f"CREATE VIEW \"{ds.name}\" AS SELECT * FROM read_parquet({source}, "
            f"{partitioning}, union_by_name = true)"
        )

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql``; return column names and rows.

        A file deleted between the snapshot and the read (a vacuum meanwhile)
        makes the query run again on the newer snapshot.
        """
        if self.only is not None:
            self._require_one_select(sql)
        for _ in range(_RETRIES):
            try:
                cursor = self.con.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                return columns, cursor.fetchall()
            except duckdb.Error as exc:
                if not _VANISHED.search(str(exc)):
                    raise self._error(exc) from None
                self.con.close()
                self.con = duckdb.connect(":memory:")
                self._open()
        try:
            cursor = self.con.execute(sql)
            return [d[0] for d in cursor.description or []], cursor.fetchall()
        except duckdb.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: duckdb.Error) -> QueryError:
        message = str(exc).strip().splitlines()[0]
        if "does not exist" not in message:
            return QueryError(message)
        names = ", ".join(d.name for d in self.datasets if d.columns is None) \
            or "none yet (run `lakestream ingest`)"
        empty = sum(d.columns is not None for d in self.datasets)
        hint = f"datasets in this lake: {names}"
        if empty:
            hint += f"; {empty} more declared, empty until data arrives (`lakestream feeds list`)"
        return QueryError(message, hint)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()


_SQL_TYPES = {pa.int32(): "INTEGER", pa.string(): "VARCHAR"}


def _delta_columns(dataset: DeltaDataset, hive: pa.Schema) -> pa.Schema:
    """A Delta table's columns as the view shows them (partition columns typed as ``hive``)."""
    table = dataset.table()
    if table is None:
        return hive
    schema = pa.schema(table.schema().to_arrow())
    return pa.schema([f for f in schema if f.name not in hive.names] + list(hive))


def _hive_schema(ds: Dataset) -> pa.Schema:
    if ds.area == TABLES and "/version=" in ds.path:
        return pa.schema([])
    if ds.area == TABLES:
        return pa.schema([("version", pa.string())])
    if ds.area == "silver":  # silver: year=/month= only (docs/weather.md)
        return pa.schema([("year", pa.int32()), ("month", pa.int32())])
    return pa.schema([("year", pa.int32()), ("month", pa.int32()), ("day", pa.int32())])
