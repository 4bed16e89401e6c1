"""Parquet and dead-letter helpers of the lake's writers: the batch identity, the dead
letters' rows, and what Parquet can store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from lakestream.decode.schemas import TIMESTAMP, storable

PARQUET_OPTIONS = {
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 256 * 1024,
}

DLQ_SCHEMA = pa.schema(
    [
        ("raw", pa.binary()),
        ("reason", pa.string()),
        ("_kafka_topic", pa.string()),
        ("_kafka_partition", pa.int32()),
        ("_kafka_offset", pa.int64()),
        ("_kafka_timestamp", TIMESTAMP),
        ("_kafka_key", pa.string()),
        ("rejected_at", TIMESTAMP),
    ]
)


@dataclass(frozen=True)
class BatchId:
    """Which dataset and Kafka offsets a batch covers."""

    dataset: str
    feed: str
    topic: str
    partition: int
    start: int
    end: int


def parquet_bytes(table: pa.Table) -> pa.Buffer:
    """Serialize ``table`` to an in-memory Parquet file (snappy)."""
    sink = pa.BufferOutputStream()
    pq.write_table(storable(table), sink, **PARQUET_OPTIONS)
    return sink.getvalue()


def dlq_table(
    batch: BatchId,
    rejected: Sequence[tuple[int, str]],
    values: Sequence[bytes | None],
    keys: Sequence[str | None],
    offsets: Sequence[int],
    timestamps: Sequence[int | None],
) -> pa.Table:
    """Build the DLQ rows for ``rejected`` ``(index, reason)`` pairs of a batch."""
    idx = [i for i, _ in rejected]
    now = dt.datetime.now(dt.UTC)
    return pa.table(
        {
            "raw": pa.array([values[i] for i in idx], pa.binary()),
            "reason": pa.array([r for _, r in rejected], pa.string()),
            "_kafka_topic": pa.array([batch.topic] * len(idx), pa.string()),
            "_kafka_partition": pa.array([batch.partition] * len(idx), pa.int32()),
            "_kafka_offset": pa.array([offsets[i] for i in idx], pa.int64()),
            "_kafka_timestamp": pa.array([timestamps[i] for i in idx], TIMESTAMP),
            "_kafka_key": pa.array([keys[i] for i in idx], pa.string()),
            "rejected_at": pa.array([now] * len(idx), TIMESTAMP),
        },
        schema=DLQ_SCHEMA,
    )
