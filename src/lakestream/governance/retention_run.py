"""Retention, part two: delete exactly what a plan lists, and keep the metadata right.

Every dataset of the lake is a Delta table: its planned partitions leave the
snapshot in ONE delete commit (readers see all of them or none gone), then
the plan's vacuum list is deleted from storage (only files no snapshot of the
grace period refers to), folders left empty are removed, and
``_metadata.json`` is rewritten from the log. Nothing is recorded beside the
log: it is the truth. Gold rows are deleted in the gold store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lakestream.feeds import Feed
from lakestream.governance.catalog import view_name
from lakestream.governance.gold_retention import GoldRetention
from lakestream.governance.retention import Deletion, RetentionPlan, VacuumPlan
from lakestream.lake.delta import DeltaDataset, is_delta_table
from lakestream.lake.delta_maintenance import Partition, delete_partitions, vacuum_files
from lakestream.lake.delta_metadata import delta_metadata
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
    removed: tuple[str, ...] = ()
    """Delta: the files the delete commit removed from the snapshot (lake-relative)."""
    vacuumed: tuple[str, ...] = ()
    """Delta: the files deleted from storage (lake-relative)."""

    def detail(self) -> dict[str, Any]:
        """The audit detail."""
        detail = {"layer": self.layer, "path": self.dataset, "partitions": self.partitions,
                  "files": self.files, "bytes": self.bytes, "rows": self.rows,
                  "first": self.first, "last": self.last}
        if self.vacuumed:
            detail["vacuumed_files"] = len(self.vacuumed)
        return detail

    @property
    def view(self) -> str:
        """The dataset's view name (or the gold table)."""
        return self.dataset if self.layer == "gold" else view_name(self.dataset)


class RetentionExecutor:
    """Carries out a :class:`RetentionPlan`.

    Args:
        storage: The lake.
        feeds: The feed registry (their ``_metadata.json`` is rewritten from the log).
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
        vacuums = {v.dataset: v for v in plan.vacuum}
        outcomes = []
        for (layer, dataset), deletions in groups.items():
            if layer != "gold":
                outcomes.append(self._delta_run(deletions, vacuums.pop(dataset, None),
                                                 plan.grace_hours))
                continue
            assert self.gold is not None
            rows = sum(self.gold.delete(d) for d in deletions)
            outcomes.append(_outcome(deletions, rows))
            log.info("retention: gold %s: %d row(s) deleted", dataset, rows)
        for vacuum in vacuums.values():  # datasets with nothing old, only files to vacuum
            outcomes.append(self._delta_run([], vacuum, plan.grace_hours))
        self._delta_metadata(plan)
        return outcomes

    def _delta_run(self, deletions: list[Deletion], vacuum: VacuumPlan | None,
                   grace_hours: int) -> DatasetOutcome:
        """One delete commit of the planned partitions, then the planned vacuum."""
        first = deletions[0] if deletions else None
        assert first is not None or vacuum is not None
        dataset = first.dataset if first else vacuum.dataset  # type: ignore[union-attr]
        table = DeltaDataset(self.storage, dataset)
        planned = {_values(d.partition): [f[len(dataset) + 1:] for f in d.files]
                   for d in deletions}
        done = delete_partitions(table, planned) if planned else None
        vacuumed: list[str] = []
        if vacuum is not None:
            gone = vacuum_files(table, [f[len(dataset) + 1:] for f in vacuum.files],
                                grace_hours)
            vacuumed = [f"{dataset}/{f}" for f in gone]
            for folder in sorted({f.rsplit("/", 1)[0] for f in vacuumed}, reverse=True):
                self._remove_empty(folder, dataset)
        kept = {_name(table, p) for p in done.partitions} if done else set()
        went = [d for d in deletions if d.partition in kept]
        dates = sorted(d.date or d.partition for d in went)
        log.info("retention: %s: %d partition(s) removed in one commit (%d file(s), %d row(s)), "
                 "%d file(s) vacuumed", dataset, len(went), len(done.files) if done else 0,
                 done.records if done else 0, len(vacuumed))
        return DatasetOutcome(
            (first or vacuum).feed, (first or vacuum).layer, dataset,  # type: ignore[union-attr]
            len(went), len(done.files) if done else 0, done.bytes if done else 0,
            done.records if done else 0, dates[0] if dates else None,
            dates[-1] if dates else None,
            tuple(f"{dataset}/{f}" for f in done.files) if done else (), tuple(vacuumed))

    def _delta_metadata(self, plan: RetentionPlan) -> None:
        """Rewrite ``_metadata.json`` of the feeds whose data lost partitions."""
        from lakestream.lake.table_versions import write_delta_metadata

        touched = {(d.feed, d.layer == "tables") for d in plan.deletions
                   if d.layer in ("streams", "bronze", "dlq", "tables")}
        for name, table in sorted(touched):
            feed = self.feeds.get(name)
            if feed is None or not is_delta_table(self.storage, feed.dataset):
                continue
            if table:
                write_delta_metadata(self.storage, feed.name, feed.dataset, feed.topic,
                                     feed.layer, feed.key)
            else:
                delta_metadata(self.storage, feed)

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


def _outcome(deletions: list[Deletion], rows: int) -> DatasetOutcome:
    first = deletions[0]
    dates = sorted(d.date or d.partition for d in deletions)
    return DatasetOutcome(first.feed, first.layer, first.dataset, len(deletions),
                          sum(len(d.files) for d in deletions), sum(d.bytes for d in deletions),
                          rows, dates[0], dates[-1])


def _values(partition: str) -> Partition:
    """``year=2025/month=01/day=03`` → ``("2025", "01", "03")``."""
    return tuple(p.split("=", 1)[1] for p in partition.split("/"))


def _name(table: DeltaDataset, values: Partition) -> str:
    from lakestream.lake.delta_maintenance import partition_columns

    return "/".join(f"{c}={v}" for c, v in zip(partition_columns(table), values, strict=True))
