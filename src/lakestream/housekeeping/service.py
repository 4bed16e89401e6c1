"""Reports, compaction and feed deletion over the datasets of the feed registry.

Each method is one user-facing operation (``lakestream metadata report``,
``lakestream compact``, ``lakestream feeds delete``); the facade hands them out
as part of its batch side (``api.batch``, :class:`lakestream.batchload.batch.BatchService`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from lakestream.errors import FeedError, UsageError
from lakestream.feeds import Feed, FeedRegistry
from lakestream.lake.compaction import TARGET_BYTES, CompactionResult, compact_dataset
from lakestream.lake.layout import STAGING, TABLES, dlq_path
from lakestream.lake.reader import Dataset
from lakestream.lake.report import LakeReport, lake_report
from lakestream.lake.storage import Storage


@dataclass
class FeedData:
    """What the lake holds of one feed (its dataset and its dead letters)."""

    files: int
    bytes: int

    @property
    def empty(self) -> bool:
        """No file at all."""
        return self.files == 0


class Housekeeping:
    """Reports, compaction and feed deletion over one lake and one feed registry.

    Args:
        storage: The lake.
        registry: The feed registry.
    """

    def __init__(self, storage: Storage, registry: FeedRegistry) -> None:
        self.storage = storage
        self.registry = registry

    # -- reports ----------------------------------------------------------------------------

    def report(self, on_dataset: Callable[[int], None] | None = None) -> LakeReport:
        """Statistics of every dataset (registered feeds without data included)."""
        expected = [Dataset(f.name, f.dataset, f.layer) for f in self.registry]
        return lake_report(self.storage, expected, on_dataset)

    def dataset_count(self) -> int:
        """How many datasets a report covers (for a progress bar)."""
        from lakestream.lake.reader import discover

        paths = {d.path for d in discover(self.storage)} | {f.dataset for f in self.registry}
        return len(paths)

    # -- compaction -------------------------------------------------------------------------

    def compaction_feeds(self, feed: str | None) -> list[Feed]:
        """The stream feeds a compaction covers (one named feed, or all of them)."""
        if feed is not None:
            chosen = self.registry.get(feed)
            if chosen.layer == TABLES:
                raise UsageError(f"'{feed}' is a table: its versions are one file each already")
            return [chosen]
        return [f for f in self.registry if f.layer != TABLES]

    def compact(self, feed: str | None = None, day: dt.date | None = None,
                target_bytes: int = TARGET_BYTES, dry_run: bool = False,
                on_feed: Callable[[int], None] | None = None) -> list[CompactionResult]:
        """Merge small files of date partitions into files near ``target_bytes``."""
        results: list[CompactionResult] = []
        for chosen in self.compaction_feeds(feed):
            results += compact_dataset(self.storage, chosen.dataset,
                                       day.isoformat() if day else None, target_bytes, dry_run)
            if on_feed:
                on_feed(1)
        return results

    # -- feeds that hold data ---------------------------------------------------------------

    def feed_data(self, name: str) -> FeedData:
        """Files and bytes the lake holds for a feed (active, archived or built-in)."""
        dataset = self._dataset_of(name)
        files = [f for prefix in (dataset, dlq_path(name))
                 for f in self.storage.list_files(prefix) if f.path.endswith(".parquet")]
        return FeedData(len(files), sum(f.size for f in files))

    def delete_feed(self, name: str, purge: bool = False) -> FeedData:
        """Delete a feed's definition; its data too with ``purge`` (refused otherwise).

        Raises:
            FeedError: The lake still holds data of the feed and ``purge`` is off.
        """
        held = self.feed_data(name)
        if not held.empty and not purge:
            raise FeedError(
                f"feed '{name}' still has {held.files} file(s), {held.bytes:,} bytes in the lake",
                f"archive it to keep the data (lakestream feeds archive {name}), or delete "
                f"the data too: lakestream feeds delete {name} --purge")
        dataset = self._dataset_of(name)
        self.registry.remove(name)
        if purge:
            for prefix in (dataset, dlq_path(name), f"{STAGING}/{dataset.replace('/', '__')}"):
                self.storage.delete_dir(prefix)
        return held

    def _dataset_of(self, name: str) -> str:
        archived = self.registry.archived()
        if name in archived:
            from lakestream.feeds import load_feed_file

            return load_feed_file(archived[name]).dataset
        return self.registry.get(name).dataset
