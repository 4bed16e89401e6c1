"""Consumer lag of the lake's sinks: broker high watermarks minus committed positions.

The position of a sink is what the lake committed (the application
transactions of its Delta log, summarized in ``_metadata.json``), not what
the consumer group committed to Kafka, which is only a mirror for lag tools.
Watermarks are fetched at most every few seconds (pages poll), and a broker
that does not answer is remembered for a while so a dashboard without a
broker stays fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

from lakestream.errors import LakestreamError
from lakestream.feeds import Feed
from lakestream.kafka.lag import BrokerWatermarks, compute_lag
from lakestream.lake.metadata import read_metadata
from lakestream.lake.storage import Storage
from lakestream.observe.models import LagReport

TANSU_NOTE = "lag is approximate: Tansu's watermarks are unreliable"

WatermarkSource = Callable[[list[str]], BrokerWatermarks]
"""Asks the broker for the watermarks of some topics (raises a ``LakestreamError``)."""


def sink_positions(storage: Storage, feeds: Iterable[Feed]) -> dict[tuple[str, str, int], int]:
    """``(feed, topic, partition)`` → the next offset the lake will read, per the log."""
    positions: dict[tuple[str, str, int], int] = {}
    for feed in feeds:
        meta = read_metadata(storage, feed.dataset) or {}
        for key, value in (meta.get("kafka_offsets") or {}).items():
            if isinstance(value, Mapping):  # streams: "topic:partition" → {first, last}
                topic, _, part = str(key).rpartition(":")
                if value.get("last") is not None:
                    positions[(feed.name, topic, int(part))] = int(value["last"]) + 1
            elif value is not None:  # tables: "partition" → next offset
                positions[(feed.name, feed.topic, int(key))] = int(value)
    return positions


class LagMonitor:
    """Lag of the feeds' lake sinks against one broker.

    Args:
        storage: The lake.
        source: Fetches watermarks (``None``: no broker configured).
        broker: How to name the broker in reports.
        ttl_s: How long a broker's answer is reused.
        failure_ttl_s: How long a broker that did not answer is left alone.
    """

    def __init__(self, storage: Storage, source: WatermarkSource | None, broker: str | None,
                 ttl_s: float = 3.0, failure_ttl_s: float = 15.0) -> None:
        self.storage = storage
        self.source = source
        self.broker = broker
        self.ttl_s = ttl_s
        self.failure_ttl_s = failure_ttl_s
        self._cache: tuple[float, tuple[str, ...], BrokerWatermarks | str] | None = None
        self._lock = threading.Lock()

    def report(self, feeds: list[Feed]) -> LagReport:
        """The lag of every partition the lake has committed from, for ``feeds``."""
        positions = sink_positions(self.storage, feeds)
        topics = sorted({topic for _, topic, _ in positions} | {f.topic for f in feeds})
        answer = self._watermarks(tuple(topics))
        if isinstance(answer, str):
            partitions = compute_lag(positions, {})
            return LagReport(partitions=partitions, broker=self.broker, error=answer)
        known = {(f.name, t, p): 0 for f in feeds for (t, p) in answer.watermarks
                 if t == f.topic}
        partitions = compute_lag({**known, **positions}, answer.watermarks)
        note = TANSU_NOTE if answer.is_tansu else None
        return LagReport(partitions=partitions, broker=self.broker, approximate=answer.is_tansu,
                         note=note)

    def forget(self) -> None:
        """Drop the remembered broker answer: the next report asks the broker again."""
        with self._lock:
            self._cache = None

    def _watermarks(self, topics: tuple[str, ...]) -> BrokerWatermarks | str:
        if self.source is None:
            return "no Kafka broker is configured or running"
        with self._lock:
            now = time.monotonic()
            if self._cache and self._cache[1] == topics:
                at, _, cached = self._cache
                if now - at < (self.failure_ttl_s if isinstance(cached, str) else self.ttl_s):
                    return cached
            try:
                answer: BrokerWatermarks | str = self.source(list(topics))
            except LakestreamError as exc:
                answer = f"broker unavailable: {exc.message}"
            self._cache = (time.monotonic(), topics, answer)
            return answer
