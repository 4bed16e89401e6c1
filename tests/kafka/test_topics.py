"""Topics Lakestream creates: table topics compacted, partitions and replicas from the settings.

Read back through the admin API (DescribeConfigs, DescribeTopics) of the embedded
broker, which stores and reports what CreateTopics asked for (docs/operations.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

import lakestream.kafka.client as kafka_client
from lakestream.errors import ConfigError
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import (
    configured_topic_partitions,
    ensure_configured_topics,
    ensure_topics,
)
from tests.conftest import settings_for, subprocess_env, unique_topic, write_feed

pytestmark = pytest.mark.integration


def _configs(bootstrap: str, *topics: str) -> dict[str, dict[str, str]]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics])
    return {r.name: {k: e.value for k, e in f.result(10).items()} for r, f in futures.items()}


def _replicas(bootstrap: str, *topics: str) -> dict[str, list[int]]:
    """The number of replicas of each partition, by topic."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures: Any = admin.describe_topics(TopicCollection(list(topics)))
    return {name: [len(p.replicas) for p in f.result(10).partitions]
            for name, f in futures.items()}


def test_table_topics_are_created_compacted_and_stream_topics_are_not(
        workdir: Path, broker: EmbeddedBroker) -> None:
    settings = settings_for(workdir, LAKESTREAM_KAFKA__PARTITIONS="3",
                            LAKESTREAM_KAFKA__REPLICATION_FACTOR="1")
    stream, table = unique_topic("stream"), unique_topic("table")

    ensure_configured_topics(settings, broker.bootstrap_servers, [stream], [table])

    configs = _configs(broker.bootstrap_servers, stream, table)
    assert configs[table].get("cleanup.policy") == "compact"
    assert configs[stream].get("cleanup.policy", "delete") == "delete"
    assert _replicas(broker.bootstrap_servers, stream, table) == {stream: [1] * 3,
                                                                 table: [1] * 3}


def test_an_existing_topic_is_not_changed_by_a_later_creation(
        workdir: Path, broker: EmbeddedBroker) -> None:
    settings = settings_for(workdir)
    topic = unique_topic("plain")
    ensure_topics(broker.bootstrap_servers, [topic], 2)

    ensure_configured_topics(settings, broker.bootstrap_servers, tables=[topic])

    assert _configs(broker.bootstrap_servers, topic)[topic].get("cleanup.policy") != "compact"
    assert _replicas(broker.bootstrap_servers, topic) == {topic: [1, 1]}


def test_more_replicas_than_brokers_is_refused_before_anything_is_created(
        broker: EmbeddedBroker) -> None:
    first, second = unique_topic("rf"), unique_topic("rf")

    with pytest.raises(ConfigError) as refused:
        ensure_topics(broker.bootstrap_servers, [first, second], 2, replication_factor=2)

    assert str(refused.value) == (
        f"cannot create topic {first} (and 1 more): kafka.replication_factor is 2 but the "
        "cluster has 1 broker(s) (set kafka.replication_factor "
        "(LAKESTREAM_KAFKA__REPLICATION_FACTOR) to 1 or less)")
    topics = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(
        timeout=10).topics
    assert first not in topics and second not in topics


def test_the_cli_names_the_replication_setting_and_its_fix(
        workdir: Path, broker: EmbeddedBroker) -> None:
    topic = unique_topic("rf-cli")
    write_feed(workdir / "feeds", "replicated", topic)

    done = subprocess.run(
        [sys.executable, "-m", "lakestream", "ingest", "--feed", "replicated", "--until-idle"],
        cwd=workdir, env=subprocess_env(LAKESTREAM_KAFKA__REPLICATION_FACTOR="3"),
        capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines == [
        f"error: cannot create topic {topic}: kafka.replication_factor is 3 but the cluster "
        "has 1 broker(s)",
        "  hint: set kafka.replication_factor (LAKESTREAM_KAFKA__REPLICATION_FACTOR) to 1 or less",
    ]


def test_topic_administration_uses_the_users_client_config(
        workdir: Path, broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Security and SASL properties reach the admin clients too, not only consumers."""
    settings = settings_for(workdir, LAKESTREAM_KAFKA__CLIENT_CONFIG__CLIENT_ID="admin-probe")
    made: list[dict[str, Any]] = []
    real = kafka_client.admin_client

    def spy(bootstrap: str, **extra: Any) -> Any:
        made.append(extra)
        return real(bootstrap, **extra)

    monkeypatch.setattr(kafka_client, "admin_client", spy)
    stream, table = unique_topic("secured"), unique_topic("secured-table")

    ensure_configured_topics(settings, broker.bootstrap_servers, [stream], [table])
    partitions = configured_topic_partitions(settings, broker.bootstrap_servers, table)

    assert partitions == list(range(settings.kafka.partitions))
    assert len(made) >= 3 and all(m.get("client.id") == "admin-probe" for m in made), made
