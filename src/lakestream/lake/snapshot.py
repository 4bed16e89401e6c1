"""The live files of a dataset: its Delta snapshot's add actions (the log decides, every
reader agrees).

A dataset written before Lakestream kept the lake as Delta tables (files, no
log) is refused with the hint to run ``lakestream lake upgrade``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as pads

from lakestream.lake.delta import DeltaDataset, check_not_legacy, delta_errors, is_delta_table
from lakestream.lake.storage import FileInfo, Storage


def dataset_root(prefix: str) -> str:
    """The dataset folder (``area/name``) that ``prefix`` lies in."""
    return "/".join(prefix.strip("/").split("/")[:2])


def live_files(storage: Storage, prefix: str) -> list[FileInfo]:
    """The live files below ``prefix`` (a dataset folder or a partition folder in one); none
    for a dataset not written yet.

    Raises:
        ConfigError: The dataset was written before the lake was kept as Delta tables.
    """
    root = dataset_root(prefix)
    if not is_delta_table(storage, root):
        check_not_legacy(storage, root)
        return []
    return delta_files(DeltaDataset(storage, root), prefix)


def delta_files(dataset: DeltaDataset, prefix: str | None = None) -> list[FileInfo]:
    """The snapshot's data files below ``prefix`` (default: all), with their row counts."""
    table = dataset.table()
    if table is None:
        return []
    with delta_errors(f"read the log of {dataset.uri}"):
        actions = pa.table(table.get_add_actions(flatten=False))
    inside = (prefix or dataset.rel).strip("/") + "/"
    found = []
    for path, size, mtime, records in zip(
            actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(),
            actions.column("modification_time").to_pylist(),
            actions.column("num_records").to_pylist(), strict=True):
        rel = f"{dataset.rel}/{unquote(path)}"
        if rel.startswith(inside):
            found.append(FileInfo(rel, int(size), _seconds(mtime), None if records is None
                                  else int(records)))
    return sorted(found, key=lambda f: f.path)


def _seconds(mtime: Any) -> float:
    """An add action's modification time (a datetime, or epoch milliseconds) in epoch s."""
    if hasattr(mtime, "timestamp"):
        return float(mtime.timestamp())
    return float(mtime or 0) / 1000


def snapshot_dataset(storage: Storage, table: Any,
                     missing: Collection[str] = ()) -> pads.Dataset:
    """A pyarrow dataset over exactly the files of ``table``'s snapshot (the version it was
    loaded at), with the table's schema; partition columns (strings) from the folders.

    Not ``DeltaTable.to_pyarrow_dataset``: with deltalake 1.6.6 a process that read
    through it aborts at exit most of the time ("terminate called without an active
    exception", 18 of 20 runs of a two-line script here), which turns a command that
    did its work into exit 134. Reading the same files with pyarrow's own filesystem
    does not. Files whose path ends with one of ``missing`` (live in the log, lost on
    storage) are left out.
    """
    schema = pa.schema(table.schema().to_arrow())
    paths = [_storage_path(uri) for uri in table.file_uris()]
    files = [p for p in paths if not any(p.endswith(m) for m in missing)]
    if not files:
        return pads.dataset(schema.empty_table())
    columns = list(table.metadata().partition_columns)
    partitioning = pads.partitioning(pa.schema([schema.field(c) for c in columns]),
                                     flavor="hive") if columns else None
    base = _storage_path(table.table_uri).rstrip("/")
    return pads.dataset(files, schema=schema, format="parquet", filesystem=storage.fs,
                        partitioning=partitioning, partition_base_dir=base)


def _storage_path(uri: str) -> str:
    """A file URI of the log (``/abs/path``, ``file:///…``, ``s3://bucket/key``) as a path
    of the lake's pyarrow filesystem (``/abs/path``, ``bucket/key``)."""
    for scheme in ("file://", "s3://", "s3a://"):
        if uri.startswith(scheme):
            return unquote(uri[len(scheme):])
    return unquote(uri)
