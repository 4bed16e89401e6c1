"""A test sink for consumer-group tests: an in-memory store with the lake's rules.

It keeps each partition's next offset and refuses (fenced) a batch from a consumer
whose idea of that offset is stale, so a consumer that wrote a partition after
losing it fails the run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lakestream.config import Settings
from lakestream.errors import FencedError, StorageUnavailableError
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.consumer import BatchingConsumer, ConsumeOptions, ConsumeReport

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
