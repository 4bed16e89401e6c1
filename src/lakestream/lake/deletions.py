"""What retention removed from a ledger-tracked dataset: ``<dataset>/_retention.json``.

The ledger's manifests carry running totals per Kafka partition (records,
bytes, files, records per date), and every new batch carries them forward. So
deleting date partitions cannot be undone in the manifests: retention records
what it removed here instead, and :func:`lakestream.lake.metadata.rebuild_metadata`
subtracts it. A late event that lands in a deleted day later counts again,
because only what was removed is subtracted.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from lakestream.lake.storage import Storage

RETENTION_FILE = "_retention.json"
_RUNS_KEPT = 100


@dataclass
class Removed:
    """Totals removed from a dataset by retention, over all runs."""

    records: int = 0
    rejected: int = 0
    bytes: int = 0
    files: int = 0
    dates: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def plus(self, other: Removed, at: str) -> Removed:
        """These totals with ``other`` (one run's deletions) added and the run noted."""
        dates = dict(self.dates)
        for day, n in other.dates.items():
            dates[day] = dates.get(day, 0) + n
        run = {"at": at, "records": other.records, "rejected": other.rejected,
               "bytes": other.bytes, "files": other.files, "dates": len(other.dates)}
        return Removed(self.records + other.records, self.rejected + other.rejected,
                       self.bytes + other.bytes, self.files + other.files, dates,
                       [*self.runs, run][-_RUNS_KEPT:])

    def subtract(self, totals: dict[str, int], dates: dict[str, int]) -> dict[str, int]:
        """Remove these deletions from ledger ``totals`` and ``dates`` (in place for dates).

        Args:
            totals: ``records``, ``rejected``, ``bytes``, ``files`` summed from the ledger.
            dates: Records per ``YYYY-MM-DD`` from the ledger; emptied days are dropped.

        Returns:
            The adjusted totals (never below zero).
        """
        for day, n in self.dates.items():
            left = dates.get(day, 0) - n
            if left > 0:
                dates[day] = left
            else:
                dates.pop(day, None)
        removed = {"records": self.records, "rejected": self.rejected, "bytes": self.bytes,
                   "files": self.files}
        return {k: max(0, v - removed.get(k, 0)) for k, v in totals.items()}

    def summary(self) -> dict[str, Any]:
        """What ``_metadata.json`` shows under ``retention``."""
        return {"removed_records": self.records, "removed_rejected": self.rejected,
                "removed_bytes": self.bytes, "removed_files": self.files,
                "last_run": self.runs[-1]["at"] if self.runs else None}


def read_removed(storage: Storage, dataset: str) -> Removed:
    """What retention removed from ``dataset`` so far (nothing when it never ran)."""
    try:
        data = json.loads(storage.read(f"{dataset}/{RETENTION_FILE}"))
    except (FileNotFoundError, ValueError):
        return Removed()
    return Removed(**data) if isinstance(data, dict) else Removed()


def record_removed(storage: Storage, dataset: str, run: Removed) -> Removed:
    """Add one run's deletions to ``<dataset>/_retention.json`` (atomically) and return all."""
    at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    total = read_removed(storage, dataset).plus(run, at)
    storage.write_atomic(f"{dataset}/{RETENTION_FILE}", json.dumps(asdict(total)).encode())
    return total
