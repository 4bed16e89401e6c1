"""The lake sink of one feed on Delta tables: rows and dead letters, offsets in their logs.

Every feed's dataset is a Delta table (``docs/lake.md``); the consumer loop
drives this sink through ``recover`` / ``write`` / ``forget``.

**Exactly once across two tables.** A flush round (the batches of several Kafka
partitions of the feed's topic, decoded as one) commits its dead letters
first (the feed's ``_dlq/<feed>`` table), then its rows (the dataset's table):
one commit per table, carrying each partition's application transaction, each
partition fenced on its own (:meth:`~lakestream.lake.delta.DeltaDataset.append_partitions`).
The rows table's transaction is the resume point. A crash between the two
commits replays the batches; the replay lands in the dead-letter table only
the records past that table's own transaction version of the partition, so
each table holds each offset once.

**Derived streams** (``dedupe_source``) keep their highest source offset as a
second application transaction of the rows table, committed with the rows:
a replayed derived record is dropped by the same rule as before
(:func:`~lakestream.ingest.sink.replay_mask`).

**Types** are the table's: the decoder's committed types are the rows
table's schema (minus the columns the sink adds), so the type contract
(``decode/contract.py``) holds whichever batch a value arrives in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.decode.json_batch import DecodeResult, JsonDecoder
from lakestream.decode.schemas import KAFKA_COLUMNS, arrow_schema
from lakestream.errors import FencedError
from lakestream.feeds import Feed
from lakestream.ingest.sink import (
    _OURS,
    FlushStats,
    _keys,
    _with_kafka_columns,
    legacy_replay_position,
    replay_mask,
)
from lakestream.lake.dead_letters import (
    DATE_COLUMNS,
    dead_letter_rows,
    dead_letter_table,
    with_dates,
)
from lakestream.lake.delta import DeltaDataset, OffsetRange, PartitionRows, check_not_legacy
from lakestream.lake.delta import app_id as _app
from lakestream.lake.delta_maintenance import widen_columns
from lakestream.lake.delta_metadata import delta_metadata
from lakestream.lake.layout import dlq_path
from lakestream.lake.storage import Storage
from lakestream.lake.writer import BatchId, storable

SOURCE_PREFIX = "source:"  # before replay positions: a derived stream's highest source offset
REPLAY_PREFIX = "replay:"  # a derived stream's highest replay position (app id "replay:<t>")

Key = tuple[str, int]


class DeltaLakeSink:
    """Exactly-once writer of one feed's dataset and dead letters as Delta tables."""

    def __init__(self, storage: Storage, feed: Feed) -> None:
        """Raises ConfigError if the dataset or its dead letters were written before the
        lake was kept as Delta tables (``lakestream lake upgrade`` converts them)."""
        for rel in (feed.dataset, dlq_path(feed.name)):
            check_not_legacy(storage, rel)
        self.feed = feed
        self.data = DeltaDataset(storage, feed.dataset, DATE_COLUMNS)
        self.dlq = dead_letter_table(storage, feed.name)
        required = tuple(
            dict.fromkeys([*feed.required, *([feed.time_field] if feed.time_field else [])])
        )
        self.declared = arrow_schema(feed.schema_spec, feed.time_field)
        self.decoder = self._decoder(JsonDecoder(self.declared, required), self._committed_types())
        self.next_offset: dict[Key, int | None] = {}
        self._dlq_last: dict[Key, int | None] = {}
        self._source_seen: dict[Key, int | None] = {}  # the replay floor of each partition
        self._replay_held: dict[Key, int | None] = {}  # what the log holds of "replay:<t>"

    def _committed_types(self, refresh: bool = True) -> pa.Schema:
        table = self.data.table(refresh)
        if table is None:
            return pa.schema([])
        schema = pa.schema(table.schema().to_arrow())
        return pa.schema([f for f in schema
                          if f.name not in _OURS and f.name not in DATE_COLUMNS])

    def recover(self, topic: str, partition: int) -> int | None:
        """The next offset to consume (``None``: the start), from the two tables' logs."""
        key = (topic, partition)
        data = self.data.transaction_versions([_app(topic, partition),
                                               _app(REPLAY_PREFIX + topic, partition),
                                               _app(SOURCE_PREFIX + topic, partition)])
        last = data[_app(topic, partition)]
        self._replay_held[key] = data[_app(REPLAY_PREFIX + topic, partition)]
        self._source_seen[key] = _floor(self._replay_held[key],
                                        data[_app(SOURCE_PREFIX + topic, partition)])
        self._dlq_last[key] = self.dlq.transaction_versions(
            [_app(topic, partition)])[_app(topic, partition)]
        self.next_offset[key] = None if last is None else last + 1
        self.decoder = self._decoder(self.decoder, self._committed_types())
        return self.next_offset[key]

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: stop tracking it."""
        for known in (self.next_offset, self._dlq_last, self._source_seen, self._replay_held):
            known.pop((topic, partition), None)

    def write(self, topic: str, partition: int, values: Sequence[bytes | None],
              keys: Sequence[bytes | None], offsets: Sequence[int],
              timestamps: Sequence[int | None]) -> FlushStats:
        """Decode one contiguous run of a partition's messages and commit it to both tables
        (:meth:`write_round` of that one run).

        Raises:
            FencedError: Another writer landed this partition since this one took it.
        """
        result = self.write_round(topic, [Run(partition, values, keys, offsets, timestamps)])
        if partition in result.fenced:
            raise FencedError(result.fenced[partition])
        return result.stats

    def write_round(self, topic: str, runs: Sequence[Run]) -> RoundResult:
        """Decode runs of several partitions of ``topic`` as one batch and commit them: one
        commit to the dead letters (if any), then one to the rows.

        Each partition is fenced on its own (:meth:`DeltaDataset.append_partitions`):
        one whose partition another writer took is dropped from both commits and
        named in the result; the others land. A retry of a round whose commit
        landed although the writer saw a failure (a lost response) finds each
        batch's last offset in the table's log and commits nothing twice.
        """
        runs = [r for r in runs if len(r.offsets)]
        if not runs:
            return RoundResult(FlushStats(), {})
        values = runs[0].values if len(runs) == 1 else [v for r in runs for v in r.values]
        pieces = split_round(self.decoder.decode(values), runs)
        keys = {r.partition: _keys(r.keys) for r in runs}
        rejected, fenced = self._commit_dead_letters(topic, pieces, keys)
        parts: dict[int, PartitionRows] = {}
        tops: dict[int, int | None] = {}
        for piece in pieces:
            p = piece.run.partition
            if p in fenced:
                continue
            parts[p], tops[p] = self._rows(topic, piece, keys[p])
        outcome = self.data.append_partitions(parts, self.storable_rows)
        fenced.update(outcome.fenced)
        rows = 0
        for p in outcome.committed + outcome.landed:
            key = (topic, p)
            part = parts[p]
            rows += part.rows.num_rows if part.rows is not None else 0
            self.next_offset[key] = part.ranges[0].last + 1
            if p in outcome.committed:
                for moved in part.ranges:  # what the commit set "replay:<t>" to, if it did
                    if moved.topic == REPLAY_PREFIX + topic:
                        self._replay_held[key] = moved.last
                self._source_seen[key] = tops[p]
            else:  # landed by an earlier try: the log says where it stands
                self._replay_held[key] = self._held(self.data, REPLAY_PREFIX + topic, p)
                self._source_seen[key] = _floor(self._replay_held[key], self._held(
                    self.data, SOURCE_PREFIX + topic, p))
        if rows:  # append_partitions has just read the new log: no second read
            self.decoder = self._decoder(self.decoder, self._committed_types(refresh=False))
        return RoundResult(FlushStats(rows, rejected, 0, 0), fenced)

    def _rows(self, topic: str, piece: RunRows,
              keys: pa.Array) -> tuple[PartitionRows, int | None]:
        """One partition's share of the rows commit, and its new highest source offset."""
        run = piece.run
        key = (topic, run.partition)
        nxt = self.next_offset.get(key)
        ranges = [OffsetRange(topic, run.partition, None if nxt is None else nxt - 1,
                              run.offsets[-1])]
        table, indices = piece.table, piece.indices
        seen = self._source_seen.get(key)
        if table is not None and self.feed.dedupe_source:
            keep, top = replay_mask(table, seen)
            table, indices = table.filter(keep), indices.filter(keep)
            if top is not None and top != seen:
                ranges.append(OffsetRange(REPLAY_PREFIX + topic, run.partition,
                                          self._replay_held.get(key), top))
                seen = top
        if table is None or not table.num_rows:
            return PartitionRows(None, ranges), seen
        return PartitionRows(self.with_coordinates(topic, run, table, indices, keys), ranges), seen

    def with_coordinates(self, topic: str, run: Run, table: pa.Table, indices: pa.Array,
                         keys: pa.Array) -> pa.Table:
        """Decoded rows of ``run`` (at ``indices`` of it) with their Kafka columns (and the
        topic, for a bronze feed)."""
        return _with_kafka_columns(table, indices, run.partition, run.offsets, run.timestamps,
                                   keys, topic if self.feed.layer == "bronze" else None)

    def storable_rows(self, tables: list[pa.Table]) -> pa.Table:
        """The rows of a commit as the table stores them (widened first if need be)."""
        if not tables:
            return self._no_rows()
        table = _concat(tables)
        # no column without a type: Parquet cannot store `{}`, nor a field null everywhere
        table = storable(with_dates(table, table.column(self.feed.partition_field)))
        widen_columns(self.data, table.schema)  # int64 -> double: never a truncating cast
        return table

    def _decoder(self, decoder: JsonDecoder, committed: pa.Schema) -> JsonDecoder:
        """``decoder`` judging records against the table's column types."""
        if committed.equals(decoder.committed):
            return decoder
        return dataclasses.replace(decoder, committed=committed)

    def publish_metadata(self) -> None:
        """Rewrite ``_metadata.json`` from the two tables' logs (nothing before the rows
        table's first commit: a file in the dataset's folder before its log would make it
        look like a dataset written before Delta)."""
        if self.data.table() is None:
            return
        delta_metadata(self.data.storage, self.feed)

    def _no_rows(self) -> pa.Table:
        """No rows, the declared columns: a commit that only moves the partition's offsets
        (every record was bad); a table it creates already has the feed's columns."""
        fields = [*self.decoder.schema, *KAFKA_COLUMNS,
                  *(pa.field(name, pa.string()) for name in DATE_COLUMNS)]
        return pa.schema(fields).empty_table()

    def _commit_dead_letters(self, topic: str, pieces: Sequence[RunRows],
                             keys: dict[int, pa.Array]) -> tuple[int, dict[int, str]]:
        """Commit the round's dead letters past the DLQ table's own version of each
        partition; how many, and the partitions another writer took."""
        parts: dict[int, PartitionRows] = {}
        for piece in pieces:
            run = piece.run
            if not piece.rejected:
                continue
            last = self._dlq_last.get((topic, run.partition))
            batch = BatchId(self.feed.dataset, self.feed.name, topic, run.partition,
                            run.offsets[0], run.offsets[-1])
            rows = dead_letter_rows(batch, last, piece.rejected, run.values,
                                    keys[run.partition].to_pylist(), run.offsets,
                                    run.timestamps)
            if rows is not None:
                parts[run.partition] = PartitionRows(
                    rows, [OffsetRange(topic, run.partition, last, run.offsets[-1])])
        outcome = self.dlq.append_partitions(parts, _concat)
        written = 0
        for p in outcome.committed + outcome.landed:
            rows = parts[p].rows
            written += rows.num_rows if rows is not None else 0
            self._dlq_last[(topic, p)] = parts[p].ranges[0].last
        return written, outcome.fenced

    @staticmethod
    def _held(table: DeltaDataset, topic: str, partition: int) -> int | None:
        """The last offset of ``topic[partition]`` that ``table``'s latest log holds."""
        return table.transaction_versions([_app(topic, partition)])[_app(topic, partition)]


