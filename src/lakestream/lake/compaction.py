"""Merge a date partition's small files into files near a target size, in one commit.

A streaming ingest commits a file per Kafka partition per flush, so a busy
day collects thousands of small files, and every engine reads small files
slowly. Compaction rewrites them into files of about ``target_bytes``
(128 MiB by default) with Delta's own ``optimize.compact``, one commit per
day partition (:func:`lakestream.lake.delta_maintenance.compact_partition`):
a reader sees the small files or the merged ones, never both, never neither.
The files it replaces stay on disk until ``vacuum`` (retention).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from lakestream.lake.layout import parse_date_partition
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)

TARGET_BYTES = 128 * 1024 * 1024


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
    """The files (lake-relative) the compaction replaces."""
    version: int | None = None
    """The table version of the compaction's commit."""


def compact_dataset(storage: Storage, dataset: str, day: str | None = None,
                    target: int = TARGET_BYTES, dry_run: bool = False,
                    on_day: Callable[[CompactionResult], None] | None = None
                    ) -> list[CompactionResult]:
    """Compact every date partition of ``dataset`` (or only ``day``, ``YYYY-MM-DD``).

    Raises:
        ConfigError: ``dataset`` was written before the lake was kept as Delta tables.
    """
    from lakestream.lake.delta import DeltaDataset, check_not_legacy, is_delta_table
    from lakestream.lake.delta_maintenance import (
        compact_partition,
        partition_columns,
        partition_files,
    )

    storage.check_root()  # a refused or missing bucket: one clear error, first
    check_not_legacy(storage, dataset)
    if not is_delta_table(storage, dataset):
        return []  # nothing written yet
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
        log.info("compacted %s %s: %d files -> %d", dataset, result.date, result.files_before,
                 result.files_after)
        if on_day:
            on_day(result)
    return results
