"""Retention, part two: delete exactly what a plan lists, and keep the metadata right.

Per dataset, in order: delete the planned files one by one (never a whole
folder, so a file that arrived after planning stays), remove the folders left
empty, then bring ``_metadata.json`` up to date:

- streams/bronze (and their dead letters) are ledger-tracked: the run adds
  what it removed to ``<dataset>/_retention.json`` and rebuilds the metadata
  from the ledger, which subtracts it (:mod:`lakestream.lake.deletions`);
- tables: the removed versions leave the ``versions`` list;
- other datasets (silver): removed partitions leave ``partitions`` and the
  totals shrink, when the metadata has them.

A crash between the deletions and the metadata update leaves the metadata
overstating what the lake holds until the next ingest flush rebuilds it (the
deletion record is then missing: totals stay high by what that run removed).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lakestream.feeds import Feed
from lakestream.governance.catalog import view_name
from lakestream.governance.gold_retention import GoldRetention
from lakestream.governance.retention import Deletion, RetentionPlan
from lakestream.lake.deletions import Removed, record_removed
from lakestream.lake.layout import DLQ, LEDGER, METADATA
from lakestream.lake.metadata import read_metadata, rebuild_metadata
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetOutcome:
    """What one run removed from one dataset (one audit row)."""

    feed: str
    layer: str
    dataset: str
    partitions: int
    files: int
    bytes: int
    rows: int
    first: str | None
    last: str | None

    def detail(self) -> dict[str, Any]:
        """The audit detail."""
        return {"layer": self.layer, "path": self.dataset, "partitions": self.partitions,
                "files": self.files, "bytes": self.bytes, "rows": self.rows,
                "first": self.first, "last": self.last}

    @property
    def view(self) -> str:
        """The dataset's view name (or the gold table)."""
        return self.dataset if self.layer == "gold" else view_name(self.dataset)


class RetentionExecutor:
    """Carries out a :class:`RetentionPlan`.

    Args:
        storage: The lake.
        feeds: The feed registry (ledger-tracked datasets are rebuilt from it).
        gold: The gold store's retention, when the plan has gold rows.
    """

    def __init__(self, storage: Storage, feeds: Iterable[Feed],
                 gold: GoldRetention | None = None) -> None:
        self.storage = storage
        self.feeds = {f.name: f for f in feeds}
        self.gold = gold

    def run(self, plan: RetentionPlan) -> list[DatasetOutcome]:
        """Delete everything ``plan`` lists; one outcome per dataset touched."""
        groups: dict[tuple[str, str], list[Deletion]] = {}
        for d in plan.deletions:
            groups.setdefault((d.layer, d.dataset), []).append(d)
        outcomes = []
        for (layer, dataset), deletions in groups.items():
            rows = self._delete(layer, deletions)
            outcomes.append(_outcome(deletions, rows))
            log.info("retention: %s %s: %d partition(s), %d file(s), %d row(s) deleted",
                     layer, dataset, len(deletions), sum(len(d.files) for d in deletions), rows)
        self._update_metadata(plan.deletions)
        return outcomes

    def _delete(self, layer: str, deletions: list[Deletion]) -> int:
        if layer == "gold":
            assert self.gold is not None
            return sum(self.gold.delete(d) for d in deletions)
        for d in deletions:
            for path in d.files:
                self.storage.delete(path)
            self._remove_empty(f"{d.dataset}/{d.partition}", d.dataset)
        return sum(d.rows for d in deletions)

    def _remove_empty(self, folder: str, stop: str) -> None:
        """Remove ``folder`` and its parents up to ``stop`` (exclusive) while they are empty."""
        while folder != stop and folder.startswith(stop + "/"):
            if self.storage.is_local:
                try:
                    os.rmdir(self.storage.full(folder))
                except FileNotFoundError:
                    pass
                except OSError:
                    return  # not empty: something arrived after planning, or a sibling
            elif self.storage.list_files(folder):
                return
            else:
                self.storage.delete_dir(folder)
            folder = folder.rsplit("/", 1)[0]

    def _update_metadata(self, deletions: list[Deletion]) -> None:
        by_feed: dict[str, list[Deletion]] = {}
        for d in deletions:
            if d.layer in ("streams", "bronze", "dlq"):
                by_feed.setdefault(d.feed, []).append(d)
            elif d.layer == "tables":
                self._drop_version(d)
            elif d.layer == "silver":
                _patch_partitions(self.storage, d)
        for name, gone in by_feed.items():
            feed = self.feeds[name]
            if self.storage.list_files(f"{feed.dataset}/{LEDGER}"):
                record_removed(self.storage, feed.dataset, _removed(gone))
                rebuild_metadata(self.storage, feed)
            else:
                for d in gone:
                    if d.layer != "dlq":
                        _patch_partitions(self.storage, d)

    def _drop_version(self, d: Deletion) -> None:
        meta = read_metadata(self.storage, d.dataset)
        if not meta or not isinstance(meta.get("versions"), list):
            return
        name = d.partition.removeprefix("version=")
        meta["versions"] = [v for v in meta["versions"] if v.get("version") != name]
        meta["files"] = len(meta["versions"])
        self.storage.write_atomic(f"{d.dataset}/{METADATA}", json.dumps(meta, indent=2).encode())


def _removed(deletions: list[Deletion]) -> Removed:
    """The ledger adjustment of one feed's deleted data and dead-letter partitions."""
    removed = Removed()
    for d in deletions:
        parquet = sum(1 for f in d.files if f.endswith(".parquet"))
        removed.files += parquet
        removed.bytes += d.bytes
        if d.dataset.startswith(f"{DLQ}/"):
            removed.rejected += d.rows
        elif d.date is not None:
            removed.records += d.rows
            removed.dates[d.date] = removed.dates.get(d.date, 0) + d.rows
    return removed


def _patch_partitions(storage: Storage, d: Deletion) -> None:
    """Drop a deleted partition from a metadata file that is not rebuilt from a ledger."""
    meta = read_metadata(storage, d.dataset)
    if not meta or not isinstance(meta.get("partitions"), list):
        return
    prefix = d.partition.replace("year=", "").replace("/month=", "-").replace("/day=", "-")
    kept = [p for p in meta["partitions"]
            if not str(p.get("date") or p.get("partition") or "").startswith(prefix)]
    if len(kept) == len(meta["partitions"]):
        return
    meta["partitions"] = kept
    for key, amount in (("records", d.rows), ("bytes", d.bytes), ("files", len(d.files))):
        if isinstance(meta.get(key), int):
            meta[key] = max(0, meta[key] - amount)
    storage.write_atomic(f"{d.dataset}/{METADATA}", json.dumps(meta, indent=2).encode())


def _outcome(deletions: list[Deletion], rows: int) -> DatasetOutcome:
    first = deletions[0]
    dates = sorted(d.date or d.partition for d in deletions)
    return DatasetOutcome(first.feed, first.layer, first.dataset, len(deletions),
                          sum(len(d.files) for d in deletions), sum(d.bytes for d in deletions),
                          rows, dates[0], dates[-1])
