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

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import lakestream.kafka.consumer as consumer_module
from lakestream.config import Settings
from lakestream.errors import FencedError, StorageUnavailableError
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.consumer import BatchingConsumer, ConsumeOptions, ConsumeReport
from tests.conftest import unique_topic
from tests.ingest.helpers import send

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_POLL_INTERVAL_MS = 10_000
OUTAGE_S = 15.0
PARTITIONS = 3

Key = tuple[str, int]


@dataclass
class Store:
    """A durable store shared by the consumers of a group: per partition, the offsets it holds."""

    down_until: float = 0.0
    offsets: dict[Key, list[int]] = field(default_factory=dict)
    failed_flushes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_offset(self, key: Key) -> int | None:
        with self.lock:
            held = self.offsets.get(key)
            return held[-1] + 1 if held else None

    def commit(self, key: Key, expected: int | None, offsets: list[int]) -> None:
        with self.lock:
            if time.monotonic() < self.down_until:
                self.failed_flushes += 1
                raise StorageUnavailableError("the test store is down", dataset="memory://store")
            held = self.offsets.setdefault(key, [])
            if (held[-1] + 1 if held else None) != expected:
                raise FencedError(f"{key} moved: another consumer committed it",
                                  topic=key[0], partition=key[1])
            held.extend(offsets)

    def total(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.offsets.values())


class StoreConsumer(BatchingConsumer):
    """A consumer whose sink is a :class:`Store` (exactly once by the store's offsets)."""

    flush_what = "write to the test store"

    def __init__(self, settings: Settings, bootstrap: str, topic: str, group: str, store: Store,
                 background: bool) -> None:
        self.background_flush = background
        options = ConsumeOptions(group_id=group, flush_interval_s=0.2, max_batch_records=50)
        super().__init__(settings, bootstrap, [topic], options, ConsumeReport())
        self.store = store
        self.next: dict[Key, int | None] = {}
        self.assignments = 0
        self.revoked: list[Key] = []

    def start_offset(self, topic: str, partition: int) -> int | None:
        self.assignments += 1
        start = self.next[(topic, partition)] = self.store.next_offset((topic, partition))
        return start

    def committed_offset(self, topic: str, partition: int) -> int | None:
        return self.next.get((topic, partition))

    def flush_partition(self, buffer: PartitionBuffer) -> None:
        key = (buffer.topic, buffer.partition)
        expected = self.next.get(key)
        fresh = [o for o in buffer.offsets if expected is None or o >= expected]
        if fresh:
            self.store.commit(key, expected, fresh)
            self.next[key] = fresh[-1] + 1

    def partition_revoked(self, topic: str, partition: int) -> None:
        self.revoked.append((topic, partition))
        self.next.pop((topic, partition), None)


class Running:
    """A consumer's run in a thread; what it raised, if anything."""

    def __init__(self, consumer: StoreConsumer) -> None:
        self.consumer = consumer
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.consumer.run()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the consumer did not stop"


@pytest.fixture
def short_poll_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """``max.poll.interval.ms`` of 10 s (Lakestream's floor is 300 s)."""
    original = consumer_module.consumer_config

    def config(settings: Settings, bootstrap: str, group_id: str) -> dict[str, Any]:
        return {**original(settings, bootstrap, group_id),
                "max.poll.interval.ms": MAX_POLL_INTERVAL_MS}

    monkeypatch.setattr(consumer_module, "consumer_config", config)


@pytest.fixture
def consumers() -> Iterator[list[Running]]:
    running: list[Running] = []
    try:
        yield running
    finally:
        for run in running:
            if run.thread.is_alive():
                run.consumer.stop()
                run.thread.join(60)


def messages(first: int, count: int) -> list[tuple[bytes | None, bytes]]:
    return [(f"k{n}".encode(), f'{{"n": {n}}}'.encode()) for n in range(first, first + count)]


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def assert_exactly_once(store: Store, topic: str, produced: int) -> None:
    per_partition = {key: offsets for key, offsets in store.offsets.items() if key[0] == topic}
    assert sum(len(v) for v in per_partition.values()) == produced
    for key, offsets in per_partition.items():
        assert offsets == list(range(len(offsets))), f"{key}: a gap or a double"


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
