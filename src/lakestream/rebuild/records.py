"""Turn source messages into a feed's lake rows exactly as the streaming ingest does.

A rebuilt day must hold the same rows, column for column, as the day the
ingest wrote: the same decoder (schema, required fields), the same Kafka
columns, the same replay filter for derived streams. So this module reuses
the ingest's pieces instead of re-implementing them.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from lakestream.decode.schemas import TIMESTAMP
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink

# The ingest's own helpers: the rows must match what it writes, byte for byte.
from lakestream.ingest.sink import _keys as message_keys
from lakestream.ingest.sink import _with_kafka_columns as with_kafka_columns
from lakestream.ingest.sink import replay_mask
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.lake.storage import Storage
from lakestream.lake.writer import storable


@dataclass
class DeadLetters:
    """Rejected records of one Kafka partition, with what the DLQ keeps of each."""

    values: list[bytes | None] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps: list[int | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def add(self, chunk: PartitionBuffer, i: int, key: str | None, reason: str) -> None:
        """Keep message ``i`` of ``chunk``, rejected for ``reason``."""
        self.values.append(chunk.values[i])
        self.keys.append(key)
        self.offsets.append(chunk.offsets[i])
        self.timestamps.append(chunk.timestamps[i])
        self.reasons.append(reason)


class FeedRows:
    """Decodes chunks of one feed's messages into its lake rows, keeping one day.

    A rejected record belongs to the day when the lake's day held it, or when
    its time field names the day (a wrong type elsewhere leaves the time
    readable), or else when its Kafka timestamp does (the DLQ partition it goes to).

    Args:
        storage: The lake (only to build the ingest's sink, which holds the decoder).
        feed: The feed.
        day: Keep only rows whose partition field falls on this date (``None``: all).
        held: Per Kafka partition, the offsets the lake's day holds.
        limits: Per Kafka partition, the last offset whose rows and dead letters count
            (``None``: all); records past it are only decoded for ``kafka_day_dead``.

    Attributes:
        dead: The day's rejected records, per Kafka partition.
        kafka_day_dead: Rejected records whose Kafka timestamp falls on the day (the
            dead-letter table's partition), at any offset, per Kafka partition.
        replays: Rows of the day a derived stream replayed (dropped, as the ingest does).
    """

    def __init__(self, storage: Storage, feed: Feed, day: dt.date | None,
                 held: dict[int, pa.Array] | None = None,
                 limits: dict[int, int] | None = None) -> None:
        self.feed = feed
        self.day = day
        self.held = held or {}
        self.limits = limits
        self.decoder = DeltaLakeSink(storage, feed).decoder
        self.max_source: dict[int, int | None] = {}
        self.dead: dict[int, DeadLetters] = {}
        self.kafka_day_dead: dict[int, DeadLetters] = {}
        self.replays = 0

    @property
    def rejected(self) -> int:
        """How many of the day's records were rejected."""
        return sum(len(d) for d in self.dead.values())

    def decode(self, chunk: PartitionBuffer) -> pa.Table | None:
        """The chunk's good rows (of the day), with the Kafka columns; ``None`` if none."""
        result = self.decoder.decode(chunk.values)
        keys = message_keys(chunk.keys)
        if result.rejected:
            self._keep_dead(chunk, keys.to_pylist(), result.rejected)
        table, indices = result.table, result.indices
        if table is not None and self.limits is not None:
            limit = self.limits.get(chunk.partition, -1)
            keep = pc.less_equal(pa.array(chunk.offsets, pa.int64()).take(indices), limit)
            table, indices = table.filter(keep), indices.filter(keep)
        if table is None or table.num_rows == 0:
            return None
        if self.feed.dedupe_source:
            keep, top = replay_mask(table, self.max_source.get(chunk.partition))
            self.max_source[chunk.partition] = top
            replayed = self._of_day(table.filter(pc.invert(keep)))
            self.replays += replayed.num_rows if replayed is not None else 0
            table, indices = table.filter(keep), indices.filter(keep)
            if table.num_rows == 0:
                return None
        table = with_kafka_columns(table, indices, chunk.partition, chunk.offsets,
                                   chunk.timestamps, keys,
                                   chunk.topic if self.feed.layer == "bronze" else None)
        return self._of_day(table)

    def _of_day(self, table: pa.Table) -> pa.Table | None:
        if self.day is None:
            return table
        days = pc.cast(table.column(self.feed.partition_field), pa.date32())
        kept = table.filter(pc.fill_null(pc.equal(days, pa.scalar(self.day, pa.date32())), False))
        return kept if kept.num_rows else None

    def _keep_dead(self, chunk: PartitionBuffer, keys: list[Any],
                   rejected: list[tuple[int, str]]) -> None:
        if self.day is not None:
            by_kafka = self.kafka_day_dead.setdefault(chunk.partition, DeadLetters())
            for i, reason in rejected:
                ts = chunk.timestamps[i]
                if ts is not None and _utc_date(ts) == self.day:
                    by_kafka.add(chunk, i, keys[i], reason)
        limit = None if self.limits is None else self.limits.get(chunk.partition, -1)
        if limit is not None:
            rejected = [(i, why) for i, why in rejected if chunk.offsets[i] <= limit]
        dead = self.dead.setdefault(chunk.partition, DeadLetters())
        held = self.held.get(chunk.partition)
        was_held = [False] * len(rejected) if held is None else pc.is_in(
            pa.array([chunk.offsets[i] for i, _ in rejected], pa.int64()),
            value_set=held).to_pylist()
        for (i, reason), in_day in zip(rejected, was_held, strict=True):
            if not in_day and self.day is not None and self._day_of(
                    chunk.values[i], chunk.timestamps[i]) != self.day:
                continue
            dead.add(chunk, i, keys[i], reason)

    def _day_of(self, value: bytes | None, timestamp: int | None) -> dt.date | None:
        """The day a rejected record belongs to (see the class)."""
        if self.feed.time_field:
            when = _event_time(value, self.feed.time_field)
            if when is not None:
                return when
        if timestamp is None:
            return None
        return _utc_date(timestamp)


def _utc_date(timestamp_ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).date()


def _event_time(value: bytes | None, path: str) -> dt.date | None:
    """The date of the field ``path`` of a JSON object, parsed as the decoder parses times."""
    try:
        found: Any = json.loads(value or b"")
        for part in path.split("."):
            found = found.get(part) if isinstance(found, dict) else None
    except (ValueError, RecursionError):
        return None
    if found is None:
        return None
    options = pajson.ParseOptions(explicit_schema=pa.schema([("t", TIMESTAMP)]))
    try:
        table = pajson.read_json(io.BytesIO(json.dumps({"t": found}).encode()),
                                 parse_options=options)
    except pa.ArrowException:
        return None
    when = table.column("t")[0].as_py()
    return when.date() if when is not None else None


def concat(tables: list[pa.Table]) -> pa.Table | None:
    """One table from several chunks' rows (columns unified by name), or ``None``.

    Columns without a type (``{}``, a field null in every row of a chunk) are dropped
    first, as the sink drops them before a commit: another chunk may type them.
    """
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables([storable(t) for t in tables], promote_options="permissive")
