"""Turn source messages into a feed's lake rows exactly as the streaming ingest does.

A rebuilt day must hold the same rows, column for column, as the day the
ingest wrote: the same decoder (schema, required fields), the same Kafka
columns, the same replay filter for derived streams. So this module reuses
the ingest's pieces instead of re-implementing them.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.export.kafka_scan import PartitionChunk
from lakestream.feeds import Feed
from lakestream.ingest.sink import LakeSink, replay_mask

# The ingest's own helpers: the rows must match what it writes, byte for byte.
from lakestream.ingest.sink import _keys as message_keys
from lakestream.ingest.sink import _with_kafka_columns as with_kafka_columns
from lakestream.lake.storage import Storage


class FeedRows:
    """Decodes chunks of one feed's messages into its lake rows, keeping one day.

    Args:
        storage: The lake (only to build the ingest's sink, which holds the decoder).
        feed: The feed.
        day: Keep only rows whose partition field falls on this date (``None``: all).
    """

    def __init__(self, storage: Storage, feed: Feed, day: dt.date | None) -> None:
        self.feed = feed
        self.day = day
        self.decoder = LakeSink(storage, feed).decoder
        self.max_source: dict[int, int | None] = {}
        self.rejected = 0

    def decode(self, chunk: PartitionChunk) -> pa.Table | None:
        """The chunk's good rows (of the day), with the Kafka columns; ``None`` if none."""
        result = self.decoder.decode(chunk.values)
        self.rejected += len(result.rejected)
        table, indices = result.table, result.indices
        if table is None or table.num_rows == 0:
            return None
        if self.feed.dedupe_source:
            keep, top = replay_mask(table, self.max_source.get(chunk.partition))
            self.max_source[chunk.partition] = top
            table, indices = table.filter(keep), indices.filter(keep)
            if table.num_rows == 0:
                return None
        table = with_kafka_columns(table, indices, chunk.partition, chunk.offsets,
                                   chunk.timestamps, message_keys(chunk.keys))
        return self._of_day(table)

    def _of_day(self, table: pa.Table) -> pa.Table | None:
        if self.day is None:
            return table
        days = pc.cast(table.column(self.feed.partition_field), pa.date32())
        kept = table.filter(pc.fill_null(pc.equal(days, pa.scalar(self.day, pa.date32())), False))
        return kept if kept.num_rows else None


def concat(tables: list[pa.Table]) -> pa.Table | None:
    """One table from several chunks' rows (columns unified by name), or ``None``."""
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")
