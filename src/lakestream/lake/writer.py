"""Turn one decoded batch of one Kafka partition into staged, date-partitioned Parquet files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakestream.decode.schemas import TIMESTAMP
from lakestream.errors import TerminalError
from lakestream.lake.layout import date_partition, dlq_path, staging_path
from lakestream.lake.ledger import StagedFile
from lakestream.lake.storage import Storage

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

    @property
    def file_name(self) -> str:
        """Deterministic per batch: ``<topic>-<partition>-<start>-<end>.parquet``."""
        return f"{self.topic}-{self.partition}-{self.start:012d}-{self.end:012d}.parquet"


def parquet_bytes(table: pa.Table) -> pa.Buffer:
    """Serialize ``table`` to an in-memory Parquet file (snappy)."""
    sink = pa.BufferOutputStream()
    pq.write_table(storable(table), sink, **PARQUET_OPTIONS)
    return sink.getvalue()


def storable(table: pa.Table) -> pa.Table:
    """``table`` without columns that hold no type: objects with no field (``{}``, which
    Parquet cannot store) and fields null in every record, at any depth.

    Either becomes a column as soon as a record gives it a value (SPEC §8, schema
    evolution), so a column's existence and type never depend on how records were
    batched. Arrays keep their item type, even an unknown one (``[]``).
    """
    pruned = [(field, _without_empty_structs(field.type)) for field in table.schema]
    if all(kind == field.type for field, kind in pruned):
        return table
    kept = [field.with_type(kind) for field, kind in pruned if kind is not None]
    return table.select([f.name for f in kept]).cast(pa.schema(kept, table.schema.metadata))


def _without_empty_structs(kind: pa.DataType) -> pa.DataType | None:
    """``kind`` with its field-less structs and null fields removed (``None``: nothing left)."""
    if pa.types.is_null(kind):
        return None
    if pa.types.is_struct(kind):
        fields = [kind.field(i) for i in range(kind.num_fields)]
        kept = [f.with_type(t) for f in fields if (t := _without_empty_structs(f.type)) is not None]
        return pa.struct(kept) if kept else None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if pa.types.is_null(kind.value_type):
            return kind
        inner = _without_empty_structs(kind.value_type)
        if inner is None:
            return None
        item = kind.value_field.with_type(inner)
        return pa.list_(item) if pa.types.is_list(kind) else pa.large_list(item)
    return kind


def stage_data(
    storage: Storage, batch: BatchId, table: pa.Table, time_field: str
) -> list[StagedFile]:
    """Write one staged file per event date of ``table`` (partitioned by ``time_field``)."""
    days = pc.cast(table.column(time_field), pa.date32())
    if days.null_count:  # callers require the field; never drop records silently
        raise TerminalError(f"{days.null_count} records of {batch.dataset} have no {time_field}")
    staged: list[StagedFile] = []
    unique = pc.unique(days).to_pylist()
    for day in sorted(d for d in unique if d is not None):
        part = (
            table if len(unique) == 1 else table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        )
        staged.append(
            _stage(storage, batch, part, f"{batch.dataset}/{date_partition(day)}", day, "data")
        )
    return staged


def stage_dlq(storage: Storage, batch: BatchId, rejects: pa.Table) -> list[StagedFile]:
    """Write the batch's rejected records to the feed's dead-letter dataset, by Kafka date."""
    return [_stage(storage, batch, part, folder, day, "dlq")
            for day, folder, part in _dlq_days(batch, rejects)]


def write_dlq(storage: Storage, batch: BatchId, rejects: pa.Table, tag: str) -> list[str]:
    """Write dead letters straight into the DLQ, by Kafka date (no ledger: a day rebuild's).

    Files are named ``<tag>-<topic>-<partition>-<first>-<last>.parquet``: the same
    records written again replace their file rather than adding a copy.
    """
    written = []
    for _, folder, part in _dlq_days(batch, rejects):
        path = f"{folder}/{tag}-{batch.file_name}"
        storage.write_atomic(path, memoryview(parquet_bytes(part)))
        written.append(path)
    return written


def _dlq_days(batch: BatchId, rejects: pa.Table) -> list[tuple[dt.date, str, pa.Table]]:
    """(day, DLQ folder, rows) of rejected records by the date of their Kafka timestamp."""
    days = pc.cast(rejects.column("_kafka_timestamp"), pa.date32())
    days = pc.fill_null(days, pa.scalar(dt.datetime.now(dt.UTC).date(), pa.date32()))
    return [(day, f"{dlq_path(batch.feed)}/{date_partition(day)}",
             rejects.filter(pc.equal(days, pa.scalar(day, pa.date32()))))
            for day in sorted(pc.unique(days).to_pylist())]


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


def _stage(
    storage: Storage, batch: BatchId, table: pa.Table, folder: str, day: dt.date, kind: str
) -> StagedFile:
    data = parquet_bytes(table)
    name = f"{kind}-{day.isoformat()}-{batch.file_name}"
    staging = f"{staging_path(batch.dataset, batch.topic, batch.partition)}/{name}"
    storage.write_atomic(staging, memoryview(data))
    return StagedFile(
        staging=staging,
        final=f"{folder}/{batch.file_name}",
        records=table.num_rows,
        bytes=data.size,
        date=day.isoformat(),
        kind=kind,
    )
