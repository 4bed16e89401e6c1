"""Merge a date partition's small files into files near a target size, atomically.

A streaming ingest commits a file per Kafka partition per flush, so a busy
day collects thousands of small files, and every engine reads small files
slowly. Compaction rewrites them into files of about ``target_bytes``
(128 MiB by default) and swaps the day in one step (``lake/swap.py``): a
reader sees the small files or the merged ones, never both, never neither.

Rows are copied as they are (every column, every value, in file order); files
whose schemas conflict (one column with two types) are not merged together.
The files named by each Kafka partition's newest ledger manifest are left
alone: the ingest's recovery checks that they exist (``lake/ledger.py``).
Files committed while a compaction runs are carried into the new day.

A Delta dataset (one with ``_delta_log/``) is compacted by Delta's own
``optimize.compact`` instead, one commit per day partition
(:func:`lakestream.lake.delta_maintenance.compact_partition`); the legacy
path above stays for plain-Parquet lakes until they are upgraded.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from lakestream.lake.layout import parse_date_partition
from lakestream.lake.ledger import OffsetLedger
from lakestream.lake.storage import FileInfo, Storage
from lakestream.lake.swap import DayReplace, maintenance_lock, visible_files
from lakestream.lake.writer import PARQUET_OPTIONS

log = logging.getLogger(__name__)

TARGET_BYTES = 128 * 1024 * 1024
SMALL = 0.75  # files below this fraction of the target are worth merging


@dataclass
class CompactionResult:
    """What compacting one day did (or, in a dry run, would do)."""

    dataset: str
    date: str
    files_before: int
    files_after: int
    merged: int
    bytes_before: int
    bytes_after: int
    records: int
    mode: str = "dry-run"
    rewritten: list[str] = field(default_factory=list)
    """Delta: the files (lake-relative) the compaction replaces (legacy: left empty)."""
    version: int | None = None
    """Delta: the table version of the compaction's commit."""


def protected_files(storage: Storage, dataset: str) -> set[str]:
    """Files named by the newest manifest of each Kafka partition (recovery checks them)."""
    return {f.final for m in OffsetLedger(storage, dataset).all_latest() for f in m.files}


def day_files(storage: Storage, dataset: str) -> dict[str, list[FileInfo]]:
    """The live Parquet files of each date partition folder of ``dataset``."""
    days: dict[str, list[FileInfo]] = {}
    for f in visible_files(storage, dataset):
        folder = f.path.rsplit("/", 1)[0]
        if f.path.endswith(".parquet") and parse_date_partition(folder) is not None \
                and "/_" not in f"/{f.path[len(dataset) + 1:]}":
            days.setdefault(folder, []).append(f)
    return days


def plan(files: list[FileInfo], protected: set[str], target: int) -> list[list[FileInfo]]:
    """Groups of small files to merge, each about ``target`` bytes (single files stay)."""
    small = [f for f in files if f.path not in protected and f.size < target * SMALL]
    groups: list[list[FileInfo]] = []
    current: list[FileInfo] = []
    size = 0
    for f in small:
        current.append(f)
        size += f.size
        if size >= target:
            groups.append(current)
            current, size = [], 0
    groups.append(current)
    return [g for g in groups if len(g) > 1]


def compact_dataset(storage: Storage, dataset: str, day: str | None = None,
                    target: int = TARGET_BYTES, dry_run: bool = False,
                    on_day: Callable[[CompactionResult], None] | None = None
                    ) -> list[CompactionResult]:
    """Compact every date partition of ``dataset`` (or only ``day``, ``YYYY-MM-DD``)."""
    from lakestream.lake.delta import is_delta_table

    storage.check_root()  # a refused or missing bucket: one clear error, first
    if is_delta_table(storage, dataset):
        return _delta_compact_dataset(storage, dataset, day, target, dry_run, on_day)
    results = []
    with maintenance_lock(storage, dataset):
        protected = protected_files(storage, dataset)
        for folder, files in sorted(day_files(storage, dataset).items()):
            date = parse_date_partition(folder)
            if day is not None and (date is None or date.isoformat() != day):
                continue
            groups = plan(files, protected, target)
            if not groups:
                continue
            result = _compact_day(storage, dataset, folder, files, groups, dry_run)
            results.append(result)
            if on_day:
                on_day(result)
    return results


