"""The streaming ingest loop: consume, buffer per partition, flush to the lake, commit.

Offsets come from the lake's ledger when a partition is assigned (the lake is
the source of truth), so a consumer killed at any moment resumes exactly after
the last committed batch. Kafka's committed offsets are written too, after
each lake commit, only so that lag tools see progress.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lakestream.config import Settings
from lakestream.errors import FencedError, LakestreamError, TransientError
from lakestream.feeds import Feed
from lakestream.ingest.buffer import PartitionBuffer
from lakestream.ingest.sink import FlushStats, LakeSink
from lakestream.kafka.client import consumer_config
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)

OFFSET_BEGINNING = -2


@dataclass
class IngestReport:
    """What a run of the ingest consumed and wrote."""

    consumed: int = 0
    written: int = 0
    rejected: int = 0
    files: int = 0
    bytes: int = 0
    flushes: int = 0
    started: float = field(default_factory=time.monotonic)
    assigned_at: float | None = None
    per_feed: dict[str, FlushStats] = field(default_factory=lambda: defaultdict(FlushStats))

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started


@dataclass
class IngestOptions:
    """How one ingest run behaves."""

    group_id: str
    until_idle: bool = False
    idle_timeout_s: float = 3.0
    max_retry_delay_s: float = 30.0
    progress: Callable[[IngestReport, dict[str, int]], None] | None = None
    progress_every_s: float = 5.0


class IngestEngine:
    """Consumes the topics of some feeds and lands them in the lake exactly once."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        storage: Storage,
        feeds: Sequence[Feed],
        options: IngestOptions,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.storage = storage
        self.options = options
        self.sinks: dict[str, list[LakeSink]] = defaultdict(list)
        for feed in feeds:
            self.sinks[feed.topic].append(LakeSink(storage, feed))
        self.buffers: dict[tuple[str, int], PartitionBuffer] = {}
        self.report = IngestReport()
        self.stopping = False
        self._consumer: Any = None
        self._last_message = time.monotonic()
        self._assigned = False

    def stop(self) -> None:
        """Ask the loop to flush, commit and return (safe from a signal handler)."""
        self.stopping = True

    def run(self) -> IngestReport:
        """Consume until :meth:`stop` (or until idle with ``until_idle``)."""
        from confluent_kafka import Consumer

        config = consumer_config(self.settings, self.bootstrap, self.options.group_id)
        self._consumer = Consumer(config, logger=logging.getLogger("lakestream.kafka"))
        self._consumer.subscribe(
            list(self.sinks),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            self._loop()
            self._flush_all()
        finally:
            self._consumer.close()
        return self.report

    def _loop(self) -> None:
        flush_every = self.settings.lake.flush_interval_s
        last_progress = time.monotonic()
        while not self.stopping:
            messages = self._consumer.consume(num_messages=20_000, timeout=0.25)
            for m in messages:
                if m.error() is not None:
                    self._on_error(m.error())
                    continue
                buf = self.buffers.get((m.topic(), m.partition()))
                if buf is None:  # a message of a partition we no longer own
                    continue
                buf.add(m.value(), m.key(), m.offset(), m.timestamp()[1])
            if messages:
                self.report.consumed += len(messages)
                self._last_message = time.monotonic()
            if self._should_flush(flush_every):
                self._flush_all()
            now = time.monotonic()
            if self.options.progress and now - last_progress >= self.options.progress_every_s:
                self.options.progress(self.report, self.lag())
                last_progress = now
            if self.options.until_idle and self._idle(now):
                return

    def _idle(self, now: float) -> bool:
        return self._assigned and now - self._last_message >= self.options.idle_timeout_s

    def _should_flush(self, interval: float) -> bool:
        lake = self.settings.lake
        pending = [b for b in self.buffers.values() if len(b)]
        if not pending:
            return False
        if sum(b.nbytes for b in pending) >= lake.max_batch_bytes:
            return True
        if any(len(b) >= lake.max_batch_records for b in pending):
            return True
        return time.monotonic() - min(b.first_at for b in pending) >= interval

    def _flush_all(self) -> None:
        for key in list(self.buffers):
            self._flush(key)
        for sinks in self.sinks.values():
            for sink in sinks:
                self._retry(sink.publish_metadata, "update metadata")

    def _flush(self, key: tuple[str, int]) -> None:
        buf = self.buffers.get(key)
        if buf is None or not len(buf):
            return
        topic, partition = key
        for sink in self.sinks[topic]:
            start = sink.next_offset.get(key)
            run = _from_offset(buf, start)
            if run is None:
                continue
            try:
                stats = self._write(sink, topic, partition, run)
            except FencedError as exc:
                log.warning("%s; dropping this consumer's buffer for it", exc)
                continue
            self.report.per_feed[sink.feed.name] += stats
            self.report.written += stats.records
            self.report.rejected += stats.rejected
            self.report.files += stats.files
            self.report.bytes += stats.bytes
        self.report.flushes += 1
        self._commit_kafka(topic, partition)
        buf.clear()

    def _write(
        self, sink: LakeSink, topic: str, partition: int, run: tuple[list[Any], ...]
    ) -> FlushStats:
        result: FlushStats = self._retry(
            lambda: sink.write(topic, partition, *run), "write to the lake"
        )
        return result

    def _retry(self, action: Callable[[], Any], what: str) -> Any:
        delay = 0.5
        while True:
            try:
                return action()
            except TransientError as exc:
                log.warning("cannot %s (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.options.max_retry_delay_s)

    def _commit_kafka(self, topic: str, partition: int) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        nexts = [s.next_offset.get((topic, partition)) for s in self.sinks[topic]]
        known = [n for n in nexts if n is not None]
        if len(known) != len(nexts):
            return
        try:
            self._consumer.commit(
                offsets=[TopicPartition(topic, partition, min(known))], asynchronous=True
            )
        except KafkaException as exc:  # informational only: the ledger is the truth
            log.debug("offset commit to Kafka failed: %s", exc)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            starts = [self._recover(sink, key) for sink in self.sinks[tp.topic]]
            known = [s for s in starts if s is not None]
            tp.offset = min(known) if len(known) == len(starts) else OFFSET_BEGINNING
            self.buffers[key] = PartitionBuffer(tp.topic, tp.partition)
            log.info("assigned %s[%d] from offset %s", tp.topic, tp.partition, tp.offset)
        consumer.assign(partitions)
        self._assigned = True
        self._last_message = time.monotonic()
        if self.report.assigned_at is None:
            self.report.assigned_at = time.monotonic()

    def _recover(self, sink: LakeSink, key: tuple[str, int]) -> int | None:
        start: int | None = self._retry(lambda: sink.recover(*key), "recover the ledger")
        return start

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            try:
                self._flush(key)
            except LakestreamError as exc:
                log.warning("could not flush %s[%d] on revoke: %s", tp.topic, tp.partition, exc)
            self.buffers.pop(key, None)
            for sink in self.sinks[tp.topic]:
                sink.forget(*key)
        self._assigned = False

    def _on_error(self, error: Any) -> None:
        log.warning("kafka: %s", error)

    def lag(self) -> dict[str, int]:
        """Approximate lag per ``topic:partition`` from cached high watermarks.

        Tansu reports wrong high watermarks (SPEC §2): treat this as a hint only.
        """
        lag = {}
        for (topic, partition), _buf in self.buffers.items():
            from confluent_kafka import TopicPartition

            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
            nexts = [s.next_offset.get((topic, partition)) or 0 for s in self.sinks[topic]]
            if high is not None and high >= 0:
                lag[f"{topic}:{partition}"] = max(0, high - min(nexts))
        return lag


def _from_offset(buf: PartitionBuffer, start: int | None) -> tuple[list[Any], ...] | None:
    """The buffered columns from ``start`` on (a sink may already hold the first ones)."""
    offsets = buf.offsets
    if start is None or offsets[0] >= start:
        cut = 0
    elif offsets[-1] < start:
        return None
    else:
        cut = next(i for i, o in enumerate(offsets) if o >= start)
    if cut == 0:
        return buf.values, buf.keys, buf.offsets, buf.timestamps
    return buf.values[cut:], buf.keys[cut:], buf.offsets[cut:], buf.timestamps[cut:]
