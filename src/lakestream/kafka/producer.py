"""Send messages to Kafka at a target rate, counting what the broker acknowledged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lakestream.errors import BrokerUnavailableError


@dataclass
class ProduceReport:
    """What a produce run sent."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        """Messages per second actually achieved."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def produce(
    config: dict[str, Any],
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
    rate: float = 0.0,
    on_progress: Callable[[int], None] | None = None,
    flush_timeout: float = 60.0,
) -> ProduceReport:
    """Produce ``(key, value)`` messages to ``topic``.

    Args:
        config: librdkafka producer settings.
        rate: Target messages per second; 0 means as fast as possible.
        on_progress: Called with the number of messages sent since the last call.
    """
    from confluent_kafka import KafkaError, Producer

    report = ProduceReport()

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is None:
            report.delivered += 1
        else:
            report.failed += 1
            report.first_error = report.first_error or str(err)

    producer = Producer(config, logger=logging.getLogger("lakestream.kafka"))
    start = time.monotonic()
    pending_progress = 0
    for key, value in messages:
        _send(producer, topic, key, value, delivered)
        report.sent += 1
        report.bytes += len(value)
        pending_progress += 1
        if rate > 0:
            ahead = report.sent / rate - (time.monotonic() - start)
            if ahead > 0.005:
                producer.poll(0)
                time.sleep(ahead)
        if pending_progress >= 1000 and on_progress:
            on_progress(pending_progress)
            pending_progress = 0
    remaining = producer.flush(flush_timeout)
    if on_progress and pending_progress:
        on_progress(pending_progress)
    report.seconds = time.monotonic() - start
    if remaining:
        report.failed += remaining
        raise BrokerUnavailableError(
            f"{remaining} messages were not acknowledged by Kafka within {flush_timeout:.0f}s",
            "is the broker reachable?",
        )
    return report


def _send(producer: Any, topic: str, key: bytes | None, value: bytes, callback: Any) -> None:
    from confluent_kafka import KafkaException

    while True:
        try:
            producer.produce(topic, value, key=key, on_delivery=callback)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.05)
        except KafkaException as exc:
            raise BrokerUnavailableError(f"cannot produce to {topic}: {exc}", topic=topic) from None
