"""The medallion's datasets as Delta tables (issue #16): a month rebuild is one commit.

Bronze is the Delta table ``ingest`` lands through the Delta sink
(``year``/``month``/``day`` partitions); silver's three datasets are Delta
tables partitioned by ``year`` and ``month`` (zero-padded strings, so the
files stay in the ``year=YYYY/month=MM/`` folders of docs/lake.md). A dataset is
read from its snapshot's file list, never by listing folders, so a file a
commit did not reference (yet, or any more) is never read.

**A rebuild is one commit, after an audit.** A silver run recomputes whole
months. Its engine first writes them as plain Parquet below a staging folder
outside every table (:func:`write_staged` for DuckDB's Arrow result; Spark
writes its own), where no reader looks and the quality checks read them
(write-audit-publish). Publishing (:func:`publish_files`) moves the files
into the table's partition folders under unique names and replaces the
months in one commit that removes their files and adds the new ones, so a
Delta reader sees the old months or the new ones, never a half.

:func:`commit_files` commits with ``DeltaTable.create_write_transaction``
(no delta-spark jars here, docs/lake.md). Its
  ``mode="overwrite"`` takes one conjunction of partition filters (one month
  at most), so the commit is ``mode="append"`` carrying one ``RemoveAction``
  per file of the replaced months, read from the very snapshot the commit is
  made on: ``max_commit_retries=0`` makes it fail rather than land on a newer
  log, and it is retried on the new snapshot. So exactly the replaced
  months' files go. ``numRecords`` of each added file comes from its Parquet
  footer.

A table is created empty (its log first) before any data file lands in its
folder: a run that dies while writing the first files leaves files beside a
log that does not hold them (``vacuum`` deletes them), never a folder of bare
Parquet that would pass for a dataset of the previous format. Tables are
created with every column nullable and need reader version 1 and writer
version 2, with no table feature (every reader of the lake reads them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakestream.errors import LakeDataError, StorageConflictError
from lakestream.lake.delta import (
    COMMIT_ATTEMPTS,
    TABLE_CONFIGURATION,
    DeltaDataset,
    delta_errors,
)
from lakestream.lake.delta_files import file_stats
from lakestream.lake.storage import Storage

PARTITION_BY = ("year", "month")

Month = tuple[int, int]


@dataclass(frozen=True)
class DataFile:
    """A Parquet file another engine wrote inside a table, waiting to be committed."""

    path: str
    """Lake-relative path, inside the table's partition folder."""
    year: int
    month: int
    size: int
    records: int
    stats: str = ""
    """The Delta ``stats`` (JSON) from the file's footer: row count, min, max, null counts."""


def partition_folder(year: int, month: int) -> str:
    """``year=YYYY/month=MM``: the folder of one month inside a table."""
    return f"year={year:04d}/month={month:02d}"


def _add_actions(dataset: DeltaDataset) -> tuple[Any, list[dict[str, Any]]]:
    """The table (``None`` before its first commit) and its snapshot's add actions."""
    table = dataset.table()
    if table is None:
        return None, []
    with delta_errors(f"read the log of {dataset.uri}"):
        actions = pa.table(table.get_add_actions(flatten=True))
    columns = [c for c in ("path", "size_bytes", "partition.year", "partition.month")
               if c in actions.column_names]
    return table, actions.select(columns).to_pylist()


def _in_months(action: dict[str, Any], months: set[Month] | None) -> bool:
    if months is None:
        return True
    year, month = action.get("partition.year"), action.get("partition.month")
    return year is not None and month is not None and (int(year), int(month)) in months


def snapshot_files(storage: Storage, rel: str,
                   months: Iterable[Month] | None = None) -> dict[str, int]:
    """The live data files of a Delta dataset (lake-relative path → size), in path order.

    Args:
        months: Only the files of these (year, month) partitions (silver's tables).
    """
    wanted = None if months is None else set(months)
    _, actions = _add_actions(DeltaDataset(storage, rel))
    files = {f"{rel}/{unquote(a['path'])}": int(a["size_bytes"]) for a in actions
             if _in_months(a, wanted)}
    return dict(sorted(files.items()))


