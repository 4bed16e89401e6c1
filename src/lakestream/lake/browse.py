"""Browse one dataset: its partitions and files, and pages of its rows.

Unlike :class:`~lakestream.lake.reader.LakeReader`, which offers every dataset
as a view over all its files, a page of rows is read through a view built over
only the files that can match: a date filter becomes the ``year=/month=/day=``
folder of that day (``year=/month=`` on silver, which then filters on ``day``),
and a table is read at its current version (``<t>_history``: every version). So
asking for one day of a stream opens that day's files and no others (docs/api.md),
whatever the engine would have pruned by itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow.dataset as pads

from lakestream.errors import QueryError, UsageError
from lakestream.lake.reader import Dataset, current_version
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import FileInfo, Storage

MAX_PAGE = 1000


@dataclass(frozen=True)
class Partition:
    """One partition folder of a dataset (a day, a month or a table version)."""

    name: str
    path: str
    files: tuple[FileInfo, ...]

    @property
    def bytes(self) -> int:
        """Total size of its Parquet files."""
        return sum(f.size for f in self.files)


@dataclass
class RowsPage:
    """A page of rows and where it came from.

    Attributes:
        columns: Column names, in order.
        rows: The rows of the page.
        total: Rows matching the filter (all pages).
        files_read: The Parquet files the view was built over (relative paths).
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    total: int
    files_read: list[str] = field(default_factory=list)


def partition_name(dataset_path: str, file_path: str) -> str:
    """``2025-01-15`` (day), ``2025-01`` (silver month) or ``v3`` of a file's folder."""
    folders = file_path[len(dataset_path) + 1:].split("/")[:-1]
    values = dict(f.split("=", 1) for f in folders if "=" in f)
    if "version" in values:
        return values["version"]
    parts = [values[k] for k in ("year", "month", "day") if k in values]
    return "-".join(parts) if parts else "(root)"


def partitions(storage: Storage, ds: Dataset) -> list[Partition]:
    """Every partition of ``ds`` that holds Parquet files, in path order."""
    grouped: dict[str, list[FileInfo]] = {}
    for f in _parquet_files(storage, ds.path, ds.path):
        grouped.setdefault(f.path.rsplit("/", 1)[0], []).append(f)
    return [Partition(partition_name(ds.path, files[0].path), folder, tuple(files))
            for folder, files in sorted(grouped.items())]


def _parquet_files(storage: Storage, folder: str, dataset_path: str) -> list[FileInfo]:
    """The Parquet files of the snapshot below ``folder`` (read through the Delta log)."""
    return [f for f in live_files(storage, folder)
            if f.path.endswith(".parquet") and "/_" not in f.path[len(dataset_path):]]


def _scope(storage: Storage, ds: Dataset, day: dt.date | None) -> tuple[str, str | None]:
    """(folder to read, extra SQL filter) for ``ds`` restricted to ``day``."""
    if ds.area == "tables":
        if day is not None:
            raise UsageError(f"dataset '{ds.name}' is a table (versions, not dates)",
                             "leave out the date filter")
        version = None if ds.history else current_version(storage, ds.path)
        return (f"{ds.path}/version={version}" if version else ds.path), None
    if day is None:
        return ds.path, None
    if ds.area == "silver":
        return f"{ds.path}/year={day.year:04d}/month={day.month:02d}", f"day = {day.day}"
    return f"{ds.path}/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}", None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DatasetView:
    """A DuckDB view named ``data`` over some Parquet files of one dataset."""

    def __init__(self, storage: Storage, ds: Dataset, files: list[str]) -> None:
        self.con = duckdb.connect(":memory:")
        hive = _hive_columns(ds)
        if storage.is_local:
            paths = ", ".join("'" + storage.url(f).replace("'", "''") + "'" for f in files)
            types = ", ".join(f"'{c}': INTEGER" for c in hive)
            opts = f"hive_partitioning = true, hive_types = {{{types}}}" if hive else \
                "hive_partitioning = false"
            self.con.execute(f"CREATE VIEW data AS SELECT * FROM read_parquet([{paths}], "
                             f"{opts}, union_by_name = true)")
            return
        part = pads.partitioning(flavor="hive") if hive else None
        data = pads.dataset([storage.full(f) for f in files], filesystem=storage.fs,
                            format="parquet", partitioning=part,
                            partition_base_dir=storage.full(ds.path))
        self.con.register("__data", data)
        self.con.execute("CREATE VIEW data AS SELECT * FROM __data")

    def columns(self) -> list[str]:
        """Column names of the view."""
        return [str(r[0]) for r in self.con.execute("DESCRIBE data").fetchall()]

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run ``sql`` (over the view ``data``); column names and rows."""
        try:
            cursor = self.con.execute(sql)
            return [d[0] for d in cursor.description or []], cursor.fetchall()
        except duckdb.Error as exc:
            raise QueryError(str(exc).strip().splitlines()[0]) from None

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


def _hive_columns(ds: Dataset) -> tuple[str, ...]:
    if ds.area == "tables":
        return ()
    return ("year", "month") if ds.area == "silver" else ("year", "month", "day")


def read_rows(storage: Storage, ds: Dataset, columns: list[str] | None = None,
              day: dt.date | None = None, limit: int = 100, offset: int = 0) -> RowsPage:
    """A page of ``ds``'s rows, read from only the files that can match.

    Args:
        storage: The lake.
        ds: The dataset.
        columns: Columns to return (default: all).
        day: Only rows of this date partition.
        limit: Rows per page, 0 to ``MAX_PAGE``.
        offset: Rows to skip.

    Raises:
        UsageError: A bad limit or offset, an unknown column, a date filter on a table.
    """
    if not 0 <= limit <= MAX_PAGE or offset < 0:
        raise UsageError(f"limit must be within 0..{MAX_PAGE} and offset ≥ 0")
    folder, where = _scope(storage, ds, day)
    files = [f.path for f in _parquet_files(storage, folder, ds.path)]
    if not files:
        return RowsPage(columns or [], [], 0, [])
    view = DatasetView(storage, ds, files)
    try:
        return _page(view, columns, where, limit, offset, files)
    finally:
        view.close()


def query_dataset(storage: Storage, ds: Dataset,
                  sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` over the view ``data`` of ``ds`` (a table at its current version).

    Returns no columns and no rows when the dataset has no files yet.
    """
    folder, _ = _scope(storage, ds, None)
    files = [f.path for f in _parquet_files(storage, folder, ds.path)]
    if not files:
        return [], []
    view = DatasetView(storage, ds, files)
    try:
        return view.query(sql)
    finally:
        view.close()


def _page(view: DatasetView, columns: list[str] | None, where: str | None, limit: int, offset: int,
          files: list[str]) -> RowsPage:
    known = view.columns()
    unknown = [c for c in columns or [] if c not in known]
    if unknown:
        raise UsageError(f"unknown column(s): {', '.join(unknown)}",
                         f"columns of this dataset: {', '.join(known)}")
    chosen = columns or known
    select = ", ".join(_quote(c) for c in chosen)
    clause = f" WHERE {where}" if where else ""
    total = int(view.query(f"SELECT count(*) FROM data{clause}")[1][0][0])
    _, rows = view.query(f"SELECT {select} FROM data{clause} LIMIT {limit} OFFSET {offset}")
    return RowsPage(chosen, rows, total, files)