@dataclass(frozen=True)
class Run:
    """One contiguous run of a partition's buffered messages (in offset order)."""

    partition: int
    values: Sequence[bytes | None]
    keys: Sequence[bytes | None]
    offsets: Sequence[int]
    timestamps: Sequence[int | None]


@dataclass
class RoundResult:
    """What :meth:`DeltaLakeSink.write_round` landed, and the partitions it dropped (why)."""

    stats: FlushStats
    fenced: dict[int, str]


@dataclass
class RunRows:
    """One run's share of a round's decoded batch: its good rows, their indices in the run,
    and ``(index in the run, reason)`` of its rejected records."""

    run: Run
    table: pa.Table | None
    indices: pa.Array
    rejected: list[tuple[int, str]]


def split_round(result: DecodeResult, runs: Sequence[Run]) -> list[RunRows]:
    """Cut the decoded batch of the concatenated runs back into the runs."""
    if len(runs) == 1:
        return [RunRows(runs[0], result.table, result.indices, list(result.rejected))]
    pieces = []
    start = row = 0
    for run in runs:
        end = start + len(run.offsets)
        below = pc.sum(pc.less(result.indices, end)).as_py() if result.table is not None else 0
        rows = (below or 0) - row
        table = None if result.table is None or not rows else result.table.slice(row, rows)
        indices = pc.subtract(result.indices.slice(row, rows),
                              pa.scalar(start, result.indices.type))
        rejected = [(i - start, why) for i, why in result.rejected if start <= i < end]
        pieces.append(RunRows(run, table, indices, rejected))
        start, row = end, row + rows
    return pieces


def _concat(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def lake_sink(storage: Storage, feed: Feed) -> DeltaLakeSink:
    """The sink of ``feed``'s dataset (a Delta table; one written before Delta is refused
    with the upgrade hint at its first commit)."""
    return DeltaLakeSink(storage, feed)


def _floor(held: int | None, legacy: int | None) -> int | None:
    """The replay floor: the log's replay position, else its older highest source offset."""
    return held if held is not None else legacy_replay_position(legacy)
