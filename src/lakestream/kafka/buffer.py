"""In-memory buffer of the messages consumed from one Kafka partition since the last flush."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartitionBuffer:
    """Columns of the buffered messages of one topic-partition (in offset order)."""

    topic: str
    partition: int
    values: list[bytes | None] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps: list[int | None] = field(default_factory=list)
    nbytes: int = 0
    first_at: float = 0.0

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

    def columns_from(self, start: int | None) -> tuple[list[Any], ...] | None:
        """The buffered columns from offset ``start`` on (``None``: nothing that new)."""
        offsets = self.offsets
        if start is None or offsets[0] >= start:
            return self.values, self.keys, self.offsets, self.timestamps
        if offsets[-1] < start:
            return None
        cut = next(i for i, o in enumerate(offsets) if o >= start)
        return self.values[cut:], self.keys[cut:], self.offsets[cut:], self.timestamps[cut:]
