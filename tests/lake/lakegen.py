"""Build small lakes without a broker: the ingest's own (Delta) sink, fed synthetic Kafka
batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from lakestream.config import S3Settings
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.lake.storage import Storage, open_storage

FEED = Feed(name="feed", topic="events", schema={"id": "string", "at": "timestamp",
                                                 "amount": "float64"},
            time_field="at", required=("id", "at"))


def local_lake(root: Path) -> Storage:
    """A local lake at ``root``."""
    return open_storage(str(root), S3Settings())


def batches(count: int, per_batch: int = 10, partitions: int = 2,
            days: tuple[str, ...] = ("2025-01-15", "2025-01-16"),
            extra: dict[str, Any] | None = None) -> Iterator[tuple[int, list[int], list[bytes]]]:
    """``(partition, offsets, values)`` of ``count`` batches per partition, deterministic."""
    n = 0
    next_offset = dict.fromkeys(range(partitions), 0)
    for b in range(count):
        for p in range(partitions):
            values = []
            for i in range(per_batch):
                n += 1
                body = {"id": f"e{n}", "at": f"{days[(b + i) % len(days)]}T10:{i:02d}:00Z",
                        "amount": n / 4, **(extra or {})}
                values.append(json.dumps(body).encode())
            offsets = list(range(next_offset[p], next_offset[p] + per_batch))
            next_offset[p] += per_batch
            yield p, offsets, values


def land(storage: Storage, batches_: int, per_batch: int = 10, partitions: int = 2,
         days: tuple[str, ...] = ("2025-01-15", "2025-01-16"), feed: Feed = FEED,
         extra: dict[str, Any] | None = None, delta: bool = True) -> DeltaLakeSink:
    """Commit small batches per partition through the ingest's sink (after what it holds).

    ``delta`` is ignored (every dataset is a Delta table); it stays for callers that
    still pass it."""
    del delta
    sink = DeltaLakeSink(storage, feed)
    for p in range(partitions):
        sink.recover(feed.topic, p)
    for p, offsets, values in batches(batches_, per_batch, partitions, days, extra):
        start = sink.next_offset.get((feed.topic, p)) or 0
        shifted = [start + o - offsets[0] for o in offsets] if start else offsets
        sink.write(feed.topic, p, values, [b"k"] * len(values), shifted,
                   [1736935200000] * len(values))
    sink.publish_metadata()
    return sink


def forget_types(root: Path, dataset: str = "streams/feed") -> None:
    """Drop the committed types from a legacy ledger (a Delta table has none: its schema is
    the contract); kept while tests of the legacy rebuild still call it."""
    for manifest in (root / dataset / "_ledger").rglob("*.json"):
        data = json.loads(manifest.read_text())
        data.pop("contract", None)
        manifest.write_text(json.dumps(data))


def checksums(root: Path, dataset: str = "streams/feed") -> list[tuple[Any, ...]]:
    """Row count and a checksum of every column of the table's snapshot (read through its
    Delta log: files a commit removed but vacuum has not deleted yet are not counted)."""
    from deltalake import DeltaTable

    con = duckdb.connect()
    con.register("snapshot", DeltaTable(str(root / dataset)).to_pyarrow_dataset().to_table())
    columns = [r[0] for r in con.sql("DESCRIBE SELECT * FROM snapshot").fetchall()]
    sums = ", ".join(f'sum(hash("{c}")), count("{c}")' for c in columns)
    return [tuple(columns), *con.sql(f"SELECT count(*), {sums} FROM snapshot").fetchall()]
