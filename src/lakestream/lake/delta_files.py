"""Data files written by Lakestream itself and committed as explicit Delta actions.

A day rebuild (``rebuild/delta.py``) and a dead-letter replay
(``ingest/replay.py``) write their files once and then commit them, with the
removal of the files they replace, as one transaction that may be retried on a
newer log without writing anything again (:func:`replace_files`). delta-rs commits
such files through ``create_write_transaction`` from :class:`AddAction` s that
carry the statistics every Delta reader uses to skip files; this module writes
the Parquet files and reads those statistics back from each file's footer, as
delta-rs itself collects them: row count, and per leaf column (structs nested,
lists, maps and binaries left out) the minimum, maximum and null count.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakestream.errors import StorageConflictError
from lakestream.lake.delta import COMMIT_ATTEMPTS, DeltaDataset, OffsetRange, delta_errors
from lakestream.lake.storage import Storage
from lakestream.lake.writer import parquet_bytes

log = logging.getLogger(__name__)

ROWS_PER_FILE = 1_000_000


def write_files(storage: Storage, rel: str, partition: Mapping[str, str], table: pa.Table,
                rows_per_file: int = ROWS_PER_FILE) -> list[Any]:
    """Write ``table`` (without its partition columns) as files of one partition of the
    Delta table at ``rel``; their add actions (nothing is committed)."""
    from deltalake.transaction import AddAction

    table = table.drop_columns([c for c in partition if c in table.column_names])
    folder = "/".join(f"{k}={v}" for k, v in partition.items())
    actions = []
    for at in range(0, table.num_rows, rows_per_file):
        data = parquet_bytes(table.slice(at, rows_per_file))
        path = f"{folder}/part-{uuid.uuid4()}-rebuild.snappy.parquet"
        storage.write_atomic(f"{rel}/{path}", memoryview(data))
        stats = file_stats(pq.ParquetFile(pa.BufferReader(data)).metadata)
        actions.append(AddAction(path, data.size, dict(partition), int(time.time() * 1000),
                                 True, json.dumps(stats)))
    return actions


def file_stats(meta: pq.FileMetaData) -> dict[str, Any]:
    """The Delta ``stats`` of one Parquet file, from its footer."""
    arrow = meta.schema.to_arrow_schema()
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, Any] = {}
    for j in range(meta.num_columns):
        path = meta.schema.column(j).path.split(".")
        kind = _leaf_type(arrow, path)
        if kind is None:
            continue
        low, high, missing = _column_bounds(meta, j)
        _put(nulls, path, missing)
        if low is not None and high is not None:
            _put(mins, path, _json_value(low, kind, up=False))
            _put(maxs, path, _json_value(high, kind, up=True))
    return {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs,
            "nullCount": nulls}


def _leaf_type(schema: pa.Schema, path: Sequence[str]) -> pa.DataType | None:
    """The Arrow type of a leaf reached through structs only (``None``: no statistics)."""
    kind: pa.DataType = schema.field(path[0]).type
    for name in path[1:]:
        if not pa.types.is_struct(kind):
            return None
        kind = kind.field(name).type
    if (pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
            or pa.types.is_fixed_size_binary(kind) or pa.types.is_null(kind)):
        return None
    return kind


def _column_bounds(meta: pq.FileMetaData, column: int) -> tuple[Any, Any, int]:
    low = high = None
    missing, complete = 0, True
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is None:
            return None, None, 0
        missing += stats.null_count or 0
        if not stats.has_min_max:
            complete = complete and stats.num_values == 0
            continue
        low = stats.min if low is None else min(low, stats.min)
        high = stats.max if high is None else max(high, stats.max)
    return (low, high, missing) if complete else (None, None, missing)


def _json_value(value: Any, kind: pa.DataType, up: bool) -> Any:
    """A statistic as Delta writes it (timestamps to the millisecond, widened outward)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        ms = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if up and ms != value:
            ms += dt.timedelta(milliseconds=1)
        return ms.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _put(into: dict[str, Any], path: Sequence[str], value: Any) -> None:
    if value is None:
        return
    for name in path[:-1]:
        into = into.setdefault(name, {})
    into[path[-1]] = value


def remove_actions(files: pa.Table) -> list[Any]:
    """Remove actions of a snapshot's files (``get_add_actions(flatten=True)`` rows)."""
    from deltalake.transaction import RemoveAction

    now = int(time.time() * 1000)
    parts = [c for c in files.column_names if c.startswith("partition.")]
    out = []
    for row in files.select(["path", "size_bytes", *parts]).to_pylist():
        values = {c.removeprefix("partition."): row[c] for c in parts}
        out.append(RemoveAction(row["path"], True, now, row["size_bytes"], values))
    return out


class FilesGone(Exception):
    """A file a replacement removes was removed by another commit meanwhile: plan again."""


def replace_files(dataset: DeltaDataset, removed: pa.Table, adds: Sequence[Any],
                  metadata: Mapping[str, str], ranges: Sequence[OffsetRange] = ()) -> int | None:
    """Remove ``removed`` (snapshot rows of :func:`remove_actions`) and add ``adds`` in one
    commit; the new version (``None``: nothing to do).

    The commit lands only while every removed file is still live: one that another
    commit removed meanwhile (a compaction, another replacement) raises
    :class:`FilesGone` and nothing is committed. Commits that only added files
    in between are kept (the commit is retried on top of them; ``adds`` are
    written once). ``ranges`` are application transactions fenced as
    :meth:`DeltaDataset.append` fences them.

    Raises:
        FilesGone: A removed file is no longer live.
        FencedError: An application transaction of ``ranges`` moved.
    """
    from deltalake import CommitProperties, Transaction
    from deltalake.exceptions import CommitFailedError

    removes = remove_actions(removed)
    if not adds and not removes:
        return None
    replaced = set(removed.column("path").to_pylist())
    props = CommitProperties(max_commit_retries=0, custom_metadata=dict(metadata),
                             app_transactions=[Transaction(r.app_id, r.last) for r in ranges]
                             or None)
    for attempt in range(COMMIT_ATTEMPTS):
        table = dataset.table()
        dataset.check_fence(table, ranges)
        with delta_errors(f"read the log of {dataset.uri}", dataset.uri):
            live = set(pa.table(table.get_add_actions(flatten=True)).column("path")
                       .to_pylist())
        if not replaced <= live:
            raise FilesGone(f"{len(replaced - live)} of the files it replaces were removed "
                            "meanwhile")
        try:
            with delta_errors(f"commit to {dataset.uri}", dataset.uri):
                table.create_write_transaction([*adds, *removes], mode="append",
                                               schema=table.schema(),
                                               partition_by=dataset.partition_by or None,
                                               commit_properties=props)
        except CommitFailedError as exc:
            log.debug("%s: replacement raced (%s), attempt %d", dataset.uri, exc, attempt + 1)
            time.sleep(min(0.01 * 2 ** attempt, 0.5))
            continue
        return int(dataset.table().version())
    raise StorageConflictError(f"{dataset.uri}: {COMMIT_ATTEMPTS} commits in a row lost the "
                               "race for the next log version",
                               "retry; is something rewriting the table?", dataset=dataset.uri)
