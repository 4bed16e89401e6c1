"""The live files of a dataset, whatever protocol decides them.

A Delta dataset's live files are its snapshot's add actions (the log decides,
every reader agrees); a dataset written before the move to Delta still
follows its day manifests (``lake/swap.py``) until ``lakestream lake upgrade``
turns it into a Delta table.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from lakestream.lake.delta import DeltaDataset, is_delta_table
from lakestream.lake.storage import FileInfo, Storage
from lakestream.lake.swap import visible_files


def dataset_root(prefix: str) -> str:
    """The dataset folder (``area/name``) that ``prefix`` lies in."""
    return "/".join(prefix.strip("/").split("/")[:2])


def live_files(storage: Storage, prefix: str) -> list[FileInfo]:
    """The live files below ``prefix`` (a dataset folder or a partition folder in one)."""
    root = dataset_root(prefix)
    if not is_delta_table(storage, root):
        return visible_files(storage, prefix)
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
