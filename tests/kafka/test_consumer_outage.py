"""A sink that is down for longer than ``max.poll.interval.ms``: the consumer stays in its group.

The consumer pauses its partitions and keeps polling while the flush is retried
(``lakestream.kafka.outage``); librdkafka would otherwise leave the group after
``max.poll.interval.ms`` without a poll and hand the partitions over. Here the
interval is 10 s and the sink is down for 15 s. The sink is an in-memory store
with the lake's rules: it keeps each partition's next offset, and refuses
(fenced) a batch from a consumer whose idea of that offset is stale, so a
consumer that wrote a partition after losing it would fail the run.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import lakestream.kafka.consumer as consumer_module
from lakestream.config import Settings
from lakestream.kafka.broker import EmbeddedBroker
from tests.conftest import unique_topic
from tests.ingest.helpers import send
from tests.kafka.store_consumer import (
    Running,
    Store,
    StoreConsumer,
    assert_exactly_once,
    messages,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_POLL_INTERVAL_MS = 10_000
OUTAGE_S = 15.0
PARTITIONS = 3


@pytest.fixture
def short_poll_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """``max.poll.interval.ms`` of 10 s (Lakestream's floor is 300 s)."""
    original = consumer_module.consumer_config

    def config(settings: Settings, bootstrap: str, group_id: str) -> dict[str, Any]:
        return {**original(settings, bootstrap, group_id),
                "max.poll.interval.ms": MAX_POLL_INTERVAL_MS}

    monkeypatch.setattr(consumer_module, "consumer_config", config)


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background-flush"])
def test_a_sink_down_longer_than_max_poll_interval_keeps_the_consumer_in_its_group(
        broker: EmbeddedBroker, short_poll_interval: None, consumers: list[Running],
        caplog: pytest.LogCaptureFixture, background: bool) -> None:
    bootstrap = broker.bootstrap_servers
    topic = unique_topic("outage")
    send(bootstrap, topic, messages(0, 300), partitions=PARTITIONS)
    store = Store()
    settings = Settings.model_validate({"kafka": {"session_timeout_ms": 6000}})
    consumer = StoreConsumer(settings, bootstrap, topic, f"g-{topic}", store, background)
    with caplog.at_level("WARNING", logger="lakestream.kafka.consumer"):
        consumers.append(Running(consumer))
        wait_for(lambda: store.total() > 0, 60, "the first flush")
        store.down_until = time.monotonic() + OUTAGE_S  # the store goes down mid-stream
        down_at = time.monotonic()
        send(bootstrap, topic, messages(300, 300), partitions=PARTITIONS)  # arrives meanwhile
        wait_for(lambda: store.total() == 600, OUTAGE_S + 60, "every record after the outage")
        recovered_after = time.monotonic() - down_at
        consumers[0].stop()

    assert consumers[0].error is None, consumers[0].error
    assert recovered_after >= OUTAGE_S > MAX_POLL_INTERVAL_MS / 1000
    assert store.failed_flushes >= 3  # tried again on the policy's schedule, not given up
    # still in the group: one assignment, no revocation until stop() closed the consumer
    assert consumer.assignments == PARTITIONS
    assert consumer.revoked[:PARTITIONS] and len(consumer.revoked) == PARTITIONS  # at close
    assert_exactly_once(store, topic, 600)
    text = caplog.text
    assert "write to the test store: the test store is down" in text and "retrying in" in text
    assert "consuming paused" in text and "consuming resumed" in text
    assert "maximum poll interval" not in text.lower()


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background-flush"])
def test_a_revocation_while_paused_hands_the_partitions_over_without_loss_or_double(
        broker: EmbeddedBroker, consumers: list[Running], background: bool) -> None:
    bootstrap = broker.bootstrap_servers
    topic = unique_topic("outage-revoke")
    send(bootstrap, topic, messages(0, 300), partitions=PARTITIONS)
    store = Store()
    settings = Settings.model_validate({"kafka": {"session_timeout_ms": 6000}})
    group = f"g-{topic}"
    first = StoreConsumer(settings, bootstrap, topic, group, store, background)
    consumers.append(Running(first))
    wait_for(lambda: store.total() > 0, 60, "the first flush")
    store.down_until = time.monotonic() + 12.0
    send(bootstrap, topic, messages(300, 300), partitions=PARTITIONS)
    wait_for(lambda: store.failed_flushes >= 1, 30, "a failed flush (consuming paused)")
    second = StoreConsumer(settings, bootstrap, topic, group, store, background)
    consumers.append(Running(second))  # the group rebalances while the first is paused
    wait_for(lambda: first.revoked, 40, "the first consumer to give partitions up")
    wait_for(lambda: store.total() == 600, 90, "every record after the outage")
    time.sleep(1.0)  # anything still buffered somewhere would land now, twice
    for run in consumers:
        run.stop()

    assert [run.error for run in consumers] == [None, None]
    assert second.assignments >= 1  # the second consumer took partitions over
    assert_exactly_once(store, topic, 600)
