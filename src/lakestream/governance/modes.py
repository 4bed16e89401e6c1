"""File modes of a local lake by sensitivity (docs/governance.md): restricted 0750, shared 0755.

The mode of a dataset's folder is what gates other local users: without the
execute bit nobody else can reach the files below, whatever their own modes.
So the dataset folder and every folder below it get 0750 (restricted) or 0755
(shared), files 0640 / 0644; the area folders (``streams/``, ``tables/`` ...)
get 0755 so shared datasets stay reachable, and ``_staging/`` (batches in
flight, any feed) gets 0750. S3 lakes have no modes: use bucket policies.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lakestream.feeds import Feed
from lakestream.governance.catalog import DatasetInfo
from lakestream.lake.layout import DLQ, STAGING, STREAMS, TABLES
from lakestream.lake.storage import Storage, storage_errors

DIR_MODES = {"restricted": 0o750, "shared": 0o755}
FILE_MODES = {"restricted": 0o640, "shared": 0o644}
_AREAS = (STREAMS, TABLES, "bronze", "silver", "gold", DLQ)


@dataclass(frozen=True)
class ModeChange:
    """One dataset folder brought to its mode."""

    dataset: str
    path: str
    mode: str
    changed: int


def apply_modes(storage: Storage, datasets: Iterable[DatasetInfo]) -> list[ModeChange]:
    """Give every existing dataset folder of a local lake the mode of its sensitivity.

    Returns:
        One entry per dataset folder found (``changed`` counts entries whose mode
        changed); empty for an S3 lake.
    """
    if not storage.is_local:
        return []
    root = Path(storage.base)
    for area in _AREAS:
        _chmod(root / area, 0o755)
    _chmod(root / STAGING, 0o750)
    changes = []
    for info in sorted(datasets, key=lambda d: d.path):
        folder = root / info.path
        if folder.is_dir():
            changed = _chmod_tree(folder, DIR_MODES[info.sensitivity], FILE_MODES[info.sensitivity])
            changes.append(ModeChange(info.name, str(folder),
                                      oct(DIR_MODES[info.sensitivity])[2:].zfill(4), changed))
    return changes


def prepare_feed_folders(storage: Storage, feeds: Iterable[Feed]) -> None:
    """Create missing dataset and dead-letter folders of ``feeds`` with their modes.

    Called before ingest writes, so a dataset is never readable by others even for
    the moment between its first file and ``permissions apply-modes``.
    """
    if not storage.is_local:
        return
    root = Path(storage.base)
    for feed in feeds:
        for rel, sensitivity in ((feed.dataset, feed.sensitivity), (f"{DLQ}/{feed.name}",
                                                                    "restricted")):
            folder = root / rel
            if not folder.exists():
                with storage_errors(f"create {storage.url(rel)}"):
                    folder.mkdir(parents=True, exist_ok=True)
                    _chmod(folder.parent, 0o755)
                    _chmod(folder, DIR_MODES[sensitivity])


def _chmod_tree(folder: Path, dir_mode: int, file_mode: int) -> int:
    changed = int(_chmod(folder, dir_mode))
    for parent, dirs, files in os.walk(folder):
        changed += sum(_chmod(Path(parent, d), dir_mode) for d in dirs)
        changed += sum(_chmod(Path(parent, f), file_mode) for f in files)
    return changed


def _chmod(path: Path, mode: int) -> bool:
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(path.lstat().st_mode) or current == mode:
        return False
    path.chmod(mode)
    return True
