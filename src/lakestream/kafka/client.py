"""Kafka client configuration, topic administration and a batching producer."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lakestream.config import Settings
from lakestream.errors import BrokerError, ConfigError
from lakestream.kafka.broker import read_state


class RepeatFilter(logging.Filter):
    """Lets one librdkafka complaint through per ``every_s`` (digits ignored when comparing).

    A broker that is down makes librdkafka log a failed connect for every
    socket many times a second; the consumer loop's status line already says
    the broker is unreachable, so the log keeps one line of it per minute.
    """

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` differs from what was said within ``every_s``."""
        shape = re.sub(r"\d+", "#", record.getMessage())
        now = time.monotonic()
        if now - self._seen.get(shape, -self.every_s) < self.every_s:
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[shape] = now
        return True


def kafka_reason(exc: Exception) -> str:
    """librdkafka's own words for a ``KafkaException`` (not the ``KafkaError{…}`` repr)."""
    error: Any = exc.args[0] if exc.args else None
    return str(error.str()) if error is not None and hasattr(error, "str") else str(exc)


def bootstrap_servers(settings: Settings) -> str:
    """The configured Kafka, else the background embedded broker.

    Raises:
        ConfigError: Nothing configured and no embedded broker running.
    """
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    state = read_state(Path(settings.data_dir))
    if state is not None:
        return str(state["bootstrap_servers"])
    raise ConfigError(
        "no Kafka configured and no embedded broker running",
        "run `lakestream broker start`, or set LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS",
    )


def base_config(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Settings shared by every client: servers plus the user's extra librdkafka keys."""
    return {"bootstrap.servers": bootstrap, **settings.kafka.client_config}


def consumer_config(settings: Settings, bootstrap: str, group_id: str) -> dict[str, Any]:
    """A consumer that never auto-commits: offsets follow what the sink made durable."""
    session = settings.kafka.session_timeout_ms
    return {
        **base_config(settings, bootstrap),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session,
        "heartbeat.interval.ms": max(100, session // 6),
        "max.poll.interval.ms": max(300_000, session),
        "fetch.max.bytes": 64 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
        "allow.auto.create.topics": False,
    }


def producer_config(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """A throughput-oriented, idempotence-free producer (Tansu accepts both)."""
    return {
        **base_config(settings, bootstrap),
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "compression.type": "lz4",
        "message.timeout.ms": 60_000,
    }


def admin_client(bootstrap: str, **extra: Any) -> Any:
    """An admin client whose librdkafka logs go to Python logging (quiet by default)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, **extra},
                       logger=logging.getLogger("lakestream.kafka"))


def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, timeout: float = 15
) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    admin = admin_client(bootstrap)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if not wanted:
        return
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted]
    )
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"cannot create topic {name}: {exc}") from None
    _wait_visible(admin, wanted, timeout)


def _wait_visible(admin: Any, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(n in topics and topics[n].partitions for n in names):
            return
        time.sleep(0.1)
    raise BrokerError(f"topics {names} were created but did not appear in metadata")


def topic_partitions(bootstrap: str, topic: str, timeout: float = 10) -> list[int]:
    """The partition ids of ``topic`` (empty when it does not exist)."""
    from confluent_kafka import KafkaException

    try:
        meta = admin_client(bootstrap).list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    info = meta.topics.get(topic)
    if info is None or info.error is not None:
        return []
    return sorted(info.partitions)
