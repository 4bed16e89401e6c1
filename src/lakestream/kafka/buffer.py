"""Messages of one Kafka partition held as columns: the one batch every reader hands on.

The consumer loop fills one :class:`PartitionBuffer` per partition between
flushes; a bounded scan of a topic (batch exports, day rebuilds) hands out its
reads in the same class, so sinks and decoders take either as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartitionBuffer:
    """Columns of consecutive messages of one topic-partition (in offset order).

    Built empty and filled with :meth:`add`, or built from columns already read
    (its size and age are then counted from them).

    Attributes:
        nbytes: Bytes of the values held.
        first_at: ``time.monotonic()`` when the first message held came in.
    """

    topic: str
    partition: int
    values: list[bytes | None] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps: list[int | None] = field(default_factory=list)
    nbytes: int = field(default=0, init=False)
    first_at: float = field(default=0.0, init=False, compare=False)

    def __post_init__(self) -> None:
        self.nbytes = sum(len(v) for v in self.values if v)
        if self.offsets:
            self.first_at = time.monotonic()

    def add(
        self, value: bytes | None, key: bytes | None, offset: int, timestamp: int | None
    ) -> None:
        """Append one message."""
        if not self.offsets:
            self.first_at = time.monotonic()
        self.values.append(value)
        self.keys.append(key)
        self.offsets.append(offset)
        self.timestamps.append(timestamp)
        self.nbytes += len(value) if value else 0

    def __len__(self) -> int:
        return len(self.offsets)

    def clear(self) -> None:
        """Empty the buffer after a flush."""
        self.values, self.keys, self.offsets, self.timestamps = [], [], [], []
        self.nbytes = 0

    def slice(self, start: int, end: int) -> PartitionBuffer:
        """The messages at positions ``start`` to ``end`` (exclusive), as a new buffer."""
        return PartitionBuffer(self.topic, self.partition, self.values[start:end],
                               self.keys[start:end], self.offsets[start:end],
                               self.timestamps[start:end])

    def select(self, positions: Iterable[int]) -> PartitionBuffer:
        """The messages at ``positions`` (ascending), as a new buffer."""
        chosen = list(positions)
        return PartitionBuffer(self.topic, self.partition, [self.values[i] for i in chosen],
                               [self.keys[i] for i in chosen], [self.offsets[i] for i in chosen],
                               [self.timestamps[i] for i in chosen])

    def columns_from(self, start: int | None) -> tuple[list[Any], ...] | None:
        """The buffered columns from offset ``start`` on (``None``: nothing that new)."""
        offsets = self.offsets
        if start is None or offsets[0] >= start:
            return self.values, self.keys, self.offsets, self.timestamps
        if offsets[-1] < start:
            return None
        cut = next(i for i, o in enumerate(offsets) if o >= start)
        return self.values[cut:], self.keys[cut:], self.offsets[cut:], self.timestamps[cut:]
