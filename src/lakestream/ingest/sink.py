"""What the lake sinks share: flush statistics, derived-stream replays, the Kafka columns.

The sink itself is :class:`lakestream.ingest.delta_sink.DeltaLakeSink`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.decode.schemas import KAFKA_COLUMNS, TIMESTAMP


@dataclass
class FlushStats:
    """What one flush of one partition wrote."""

    records: int = 0
    rejected: int = 0
    files: int = 0
    bytes: int = 0

    def __iadd__(self, other: FlushStats) -> FlushStats:
        self.records += other.records
        self.rejected += other.rejected
        self.files += other.files
        self.bytes += other.bytes
        return self


_OURS = frozenset([*KAFKA_COLUMNS.names, "_kafka_topic"])  # columns the sink sets, not the events


SEQ = 1 << 16
"""Records one source offset may give a derived stream (``INSERT INTO`` adds some)."""


def replay_position(offset: int, nth: int) -> int:
    """The replay position of the ``nth`` (1-based) record of source offset ``offset``."""
    return offset * SEQ + nth


def legacy_replay_position(offset: int | None) -> int | None:
    """The position a lake written before replay positions holds: the highest source
    offset it landed, all of whose records it landed."""
    return None if offset is None else replay_position(offset, SEQ - 1)


def replay_mask(table: pa.Table, seen: int | None) -> tuple[pa.Array, int | None]:
    """Which rows of a derived stream are new: their replay position exceeds every earlier one.

    ``process`` writes each derived record to the partition of its source, in
    source-offset order, the records one source offset gives (a stream and its
    ``INSERT INTO``s) side by side and always in the same order; after a crash it
    replays from its last commit. A record's replay position is its
    ``_source_offset`` and its rank among the records of that source offset
    (:func:`replay_position`): a replayed record's is never above what came before it.

    Returns:
        The keep mask, and the new highest replay position (``None`` if unknown).
    """
    if "_source_offset" not in table.column_names:
        return pa.array([True] * table.num_rows, pa.bool_()), None
    if not table.num_rows:
        return pa.array([], pa.bool_()), seen
    raw = table.column("_source_offset").combine_chunks()
    source = raw.fill_null(-1).cast(pa.int64())
    n = len(source)
    index = pa.array(range(n), pa.int64())
    starts = pa.concat_arrays([pa.array([True]), pc.not_equal(source.slice(1),
                                                              source.slice(0, n - 1))])
    first = pc.cumulative_max(pc.if_else(starts, index, 0))  # where each offset's run began
    position = pc.add(pc.multiply(source, SEQ), pc.add(pc.subtract(index, first), 1))
    running = pc.cumulative_max(position)
    floor = -1 if seen is None else seen
    before = pa.concat_arrays([pa.array([floor], pa.int64()),
                               pc.max_element_wise(running, floor).slice(0, n - 1)])
    keep = pc.or_(pc.is_null(raw), pc.and_(pc.greater_equal(raw.fill_null(-1), 0),
                                           pc.greater(position, before)))
    kept = pc.filter(position, pc.and_(keep, pc.is_valid(raw)))
    top = pc.max(kept).as_py() if len(kept) else None
    return keep, max(floor, top) if top is not None else seen


def _keys(keys: Sequence[bytes | None]) -> pa.Array:
    raw = pa.array(keys, pa.binary())
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [k.decode("utf-8", "replace") if k is not None else None for k in keys], pa.string()
        )


def _with_kafka_columns(
    table: pa.Table,
    indices: pa.Array,
    partition: int,
    offsets: Sequence[int],
    timestamps: Sequence[int | None],
    keys: pa.Array,
    topic: str | None = None,
) -> pa.Table:
    """``table`` with the Kafka coordinates as columns (and the topic, for bronze)."""
    n = table.num_rows
    columns = {
        "_kafka_partition": pa.array([partition] * n, pa.int32())
        if n < 1024
        else pa.repeat(pa.scalar(partition, pa.int32()), n),
        "_kafka_offset": pa.array(offsets, pa.int64()).take(indices),
        "_kafka_timestamp": pa.array(timestamps, pa.int64()).cast(TIMESTAMP).take(indices),
        "_kafka_key": keys.take(indices),
    }
    for name in KAFKA_COLUMNS.names:
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(KAFKA_COLUMNS.field(name), columns[name])
    if topic is not None:
        if "_kafka_topic" in table.column_names:
            table = table.drop_columns(["_kafka_topic"])
        table = table.append_column("_kafka_topic", pa.repeat(pa.scalar(topic, pa.string()), n))
    return table
