"""The streaming ingest: Kafka topics → the lake, exactly once.

Offsets come from the lake when a partition is assigned (a Delta table's
application transactions, or a legacy dataset's ledger: the lake is the
source of truth), so a consumer killed at any moment resumes exactly after
the last committed batch. Kafka's committed offsets are written too, after
each lake commit, only so that lag tools see progress.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from lakestream.config import Settings
from lakestream.feeds import Feed
from lakestream.ingest.compactor import InBandCompactor
from lakestream.ingest.delta_sink import DeltaLakeSink, RoundResult, Run, lake_sink
from lakestream.ingest.sink import FlushStats
from lakestream.ingest.tables import TableIngest
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.client import consumer_config
from lakestream.kafka.consumer import BatchingConsumer, ConsumeOptions, ConsumeReport
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)

IN_BAND_SHARE = 8
"""In-band compaction merges into files of up to 1/8 of ``lake.compact_target_mb``: a day
that keeps growing is not rewritten whole every pass (``lakestream compact`` merges to the
full target)."""


@dataclass
class IngestReport(ConsumeReport):
    """What a run of the ingest consumed and wrote."""

    written: int = 0
    rejected: int = 0
    files: int = 0
    bytes: int = 0
    versions: int = 0
    compacted: int = 0
    """Small files merged away by in-band compaction."""
    per_feed: dict[str, FlushStats] = field(default_factory=lambda: defaultdict(FlushStats))


class IngestEngine(BatchingConsumer):
    """Consumes the topics of some feeds and lands them in the lake exactly once.

    Its batches are written beside consuming (``background_flush``): the sinks
    are touched by the loop only on (re)assignment, after the round in flight.
    A round that fails transiently is tried again whole by the consumer loop
    (partitions paused meanwhile); each feed skips what it already committed.
    """

    background_flush = True
    flush_what = "write to the lake"

    def __init__(self, settings: Settings, bootstrap: str, storage: Storage,
                 feeds: Sequence[Feed], options: ConsumeOptions,
                 table_partitions: dict[str, list[int]] | None = None) -> None:
        self.storage = storage
        self.sinks: dict[str, list[DeltaLakeSink]] = defaultdict(list)
        for feed in feeds:
            if feed.kind == "stream":
                self.sinks[feed.topic].append(lake_sink(storage, feed))
        super().__init__(settings, bootstrap, list(self.sinks), options, IngestReport())
        self.report: IngestReport
        tables = [f for f in feeds if f.kind == "table"]
        self.tables = TableIngest(
            storage, tables, consumer_config(settings, bootstrap, options.group_id),
            settings.lake.snapshot_interval_s, settings.lake.table_versions) if tables else None
        self._table_partitions = table_partitions or {}
        lake = settings.lake
        delta = [s for sinks in self.sinks.values() for s in sinks if isinstance(s, DeltaLakeSink)]
        self.compactor = InBandCompactor(
            storage, [rel for s in delta for rel in (s.data.rel, s.dlq.rel)],
            lake.compact_min_files, lake.compact_target_mb * 1024 * 1024 // IN_BAND_SHARE) \
            if lake.compact_in_band else None

    def run(self) -> IngestReport:
        """Consume until stopped or idle; tables write their last version at the end."""
        if self.tables is not None:
            self.retry(lambda: self.tables.start(self._table_partitions) if self.tables else None,
                       "load the table versions")
        if self.compactor is not None:
            self.compactor.start()
        try:
            report: IngestReport = super().run()
        finally:
            if self.compactor is not None:
                self.compactor.stop()
                self.report.compacted = self.compactor.merged
        return report

    def poll_more(self) -> int:
        """Apply the table feeds' changelog records."""
        if self.tables is None:
            return 0
        applied = self.tables.poll()
        self.retry_when_due(self.tables.snapshot_due, "write table versions")
        return applied

    def unfinished_sources(self) -> list[tuple[str, int]]:
        """The table feeds' partitions not read to their end yet."""
        return self.tables.unfinished() if self.tables is not None else []

    def finish(self) -> None:
        """Write the final table versions."""
        if self.tables is not None:
            self.retry(self.tables.close, "write table versions")
            self.report.versions = self.tables.versions_written

    def start_offset(self, topic: str, partition: int) -> int | None:
        """The lowest next offset over the feeds of ``topic`` (each skips what it holds)."""
        starts = [sink.recover(topic, partition) for sink in self.sinks[topic]]
        known = [s for s in starts if s is not None]
        return min(known) if len(known) == len(starts) else None

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """The offset every feed of ``topic`` holds up to."""
        nexts = [s.next_offset.get((topic, partition)) for s in self.sinks[topic]]
        known = [n for n in nexts if n is not None]
        return min(known) if known and len(known) == len(nexts) else None

    def flush_partition(self, buffer: PartitionBuffer) -> None:
        """Write one buffer into every feed of its topic (each from where it stands)."""
        self.flush_buffers([buffer])

    def flush_buffers(self, buffers: list[PartitionBuffer]) -> None:
        """Write a round's buffers into every feed of their topics: one commit per feed for
        all the partitions of its topic (each partition from where the feed stands)."""
        by_topic: dict[str, list[PartitionBuffer]] = defaultdict(list)
        for buf in buffers:
            by_topic[buf.topic].append(buf)
        for topic, bufs in by_topic.items():
            for sink in self.sinks[topic]:
                runs = [Run(buf.partition, *run) for buf in bufs
                        if (run := buf.columns_from(sink.next_offset.get((topic, buf.partition))))
                        is not None]
                if runs:
                    self._count(sink.feed.name, self._write(sink, topic, runs))

    def _write(self, sink: DeltaLakeSink, topic: str, runs: list[Run]) -> FlushStats:
        result: RoundResult = sink.write_round(topic, runs)  # the loop retries the round
        for why in result.fenced.values():
            log.warning("%s; dropping this consumer's buffer for it", why)
        return result.stats

    def _count(self, feed: str, stats: FlushStats) -> None:
        self.report.per_feed[feed] += stats
        self.report.written += stats.records
        self.report.rejected += stats.rejected
        self.report.files += stats.files
        self.report.bytes += stats.bytes

    def after_flush(self) -> None:
        """Refresh every feed's ``_metadata.json``."""
        for sinks in self.sinks.values():
            for sink in sinks:
                sink.publish_metadata()  # a failure fails the round: tried again whole

    def partition_revoked(self, topic: str, partition: int) -> None:
        """Forget the partition's position in every feed."""
        for sink in self.sinks[topic]:
            sink.forget(topic, partition)
