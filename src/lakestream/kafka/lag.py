"""Consumer lag: how far a sink's committed position is behind the broker's high watermark.

The arithmetic is kept apart from the broker call so it can be checked with
the numbers a correct broker would give: Tansu, the embedded broker, reports
wrong high watermarks (stale on its s3 engine, the last batch's start on its
memory engine; docs/api.md), so lag against Tansu is only approximate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Watermarks = Mapping[tuple[str, int], tuple[int, int]]
"""``(topic, partition)`` → ``(low, high)`` watermark offsets."""


@dataclass(frozen=True)
class PartitionLag:
    """Lag of one sink on one topic-partition.

    Attributes:
        sink: Who consumes: the lake dataset or another named sink.
        topic: Kafka topic.
        partition: Kafka partition.
        position: The next offset the sink will read (what it committed + 1; 0 = nothing yet).
        low: The broker's low watermark (``None``: unknown).
        high: The broker's high watermark, the offset after the last record (``None``: unknown).
        lag: ``high - max(position, low)``, never below 0 (``None`` without a watermark).
    """

    sink: str
    topic: str
    partition: int
    position: int
    low: int | None
    high: int | None
    lag: int | None


def partition_lag(sink: str, topic: str, partition: int, position: int | None,
                  watermarks: tuple[int, int] | None) -> PartitionLag:
    """The lag of one partition from its committed position and ``(low, high)`` watermarks.

    Records below the low watermark are gone (retention): a sink behind it can
    only catch up from ``low``, so they do not count as lag.
    """
    pos = max(position or 0, 0)
    if watermarks is None or watermarks[1] < 0:
        return PartitionLag(sink, topic, partition, pos, None, None, None)
    low, high = watermarks
    start = max(pos, low if low >= 0 else 0)
    return PartitionLag(sink, topic, partition, pos, low, high, max(high - start, 0))


def compute_lag(positions: Mapping[tuple[str, str, int], int | None],
                watermarks: Watermarks) -> list[PartitionLag]:
    """Lag of every ``(sink, topic, partition)`` in ``positions``, sorted.

    Args:
        positions: ``(sink, topic, partition)`` → the next offset the sink reads.
        watermarks: The broker's watermarks; a missing entry gives an unknown lag.
    """
    return [partition_lag(sink, topic, part, pos, watermarks.get((topic, part)))
            for (sink, topic, part), pos in sorted(positions.items())]


@dataclass(frozen=True)
class BrokerWatermarks:
    """What the broker said: its cluster id and the watermarks of the partitions asked for."""

    cluster_id: str | None
    watermarks: dict[tuple[str, int], tuple[int, int]]

    @property
    def is_tansu(self) -> bool:
        """Whether the broker is Tansu, whose high watermarks are unreliable (docs/api.md)."""
        return (self.cluster_id or "").lower().startswith("tansu")


def fetch_watermarks(config: Mapping[str, Any], topics: Iterable[str],
                     timeout_s: float = 2.0) -> BrokerWatermarks:
    """Ask the broker for the watermarks of every partition of ``topics``.

    Args:
        config: librdkafka settings with ``bootstrap.servers``.
        topics: Topics to look at; unknown topics are skipped.
        timeout_s: Per request; a broker that does not answer yields an error.

    Raises:
        BrokerError: The broker cannot be reached.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from lakestream.errors import BrokerUnavailableError

    consumer = Consumer({**config, "group.id": "lakestream-lag-probe",
                         "enable.auto.commit": False, "socket.timeout.ms": int(timeout_s * 1000)},
                        logger=logging.getLogger("lakestream.kafka"))
    found: dict[tuple[str, int], tuple[int, int]] = {}
    try:
        meta = consumer.list_topics(timeout=timeout_s)
        for topic in dict.fromkeys(topics):
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                continue
            for part in sorted(info.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, part),
                                                           timeout=timeout_s, cached=False)
                found[(topic, part)] = (int(low), int(high))
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"cannot read watermarks from {config.get('bootstrap.servers')}: "
            f"{exc.args[0] if exc.args else exc}") from None
    finally:
        consumer.close()
    return BrokerWatermarks(meta.cluster_id, found)