def month_predicate(months: Iterable[Month]) -> str:
    """The SQL predicate of whole months: ``(year = 'YYYY' AND month = 'MM') OR ...``."""
    return " OR ".join(f"(year = '{y:04d}' AND month = '{m:02d}')" for y, m in sorted(months))


def padded_partitions(table: pa.Table) -> pa.Table:
    """``year`` and ``month`` as zero-padded strings (``2026``, ``03``), the lake's form."""
    for name, width in (("year", 4), ("month", 2)):
        index = table.schema.get_field_index(name)
        text = pc.utf8_lpad(table.column(name).cast(pa.string()), width=width, padding="0")
        table = table.set_column(index, pa.field(name, pa.string()), text)
    return table


def nullable(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every field nullable (what a new table is created with)."""
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)


def ensure_table(storage: Storage, rel: str, schema: pa.Schema) -> Any:
    """The Delta table at ``rel``, created empty with ``schema`` if it does not exist yet.

    Not :meth:`DeltaDataset.ensure`: the medallion refuses a dataset written before Delta
    itself, for all its datasets before it writes any (``LegacyDatasetError``).
    """
    from deltalake import DeltaTable

    dataset = DeltaDataset(storage, rel, PARTITION_BY)
    table = dataset.table()
    if table is not None:
        return table
    with delta_errors(f"create {dataset.uri}"):
        DeltaTable.create(dataset.uri, schema=nullable(schema), mode="ignore",
                          partition_by=list(PARTITION_BY),
                          configuration=dict(TABLE_CONFIGURATION),
                          storage_options=dataset.options)
    return dataset.table()


def write_staged(storage: Storage, staging: str, data: pa.Table) -> pa.Schema:
    """Write ``data`` (int ``year``/``month``) below ``staging`` as one Parquet file per month.

    The files sit in ``year=YYYY/month=MM/`` folders, without the partition
    columns (they live in the folder names and the log, as in the tables).

    Returns:
        The table schema of the files: their columns plus string partition columns.
    """
    from lakestream.lake.writer import PARQUET_OPTIONS

    data = padded_partitions(data)
    data = data.cast(nullable(data.schema))
    columns = [c for c in data.column_names if c not in PARTITION_BY]
    months = pa.table({"year": data.column("year"), "month": data.column("month")})
    for year, month in sorted({(r["year"], r["month"]) for r in months.to_pylist()}):
        rows = data.filter(pc.and_(pc.equal(data.column("year"), year),
                                   pc.equal(data.column("month"), month)))
        sink = pa.BufferOutputStream()  # the engine's types as they are (no pruning)
        pq.write_table(rows.select(columns), sink, **PARQUET_OPTIONS)
        storage.write_atomic(f"{staging}/year={year}/month={month}/part-0.parquet",
                             sink.getvalue())
    return data.schema


def staged_files(storage: Storage, staging: str) -> list[DataFile]:
    """The Parquet files an engine wrote below ``staging``, in ``year=/month=`` folders."""
    files = []
    for info in storage.list_files(staging):
        name = info.path.rsplit("/", 1)[-1]
        if not name.endswith(".parquet") or name.startswith(("_", ".")):
            continue
        with storage.fs.open_input_file(storage.full(info.path)) as f:
            meta = pq.ParquetFile(f).metadata
        folders = info.path[len(staging) + 1:].split("/")[:-1]
        part = dict(p.split("=", 1) for p in folders if "=" in p)
        files.append(DataFile(info.path, int(part["year"]), int(part["month"]), info.size,
                              int(meta.num_rows), json.dumps(file_stats(meta))))
    return sorted(files, key=lambda f: f.path)


def publish_files(storage: Storage, rel: str, files: Sequence[DataFile], schema: pa.Schema,
                  months: Sequence[Month], tag: str, operation: str = "silver rebuild") -> int:
    """Move staged files into the table ``rel`` and commit them, replacing ``months``: one commit.

    The table is made first (its log exists before a file lands in its
    folder). Moved files the commit does not reach (a crash in between) are
    held by no snapshot: no reader sees them and ``vacuum`` deletes them.

    Args:
        files: Files below a staging folder (:func:`staged_files`).
        tag: Part of the new file names (the run), unique per publication.

    Returns:
        The rows added.
    """
    ensure_table(storage, rel, schema)
    moved = []
    for f in files:
        target = f"{rel}/{partition_folder(f.year, f.month)}/part-{tag}-{f.path.rsplit('/', 1)[-1]}"
        storage.move(f.path, target)
        moved.append(replace(f, path=target))
    return commit_files(storage, rel, moved, schema, months, operation)


def commit_files(storage: Storage, rel: str, files: Sequence[DataFile], schema: pa.Schema,
                 months: Sequence[Month], operation: str = "silver rebuild") -> int:
    """Commit files another engine wrote into ``rel``, replacing ``months``: one commit.

    Args:
        files: The new files, already in the partition folders of the table
            (:func:`ensure_table` made it before they were written).
        schema: The files' columns with the partition columns, in order.
        months: The months replaced (every live file of them is removed; none: an append).
        operation: What the commit is, in its ``lakestream.operation`` metadata.

    Returns:
        The rows added.
    """
    from deltalake import CommitProperties
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import AddAction

    dataset = DeltaDataset(storage, rel, PARTITION_BY)
    now = int(time.time() * 1000)
    adds = [AddAction(f.path[len(rel) + 1:], f.size,
                      {"year": f"{f.year:04d}", "month": f"{f.month:02d}"}, now, True,
                      f.stats or json.dumps({"numRecords": f.records})) for f in files]
    wanted = set(months)
    props = CommitProperties(max_commit_retries=0,
                             custom_metadata={"lakestream.operation": operation})
    for attempt in range(COMMIT_ATTEMPTS):
        table, actions = _add_actions(dataset)
        if table is None:
            raise StorageConflictError(f"{dataset.uri} has no Delta log to commit to",
                                       "is something deleting the dataset?")
        _check_schema(dataset, table, schema)
        try:
            with delta_errors(f"commit {len(files)} file(s) to {dataset.uri}"):
                table.create_write_transaction(
                    [*adds, *_removes(actions, wanted)], mode="append", schema=table.schema(),
                    partition_by=list(PARTITION_BY), commit_properties=props)
        except CommitFailedError:  # another commit came first: again, on the newer log
            time.sleep(min(0.01 * 2 ** attempt, 0.5))
            continue
        return sum(f.records for f in files)
    raise StorageConflictError(f"{dataset.uri}: {COMMIT_ATTEMPTS} commits in a row lost the "
                               "race for the next log version",
                               "is another silver run writing this lake?")


def _removes(actions: list[dict[str, Any]], months: set[Month]) -> list[Any]:
    from deltalake.transaction import RemoveAction

    now = int(time.time() * 1000)
    return [RemoveAction(a["path"], True, now, int(a["size_bytes"]),
                         {"year": a["partition.year"], "month": a["partition.month"]})
            for a in actions if _in_months(a, months)]


def _check_schema(dataset: DeltaDataset, table: Any, schema: pa.Schema) -> None:
    """Files of another type than the table's would corrupt it: refuse them."""
    from deltalake import Schema as DeltaSchema

    have = {f.name: f.type for f in table.schema().fields}
    given = {f.name: f.type for f in DeltaSchema.from_arrow(schema).fields}
    if have != given:
        differ = sorted(n for n in have.keys() | given.keys() if have.get(n) != given.get(n))
        raise LakeDataError(f"{dataset.uri}: the new files' columns differ from the table's "
                            f"({', '.join(differ)})", "rebuild the dataset from bronze")
