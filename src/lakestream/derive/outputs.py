"""Publishing the processor's outputs: derived streams and table changelogs.

A derived stream's record goes to the partition of the input record it came from
(``ingest`` drops replayed ones by their ``_source_partition``/``_source_offset``); a
table's record goes to the partition of its key, and a key a table dropped (``HAVING``)
is published as a tombstone (no value), so a compacted topic forgets it.
"""

from __future__ import annotations

import logging
from typing import Any

from lakestream.errors import BrokerUnavailableError


class OutputPublisher:
    """Produces a batch's outputs and waits until the broker acknowledged all of them."""

    def __init__(self, config: dict[str, Any], timeout_s: float = 60.0) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({**config, "enable.idempotence": True},
                                 logger=logging.getLogger("lakestream.kafka"))
        self.timeout_s = timeout_s

    def publish(self, partition: int,
                streams: dict[str, tuple[list[bytes | None], list[bytes]]],
                tables: dict[str, list[tuple[bytes | None, bytes | None]]]) -> int:
        """Send everything; raise :class:`BrokerUnavailableError` unless every message was
        acknowledged.

        Args:
            partition: The input partition: derived stream records go to the same one.
            streams: Per topic, the records' keys and values.
            tables: Per topic, ``(key, value)`` of each changed key (value ``None``: a
                tombstone).
        """
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        sent = 0
        for topic, (keys, values) in streams.items():
            for key, value in zip(keys, values, strict=True):
                self._send(topic, value, key, partition, delivered)
            sent += len(values)
        for topic, messages in tables.items():
            for table_key, table_value in messages:
                self._send(topic, table_value, table_key, None, delivered)
            sent += len(messages)
        remaining = self.producer.flush(self.timeout_s)
        if remaining or errors:
            first = errors[0] if errors else f"{remaining} not acknowledged in {self.timeout_s}s"
            raise BrokerUnavailableError(f"publishing derived records failed: {first}")
        return sent

    def _send(self, topic: str, value: bytes | None, key: bytes | None, partition: int | None,
              callback: Any) -> None:
        kwargs: dict[str, Any] = {"key": key, "on_delivery": callback}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self.producer.produce(topic, value, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)
