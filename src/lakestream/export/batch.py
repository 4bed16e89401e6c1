"""The batch side of Lakestream in one object: export, metadata, compaction, feed deletion.

The facade (``api.Lakestream.batch``) hands this to the CLI; each method is one
user-facing operation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lakestream.config import Settings
from lakestream.errors import FeedError, UsageError
from lakestream.export import beam
from lakestream.export.service import ExportResult, ExportService, Runner, Source
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


class BatchService:
    """Batch operations over one lake and one feed registry.

    Args:
        settings: The configuration.
        storage: The lake.
        registry: The feed registry.
        bootstrap: Returns the Kafka bootstrap servers (only called when Kafka is needed).
    """

    def __init__(self, settings: Settings, storage: Storage, registry: FeedRegistry,
                 bootstrap: Callable[[], str]) -> None:
        self.settings = settings
        self.storage = storage
        self.registry = registry
        self.exports = ExportService(settings, storage, registry, bootstrap)

    # -- export -----------------------------------------------------------------------------

    def export(self, everything: bool = False, stream: str | None = None,
               table: str | None = None, day: dt.date | None = None,
               pipeline: str | None = None, source: Source = "auto",
               on_feed: Callable[[int], None] | None = None,
               idle_timeout_s: float | None = None, runner: Runner = "builtin",
               beam_options: Sequence[str] = ()) -> list[ExportResult]:
        """``lakestream export --all | --stream S [--date D] | --table T``.

        ``idle_timeout_s``: a stream append stops once nothing arrived for this long.
        ``runner``: ``beam`` runs stream appends as an Apache Beam pipeline with
        ``beam_options`` (``KEY=VALUE``); tables and day rebuilds run as usual.
        """
        if idle_timeout_s is not None:
            self.exports.idle_timeout_s = idle_timeout_s
        if sum(x is not None and x is not False for x in (everything, stream, table)) != 1:
            raise UsageError("say what to export: --all, --stream NAME or --table NAME")
        if day is not None and stream is None:
            raise UsageError("--date rebuilds one day of a stream: use it with --stream")
        if pipeline is not None and not everything:
            raise UsageError("--pipeline narrows --all: use it with --all")
        if beam_options and runner != "beam":
            raise UsageError("--beam-option configures the Beam pipeline: add --runner beam")
        if runner == "beam" and table is not None:
            raise UsageError("--runner beam runs stream appends: use it with --all or --stream")
        if runner == "beam":
            beam.pipeline_options(beam_options)  # fail before any work: no Beam, a bad option
        self.exports.runner, self.exports.beam_options = runner, tuple(beam_options)
        if everything:
            return self.exports.export_all(pipeline, source, on_feed)
        if stream is not None:
            return self.exports.export_stream(stream, day, source)
        assert table is not None
        return [self.exports.export_table(table, source)]

    # -- metadata ---------------------------------------------------------------------------

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
