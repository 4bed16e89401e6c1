"""Running a program through the executor and a state store, without a broker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lakestream.derive.executor import BatchOutput, Executor
from lakestream.derive.inputs import InputBatch
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.shipped import shipped_plan
from lakestream.derive.state import StateStore
from lakestream.derive.statements import Plan

ANON_KEY = b"statements-test-key"


@dataclass
class Published:
    """Everything a run published: each table's latest value per key (tombstones drop the
    key), each stream's records, and the dead letters by (partition, offset)."""

    tables: dict[str, dict[bytes, dict[str, Any]]] = field(default_factory=dict)
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: dict[tuple[int, int], str] = field(default_factory=dict)
    outputs: list[BatchOutput | None] = field(default_factory=list)

    def add(self, batch: InputBatch, out: BatchOutput | None) -> None:
        """Take in one batch's output, in publishing order."""
        self.outputs.append(out)
        if out is None:
            return
        for topic, (_, values) in out.streams.items():
            self.streams.setdefault(topic, []).extend(orjson.loads(v) for v in values)
        for topic, messages in out.tables.items():
            latest = self.tables.setdefault(topic, {})
            for key, value in messages:
                assert key is not None
                if value is None:
                    latest.pop(key, None)
                else:
                    latest[key] = orjson.loads(value)
        for index, reason in out.rejected:
            self.rejected[(batch.partition, batch.offsets[index])] = reason


class Runner:
    """An executor of ``plan`` on a state store, fed batches of one topic.

    Args:
        url: The state store.
        folder: The data directory (its reference data: the defaults unless overridden).
        plan: The program (default: the shipped one).
    """

    def __init__(self, url: str, folder: Path, plan: Plan | None = None,
                 topic: str = "transactions") -> None:
        self.store = StateStore(url)
        self.executor = Executor(plan or shipped_plan(), self.store, ReferenceStore(folder),
                                 ANON_KEY)
        self.topic = topic
        self.published = Published()

    def batch(self, partition: int, values: Sequence[bytes | None], offsets: Sequence[int],
              timestamps: Sequence[int | None] | None = None) -> BatchOutput | None:
        """Process one batch and commit it (as the processor does, minus the broker)."""
        batch = InputBatch(self.topic, partition, list(values), [None] * len(values),
                           list(offsets), list(timestamps or [None] * len(values)))
        prepared = self.executor.prepare(batch)
        with self.store.transaction() as tx:
            out = self.executor.apply(prepared, tx)
            if out is not None:
                tx.set_position(batch.topic, partition, out.next_offset, out.stream_time)
        self.published.add(batch, out)
        return out

    def close(self) -> None:
        """Release the store and DuckDB."""
        self.executor.close()
        self.store.close()


def table_rows(published: Published, table: str,
               keys: Sequence[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A table's published rows by key tuple, without the key columns (as
    ``tests/derive/expected.py`` gives them)."""
    return {tuple(row[k] for k in keys): {c: v for c, v in row.items() if c not in keys}
            for row in published.tables.get(table, {}).values()}
