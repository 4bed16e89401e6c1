"""The live files of a dataset: its Delta snapshot's add actions (the log decides, every
reader agrees).

A dataset written before Lakestream kept the lake as Delta tables (files, no
log) is refused with the hint to run ``lakestream lake upgrade``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from lakestream.lake.delta import DeltaDataset, check_not_legacy, is_delta_table
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
