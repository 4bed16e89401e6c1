"""The lake sink of one feed on Delta tables: rows and dead letters, offsets in their logs.

Every feed's dataset is a Delta table (``docs/lake.md``); the consumer loop
drives this sink through ``recover`` / ``write`` / ``forget``.

**Exactly once across two tables.** A batch of one Kafka partition commits its
dead letters first (the feed's ``_dlq/<feed>`` table), then its rows (the
dataset's table); each commit carries the partition's application
transaction and is fenced (:mod:`lakestream.lake.delta`). The rows table's
transaction is the resume point. A crash between the two commits replays the
batch; the replay lands in the dead-letter table only the records past that
table's own transaction version, so each table holds each offset once.

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

import pyarrow as pa

from lakestream.decode.json_batch import JsonDecoder
from lakestream.decode.schemas import KAFKA_COLUMNS, arrow_schema
from lakestream.errors import FencedError
from lakestream.feeds import Feed
from lakestream.ingest.sink import (
    _OURS,
    FlushStats,
    _keys,
    _with_kafka_columns,
    replay_mask,
)
from lakestream.lake.dead_letters import DATE_COLUMNS, commit_dead_letters, with_dates
from lakestream.lake.delta import DeltaDataset, OffsetRange, check_not_legacy
from lakestream.lake.delta import app_id as _app
from lakestream.lake.delta_maintenance import widen_columns
from lakestream.lake.delta_metadata import delta_metadata
from lakestream.lake.layout import dlq_path
from lakestream.lake.storage import Storage
from lakestream.lake.writer import BatchId, storable

SOURCE_PREFIX = "source:"  # the derived streams' source offsets: app id of topic "source:<t>"

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
        self.dlq = DeltaDataset(storage, dlq_path(feed.name), DATE_COLUMNS)
        required = tuple(
            dict.fromkeys([*feed.required, *([feed.time_field] if feed.time_field else [])])
        )
        self.declared = arrow_schema(feed.schema_spec, feed.time_field)
        self.decoder = self._decoder(JsonDecoder(self.declared, required), self._committed_types())
        self.next_offset: dict[Key, int | None] = {}
        self._dlq_last: dict[Key, int | None] = {}
        self._source_seen: dict[Key, int | None] = {}

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
                                               _app(SOURCE_PREFIX + topic, partition)])
        last = data[_app(topic, partition)]
        self._source_seen[key] = data[_app(SOURCE_PREFIX + topic, partition)]
        self._dlq_last[key] = self.dlq.transaction_versions(
            [_app(topic, partition)])[_app(topic, partition)]
        self.next_offset[key] = None if last is None else last + 1
        self.decoder = self._decoder(self.decoder, self._committed_types())
        return self.next_offset[key]

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: stop tracking it."""
        for known in (self.next_offset, self._dlq_last, self._source_seen):
            known.pop((topic, partition), None)

    def write(self, topic: str, partition: int, values: Sequence[bytes | None],
              keys: Sequence[bytes | None], offsets: Sequence[int],
              timestamps: Sequence[int | None]) -> FlushStats:
        """Decode one contiguous run of a partition's messages and commit it to both tables.

        A retry of a batch whose commit landed although the writer saw a failure (a
        lost response) finds the batch's last offset in the table's log: it is not
        fenced and commits nothing twice.

        Raises:
            FencedError: Another writer landed this partition since this one took it.
        """
        key = (topic, partition)
        nxt = self.next_offset.get(key)
        expected = None if nxt is None else nxt - 1
        result = self.decoder.decode(values)
        key_strings = _keys(keys)
        rejected = self._commit_dead_letters(topic, partition, result.rejected, values,
                                             key_strings, offsets, timestamps)
        table, indices = result.table, result.indices
        seen = self._source_seen.get(key)
        ranges = [OffsetRange(topic, partition, expected, offsets[-1])]
        if table is not None and self.feed.dedupe_source:
            keep, top = replay_mask(table, seen)
            table, indices = table.filter(keep), indices.filter(keep)
            if top is not None and top != seen:
                ranges.append(OffsetRange(SOURCE_PREFIX + topic, partition, seen, top))
                seen = top
        rows = 0
        if table is not None and table.num_rows:
            rows = table.num_rows
            table = _with_kafka_columns(table, indices, partition, offsets, timestamps,
                                        key_strings, topic if self.feed.layer == "bronze" else None)
            # no column without a type: Parquet cannot store `{}`, nor a field null everywhere
            table = storable(with_dates(table, table.column(self.feed.partition_field)))
        else:
            table = None
        if table is not None:
            widen_columns(self.data, table.schema)  # int64 -> double: never a truncating cast
        try:
            self.data.append(table if table is not None else self._no_rows(), ranges)
        except FencedError:
            if self._held(self.data, topic, partition) != offsets[-1]:
                raise
            # this very batch is in the table: a retry whose first commit landed although
            # the writer saw a failure (a lost response); nothing to do twice
            seen = self._held(self.data, SOURCE_PREFIX + topic, partition)
        self.next_offset[key] = offsets[-1] + 1
        self._source_seen[key] = seen
        if table is not None:  # append() has just read the new log: no second read
            self.decoder = self._decoder(self.decoder, self._committed_types(refresh=False))
        return FlushStats(rows, rejected, 0, 0)

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

    def _commit_dead_letters(self, topic: str, partition: int,
                             rejected: Sequence[tuple[int, str]],
                             values: Sequence[bytes | None], keys: pa.Array,
                             offsets: Sequence[int], timestamps: Sequence[int | None]) -> int:
        """Commit the batch's dead letters past the DLQ table's own version; how many."""
        key = (topic, partition)
        batch = BatchId(self.feed.dataset, self.feed.name, topic, partition, offsets[0],
                        offsets[-1])
        last = self._dlq_last.get(key)
        try:
            written, self._dlq_last[key] = commit_dead_letters(
                self.dlq, batch, last, rejected, values, keys.to_pylist(), offsets, timestamps)
        except FencedError:
            if self._held(self.dlq, topic, partition) != offsets[-1]:
                raise
            # a retry whose first commit landed although the writer saw a failure
            written = sum(1 for i, _ in rejected if last is None or offsets[i] > last)
            self._dlq_last[key] = offsets[-1]
        return written

    @staticmethod
    def _held(table: DeltaDataset, topic: str, partition: int) -> int | None:
        """The last offset of ``topic[partition]`` that ``table``'s latest log holds."""
        return table.transaction_versions([_app(topic, partition)])[_app(topic, partition)]


def lake_sink(storage: Storage, feed: Feed) -> DeltaLakeSink:
    """The sink of ``feed``'s dataset (a Delta table; one written before Delta is refused
    with the upgrade hint at its first commit)."""
    return DeltaLakeSink(storage, feed)
