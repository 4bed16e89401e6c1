"""Read a topic's partitions between offsets, without a consumer group.

Batch loads and day rebuilds read a bounded range of each partition: from a
start found by time (``offsets_for_times``) or the partition's beginning, up to
an end offset or to the partition's end. Tansu answers ``offsets_for_times``
with offset 0 for any timestamp (docs/operations.md);
:meth:`KafkaScan.offsets_for_time` detects that with a probe far in the future
(a real broker answers "no such record", -1) and then returns ``None``: the
caller scans from the beginning instead. Reads come in
:class:`~lakestream.kafka.buffer.PartitionBuffer` s.

The end of a partition is never taken from watermarks alone (Tansu's are
wrong): a partition is done when its end offset was read, or when the broker
signalled end-of-partition and nothing more arrived for a short grace period.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lakestream.errors import BrokerRefusedError, BrokerUnavailableError
from lakestream.kafka.buffer import PartitionBuffer

log = logging.getLogger(__name__)

_FUTURE_MS = 10 * 365 * 86_400_000  # a probe this far ahead must find nothing


@dataclass
class _Progress:
    """Where the scan of one partition stands."""

    end: int | None
    last: int = -1
    eof: bool = False

    def done(self) -> bool:
        return self.end is not None and self.last >= self.end


class KafkaScan:
    """Bounded reads of one topic.

    Args:
        config: librdkafka settings (``bootstrap.servers`` and the user's extras).
        topic: The topic to read.
        chunk_size: Messages per yielded chunk.
        idle_timeout_s: Give up when nothing arrives for this long.
        grace_s: After every partition signalled its end, wait this long for stragglers.
    """

    def __init__(self, config: dict[str, Any], topic: str, chunk_size: int = 50_000,
                 idle_timeout_s: float = 10.0, grace_s: float = 0.5) -> None:
        self.config = {
            **config,
            "group.id": f"lakestream-export-{uuid.uuid4().hex[:8]}",  # never joined nor committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
        self.topic = topic
        self.chunk_size = chunk_size
        self.idle_timeout_s = idle_timeout_s
        self.grace_s = grace_s

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        return Consumer(self.config, logger=logging.getLogger("lakestream.kafka"))

    def _watermarks(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        """The (low, high) watermark of each partition, by a consumer of its own."""
        from confluent_kafka import KafkaException, TopicPartition

        consumer = self._consumer()
        marks: dict[int, tuple[int, int]] = {}
        try:
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p),
                                                           timeout=10)
                marks[p] = (int(low), int(high))
            return marks
        except KafkaException as exc:
            raise BrokerUnavailableError(f"cannot read the offsets of {self.topic}: {exc}",
                                         topic=self.topic) from None
        finally:
            consumer.close()

    def low_watermarks(self, partitions: list[int]) -> dict[int, int]:
        """The first offset each partition still holds (records before it were deleted)."""
        return {p: low for p, (low, _high) in self._watermarks(partitions).items()}

    def last_offsets(self, starts: dict[int, int]) -> dict[int, int | None]:
        """The last offset each partition holds at or after its start (``None``: none).

        Found by reading until the broker has nothing more. The high watermark only
        says where to begin (one record before it), since Tansu's is stale or points
        at the last batch's start; a partition where nothing turns up from there is
        read again from its start.

        Args:
            starts: First offset per partition (``OFFSET_BEGINNING`` for the start).
        """
        highs = {p: high for p, (_low, high) in self._watermarks(starts).items()}
        probes = {p: highs[p] - 1 if highs[p] - 1 > max(s, 0) else s for p, s in starts.items()}
        found = self._last_read(probes)
        found.update(self._last_read({p: s for p, s in starts.items()
                                      if p not in found and probes[p] != s}))
        return {p: found[p] if found.get(p, -1) >= max(s, 0) else None
                for p, s in starts.items()}

    def _last_read(self, starts: dict[int, int]) -> dict[int, int]:
        last: dict[int, int] = {}
        for chunk in self.read(starts):
            last[chunk.partition] = max(last.get(chunk.partition, -1), chunk.offsets[-1])
        return last

    def offsets_for_time(self, partitions: list[int], ts_ms: int) -> dict[int, int] | None:
        """The first offset at or after ``ts_ms`` per partition (-1: none), or ``None``.

        ``None`` means the broker cannot answer truthfully (Tansu) and the caller
        must scan instead.
        """
        from confluent_kafka import KafkaException, TopicPartition

        consumer = self._consumer()
        try:
            future = int(time.time() * 1000) + _FUTURE_MS
            probe = consumer.offsets_for_times(
                [TopicPartition(self.topic, p, future) for p in partitions], timeout=10)
            if any(tp.error is not None or tp.offset >= 0 for tp in probe):
                log.info("%s: the broker's offsets_for_times is not usable; scanning", self.topic)
                return None
            found = consumer.offsets_for_times(
                [TopicPartition(self.topic, p, ts_ms) for p in partitions], timeout=10)
            if any(tp.error is not None for tp in found):
                return None
            return {tp.partition: int(tp.offset) for tp in found}
        except KafkaException as exc:
            log.info("%s: offsets_for_times failed (%s); scanning", self.topic, exc)
            return None
        finally:
            consumer.close()

    def read(self, starts: dict[int, int], ends: dict[int, int] | None = None
             ) -> Iterator[PartitionBuffer]:
        """Yield the messages of each partition from ``starts`` (inclusive).

        Args:
            starts: First offset per partition (``OFFSET_BEGINNING`` for the start).
            ends: Last offset to read per partition (inclusive); ``None`` reads
                every partition to its current end.

        Raises:
            BrokerError: A partition ended before its end offset could be read.
        """
        from confluent_kafka import TopicPartition

        wanted = {p: s for p, s in starts.items() if ends is None or ends.get(p, -1) >= max(s, 0)}
        if not wanted:
            return
        progress = {p: _Progress(None if ends is None else ends[p]) for p in wanted}
        consumer = self._consumer()
        try:
            consumer.assign([TopicPartition(self.topic, p, s) for p, s in wanted.items()])
            yield from self._loop(consumer, progress)
        finally:
            consumer.close()

    def _loop(self, consumer: Any, progress: dict[int, _Progress]) -> Iterator[PartitionBuffer]:
        chunks = {p: PartitionBuffer(self.topic, p) for p in progress}
        last_event = time.monotonic()
        while not self._finished(progress, last_event):
            for m in consumer.consume(num_messages=10_000, timeout=0.2):
                last_event = time.monotonic()
                state = progress.get(m.partition())
                if state is None:
                    continue
                if m.error() is not None:
                    self._on_error(m, state)
                    continue
                state.eof = False
                if state.end is not None and m.offset() > state.end:
                    continue
                state.last = m.offset()
                chunk = chunks[m.partition()]
                chunk.add(m.value(), m.key(), m.offset(), m.timestamp()[1])
                if len(chunk) >= self.chunk_size:
                    yield chunk
                    chunks[m.partition()] = PartitionBuffer(self.topic, m.partition())
        yield from (c for c in chunks.values() if len(c))

    def _on_error(self, message: Any, state: _Progress) -> None:
        from confluent_kafka import KafkaError

        if message.error().code() == KafkaError._PARTITION_EOF:
            state.eof = True
            return
        if not message.error().retriable():
            raise BrokerUnavailableError(
                f"cannot read {self.topic}[{message.partition()}]: {message.error()}",
                topic=self.topic, partition=message.partition())
        log.warning("kafka: %s", message.error())

    def _finished(self, progress: dict[int, _Progress], last_event: float) -> bool:
        quiet = time.monotonic() - last_event
        if all(s.done() or (s.end is None and s.eof) for s in progress.values()):
            return all(s.done() for s in progress.values()) or quiet >= self.grace_s
        if quiet < self.idle_timeout_s:
            return False
        short = {p: (s.last, s.end) for p, s in progress.items()
                 if s.end is not None and not s.done()}
        if short:
            p, (last, end) = next(iter(short.items()))
            raise BrokerRefusedError(f"{self.topic}[{p}] could only be read up to offset "
                                     f"{last}, the lake holds records up to {end}",
                                     "is the broker complete (retention, another cluster)?",
                                     topic=self.topic, partition=p)
        log.warning("%s: no end-of-partition signal within %.0fs; stopping the scan", self.topic,
                    self.idle_timeout_s)
        return True