def _compact_day(storage: Storage, dataset: str, folder: str, files: list[FileInfo],
                 groups: list[list[FileInfo]], dry_run: bool) -> CompactionResult:
    if not dry_run:
        groups = [part for g in groups for part in _by_schema(storage, g) if len(part) > 1]
    merged = {f.path for g in groups for f in g}
    date = parse_date_partition(folder)
    result = CompactionResult(dataset, date.isoformat() if date else folder, len(files),
                              len(files) - len(merged), len(merged),
                              sum(f.size for f in files), 0, 0)
    if dry_run:
        result.files_after += len(groups)
        return result
    replace = DayReplace(storage, folder)
    try:
        for group in groups:
            data, rows = merge_files(storage, group)
            replace.write(_merged_name(group), memoryview(data))
            result.files_after += 1
            result.bytes_after += data.size
            result.records += rows
        for f in files:
            if f.path not in merged:
                replace.keep(f.path.rsplit("/", 1)[1])
                result.bytes_after += f.size
        replace.commit()
    except BaseException:
        replace.abort()
        raise
    result.mode = replace.mode
    log.info("compacted %s %s: %d files -> %d", dataset, result.date, result.files_before,
             result.files_after)
    return result


def _by_schema(storage: Storage, group: list[FileInfo]) -> list[list[FileInfo]]:
    """Split a group into sets whose schemas unify (a column never has two types)."""
    sets: list[tuple[list[FileInfo], list[pa.Schema]]] = []
    for f in group:
        with storage.fs.open_input_file(storage.full(f.path)) as handle:
            schema = pq.read_schema(handle)
        for files, schemas in sets:
            try:
                pa.unify_schemas([*schemas, schema])
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                continue
            files.append(f)
            schemas.append(schema)
            break
        else:
            sets.append(([f], [schema]))
    return [files for files, _ in sets]


def merge_files(storage: Storage, files: list[FileInfo]) -> tuple[pa.Buffer, int]:
    """One Parquet file (snappy) with the rows of ``files`` in order; returns it and its rows."""
    opened = [pq.ParquetFile(storage.fs.open_input_file(storage.full(f.path))) for f in files]
    schema = pa.unify_schemas([p.schema_arrow for p in opened])
    sink = pa.BufferOutputStream()
    rows = 0
    options = {k: v for k, v in PARQUET_OPTIONS.items() if k != "row_group_size"}
    with pq.ParquetWriter(sink, schema, **options) as writer:
        for parquet in opened:
            for batch in parquet.iter_batches(batch_size=PARQUET_OPTIONS["row_group_size"]):
                table = _conform(pa.Table.from_batches([batch]), schema)
                writer.write_table(table, row_group_size=PARQUET_OPTIONS["row_group_size"])
                rows += table.num_rows
    return sink.getvalue(), rows


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _merged_name(files: list[FileInfo]) -> str:
    digest = hashlib.sha1("\n".join(f.path for f in files).encode()).hexdigest()[:16]
    return f"compacted-{digest}.parquet"


def _delta_compact_dataset(storage: Storage, dataset: str, day: str | None, target: int,
                           dry_run: bool, on_day: Callable[[CompactionResult], None] | None
                           ) -> list[CompactionResult]:
    """Delta's ``optimize.compact`` on each date partition (one commit each)."""
    from lakestream.lake.delta import DeltaDataset
    from lakestream.lake.delta_maintenance import (
        compact_partition,
        partition_columns,
        partition_files,
    )

    table = DeltaDataset(storage, dataset)
    columns = partition_columns(table)
    results = []
    for values in sorted(partition_files(table)):
        folder = "/".join(f"{c}={v}" for c, v in zip(columns, values, strict=True))
        date = parse_date_partition(f"{dataset}/{folder}")
        if day is not None and (date is None or date.isoformat() != day):
            continue
        done = compact_partition(table, values, target, dry_run)
        if done is None:
            continue
        result = CompactionResult(dataset, date.isoformat() if date else folder,
                                  done.files_before, done.files_after, len(done.rewritten),
                                  done.bytes_before, done.bytes_after, done.records,
                                  "dry-run" if dry_run else "delta")
        result.rewritten = [f"{dataset}/{p}" for p in done.rewritten]
        result.version = done.version
        results.append(result)
        if on_day:
            on_day(result)
    return results
