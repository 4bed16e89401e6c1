"""Kafka client configuration, topic administration and a batching producer."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lakestream.config import Settings
from lakestream.errors import BrokerUnavailableError, ConfigError
from lakestream.kafka.broker import read_state

OFFSET_BEGINNING = -2
"""librdkafka's logical offset of a partition's first record (``confluent_kafka.OFFSET_BEGINNING``):
where a read starts when nothing of the partition was committed yet."""


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
        "run `lakestream broker start`, or set LAKESTREAM_KAFKA__BOOTSTRAP_SERVERS",
    )


def base_config(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Settings shared by every client: servers plus the user's extra librdkafka keys."""
    return {"bootstrap.servers": bootstrap, **settings.kafka.librdkafka_properties()}


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


TABLE_TOPIC_CONFIG: Mapping[str, str] = MappingProxyType({"cleanup.policy": "compact"})
"""The configuration of the table topics Lakestream creates, as ksqlDB creates its tables'.

Each record of a table topic is a key's whole latest value, so compaction keeps
what a consumer needs: a group that starts after older segments are gone still
reads every key's latest value. The cleaner's tuning (``min.compaction.lag.ms``,
``segment.ms``, ``min.cleanable.dirty.ratio``) is left to the cluster's defaults:
a value that is not compacted yet is only a superseded one more to read.
"""


def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int, timeout: float = 15, *,
    replication_factor: int = 1, config: Mapping[str, str] | None = None,
    client_config: Mapping[str, Any] | None = None,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    ``lakestream doctor`` checks the existing table topics (their cleanup policy)
    instead of changing them behind the user's back.

    Args:
        bootstrap: Kafka's servers.
        names: Topics that must exist.
        partitions: Partitions of a created topic.
        timeout: Seconds per admin request.
        replication_factor: Replicas of a created topic; at most the cluster's brokers.
        config: Topic configuration of the created topics (e.g. :data:`TABLE_TOPIC_CONFIG`).
        client_config: The user's librdkafka properties (security, SASL…), as every
            other client of the run gets them.

    Raises:
        BrokerError: Kafka does not answer, or refused to create a topic.
        ConfigError: ``replication_factor`` exceeds the number of brokers.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = admin_client(bootstrap, **(client_config or {}))
    try:
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    wanted = [n for n in dict.fromkeys(names) if n not in meta.topics]
    if not wanted:
        return
    # Tansu accepts any replication factor (it has one broker and reports the replicas
    # asked for), so the check is ours; a Kafka cluster refuses with the same reason.
    if replication_factor > len(meta.brokers):
        raise _too_many_replicas(wanted, replication_factor, len(meta.brokers))
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=replication_factor,
                  config=dict(config or {})) for n in wanted]
    )
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args and hasattr(exc.args[0], "code") else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if code == KafkaError.INVALID_REPLICATION_FACTOR:
                raise _too_many_replicas(wanted, replication_factor, len(meta.brokers)) from None
            raise BrokerUnavailableError(f"cannot create topic {name}: {kafka_reason(exc)}",
                                         topic=name) from None
    _wait_visible(admin, wanted, timeout)


def ensure_configured_topics(
    settings: Settings, bootstrap: str, streams: Iterable[str] = (),
    tables: Iterable[str] = (), partitions: int | None = None,
) -> None:
    """:func:`ensure_topics` with ``kafka.partitions`` and ``kafka.replication_factor``:
    ``streams`` with the cluster's default cleanup policy, ``tables`` compacted."""
    kafka = settings.kafka
    for names, config in ((list(streams), None), (list(tables), TABLE_TOPIC_CONFIG)):
        if names:
            ensure_topics(bootstrap, names, partitions or kafka.partitions,
                          replication_factor=kafka.replication_factor, config=config,
                          client_config=kafka.librdkafka_properties())


def _too_many_replicas(names: list[str], replication_factor: int, brokers: int) -> ConfigError:
    shown = names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} more)"
    return ConfigError(
        f"cannot create topic {shown}: kafka.replication_factor is {replication_factor} "
        f"but the cluster has {brokers} broker(s)",
        f"set kafka.replication_factor (LAKESTREAM_KAFKA__REPLICATION_FACTOR) to {brokers} "
        "or less",
    )


def cleanup_policies(bootstrap: str, names: Iterable[str], timeout: float = 10,
                     client_config: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The ``cleanup.policy`` of each existing topic of ``names`` (missing ones are left out).

    A broker that does not report the key (Tansu, for a topic created without it)
    applies Kafka's default, ``delete``.

    Raises:
        BrokerError: Kafka does not answer or cannot describe the topics' configuration.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = admin_client(bootstrap, **(client_config or {}))
    try:
        topics = admin.list_topics(timeout=timeout).topics
        existing = [n for n in dict.fromkeys(names) if n in topics]
        if not existing:
            return {}
        futures = admin.describe_configs(
            [ConfigResource(ResourceType.TOPIC, n) for n in existing], request_timeout=timeout)
        policies = {}
        for resource, future in futures.items():
            entry = future.result(timeout).get("cleanup.policy")
            policies[resource.name] = entry.value if entry is not None and entry.value else "delete"
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"cannot read the topics' configuration: {kafka_reason(exc)}") from None
    return policies


def set_topic_config(bootstrap: str, names: Iterable[str], config: Mapping[str, str],
                     timeout: float = 10, client_config: Mapping[str, Any] | None = None) -> None:
    """Set ``config`` on existing topics (incremental: their other keys are kept).

    Raises:
        BrokerError: Kafka refused or does not answer.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in config.items()]
    resources = [ConfigResource(ResourceType.TOPIC, n, incremental_configs=entries)
                 for n in dict.fromkeys(names)]
    if not resources:
        return
    admin = admin_client(bootstrap, **(client_config or {}))  # held until the futures end
    futures = admin.incremental_alter_configs(resources, request_timeout=timeout)
    for resource, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            raise BrokerUnavailableError(
                f"cannot change the configuration of topic {resource.name}: "
                f"{kafka_reason(exc)}", topic=resource.name) from None


def _wait_visible(admin: Any, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(n in topics and topics[n].partitions for n in names):
            return
        time.sleep(0.1)
    raise BrokerUnavailableError(f"topics {names} were created but did not appear in metadata")


def topic_partitions(bootstrap: str, topic: str, timeout: float = 10, *,
                     client_config: Mapping[str, Any] | None = None) -> list[int]:
    """The partition ids of ``topic`` (empty when it does not exist).

    ``client_config`` holds the user's librdkafka properties (security, SASL…):
    :func:`configured_topic_partitions` passes the settings' own.
    """
    from confluent_kafka import KafkaException

    try:
        meta = admin_client(bootstrap, **(client_config or {})).list_topics(topic,
                                                                           timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    info = meta.topics.get(topic)
    if info is None or info.error is not None:
        return []
    return sorted(info.partitions)


def configured_topic_partitions(settings: Settings, bootstrap: str, topic: str) -> list[int]:
    """:func:`topic_partitions` through a client configured like the run's others."""
    return topic_partitions(bootstrap, topic,
                            client_config=settings.kafka.librdkafka_properties())
