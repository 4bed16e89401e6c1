"""Load a table feed as a new snapshot version (the ingest's :class:`TableSink` does the writing).

From Kafka the table is the latest value per key of its changelog topic: the
newest version is loaded and the changes after the offsets it covers are
applied, so a version is always "every change before these offsets". From
ksqlDB the table is the answer of a pull query over the whole table; the
version keeps the offsets of the version before it, so the streaming ingest
resumes from there and replays changes as upserts (the same final state).
Either way a new version is written, and versions beyond the retention
(``lake.table_versions``) are pruned — on a Delta table in the same commit
(:mod:`lakestream.lake.table_versions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from lakestream.errors import FeedError
from lakestream.feeds import Feed
from lakestream.ingest.tables import TableSink, Version
from lakestream.kafka.client import OFFSET_BEGINNING
from lakestream.kafka.scan import KafkaScan
from lakestream.lake.storage import Storage
from lakestream.sources.ksqldb import KsqlDbClient, restore_case


def export_table_from_kafka(storage: Storage, feed: Feed, keep: int, scan: KafkaScan,
                            partitions: list[int],
                            on_records: Callable[[int], None] | None = None) -> Version:
    """Apply the changelog since the newest version and write a new version.

    Args:
        storage: The lake.
        feed: A table feed.
        keep: Versions kept.
        scan: A scan of the feed's topic.
        partitions: The topic's partitions.
        on_records: Called with the number of changelog records applied per chunk.
    """
    sink = TableSink(storage, feed, keep, partitions=list(partitions))
    sink.load()
    starts = {p: sink.offsets.get(p, OFFSET_BEGINNING) for p in partitions}
    for chunk in scan.read(starts):
        for value, key, offset in zip(chunk.values, chunk.keys, chunk.offsets, strict=True):
            sink.apply(chunk.partition, offset, key, value)
        if on_records:
            on_records(len(chunk))
    return _snapshot(sink)


def ksqldb_table_rows(client: KsqlDbClient, feed: Feed, schema: pa.Schema) -> list[dict[str, Any]]:
    """Every row of a ksqlDB table (a pull query over the whole table)."""
    if feed.kind != "table":
        raise FeedError(f"'{feed.name}' is a stream, not a table")
    result = client.pull(f"SELECT * FROM {feed.name.upper()};")
    return [restore_case(row, schema) for row in result.rows]


def export_table_rows(storage: Storage, feed: Feed, keep: int,
                      rows: list[dict[str, Any]]) -> Version:
    """Write ``rows`` (a complete table, e.g. from ksqlDB) as a new version."""
    sink = TableSink(storage, feed, keep)
    sink.load()
    sink.rows = {tuple(r.get(k) for k in feed.key): r for r in rows}
    return _snapshot(sink)


def _snapshot(sink: TableSink) -> Version:
    sink.dirty = True  # an export always writes a version, changed or not
    version = sink.snapshot()
    assert version is not None
    return version
