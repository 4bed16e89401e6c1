"""The lake sink of one feed: decode a partition's buffer, stage its files, commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.decode.contract import contract_schema, contract_spec, merge_committed
from lakestream.decode.json_batch import JsonDecoder
from lakestream.decode.schemas import KAFKA_COLUMNS, TIMESTAMP, arrow_schema, schema_as_json
from lakestream.feeds import Feed
from lakestream.lake.ledger import Manifest, OffsetLedger, Totals
from lakestream.lake.metadata import rebuild_metadata
from lakestream.lake.storage import Storage
from lakestream.lake.writer import BatchId, dlq_table, stage_data, stage_dlq

log = logging.getLogger(__name__)


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


class LakeSink:
    """Exactly-once writer of one feed's dataset.

    The sink remembers, per Kafka partition, the next offset the lake expects
    (from the ledger at assignment) and refuses to commit anything that does
    not continue it.

    It decodes against the feed's type contract (``decode/contract.py``): the
    declared types plus those the dataset's committed data established, read
    from every partition's ledger when the sink starts, from a partition's when
    it is assigned (its last writer may have added some), and extended by each
    batch it commits.
    """

    def __init__(self, storage: Storage, feed: Feed) -> None:
        self.storage = storage
        self.feed = feed
        self.ledger = OffsetLedger(storage, feed.dataset)
        required = tuple(
            dict.fromkeys([*feed.required, *([feed.time_field] if feed.time_field else [])])
        )
        self.decoder = JsonDecoder(arrow_schema(feed.schema_spec, feed.time_field), required,
                                   self.ledger.committed_schema())
        self.next_offset: dict[tuple[str, int], int | None] = {}
        self._totals: dict[tuple[str, int], Totals] = {}
        self._schema: list[dict[str, str]] = []

    def recover(self, topic: str, partition: int, exclusive: bool = True) -> int | None:
        """Settle what a crash left and return the next offset to consume (``None``: start).

        ``exclusive=False`` for a writer that may share the partition with another:
        staged files of uncommitted batches are then left alone (see the ledger).
        """
        nxt = self.ledger.recover(topic, partition, delete_orphans=exclusive)
        latest = self.ledger.latest(topic, partition)
        if latest is not None and latest.contract:  # its last writer may have added types
            self._use_committed(merge_committed([self.decoder.committed,
                                                 contract_schema(latest.contract)]))
        self._totals[(topic, partition)] = latest.totals if latest else Totals()
        self.next_offset[(topic, partition)] = nxt
        return nxt

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: stop tracking it."""
        self.next_offset.pop((topic, partition), None)
        self._totals.pop((topic, partition), None)

    def write(
        self,
        topic: str,
        partition: int,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None],
        offsets: Sequence[int],
        timestamps: Sequence[int | None],
    ) -> FlushStats:
        """Decode, stage and commit one contiguous run of a partition's messages."""
        expected = self.next_offset.get((topic, partition))
        batch = BatchId(
            self.feed.dataset, self.feed.name, topic, partition, offsets[0], offsets[-1]
        )
        result = self.decoder.decode(values)
        key_strings = _keys(keys)
        staged = []
        totals = self._totals.get((topic, partition), Totals())
        table, indices = result.table, result.indices
        duplicates, max_source = 0, None
        if table is not None and self.feed.dedupe_source:
            keep, max_source = replay_mask(table, totals.max_source_offset)
            duplicates = table.num_rows - int(pc.sum(keep).as_py() or 0)
            table, indices = table.filter(keep), indices.filter(keep)
        rows = table.num_rows if table is not None else 0
        contract = self.decoder.contract
        if table is not None and rows:
            contract = contract.absorb(pa.schema([f for f in table.schema if f.name not in _OURS]))
            table = _with_kafka_columns(table, indices, partition, offsets, timestamps, key_strings,
                                        topic if self.feed.layer == "bronze" else None)
            staged += stage_data(self.storage, batch, table, self.feed.partition_field)
            self._schema = schema_as_json(table.schema)
        if result.rejected:
            rejects = dlq_table(
                batch, result.rejected, values, key_strings.to_pylist(), offsets, timestamps
            )
            staged += stage_dlq(self.storage, batch, rejects)
        totals = totals.add(offsets[0], staged, duplicates, max_source)
        manifest = Manifest(
            dataset=self.feed.dataset, topic=topic, partition=partition,
            start_offset=offsets[0], end_offset=offsets[-1], files=staged, totals=totals,
            committed_at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            schema=self._schema, contract=contract_spec(contract.committed),
        )  # fmt: skip
        self.ledger.commit(manifest, expected)
        self._use_committed(contract.committed)
        self._totals[(topic, partition)] = totals
        self.next_offset[(topic, partition)] = offsets[-1] + 1
        return FlushStats(rows, len(result.rejected), len(staged), sum(f.bytes for f in staged))

    def _use_committed(self, committed: pa.Schema) -> None:
        if not committed.equals(self.decoder.committed):
            self.decoder = dataclasses.replace(self.decoder, committed=committed)

    def publish_metadata(self) -> None:
        """Rewrite ``_metadata.json`` from the ledger (cheap: one manifest per partition)."""
        rebuild_metadata(self.storage, self.feed)


_OURS = frozenset([*KAFKA_COLUMNS.names, "_kafka_topic"])  # columns the sink sets, not the events


def replay_mask(table: pa.Table, seen: int | None) -> tuple[pa.Array, int | None]:
    """Which rows of a derived stream are new: their ``_source_offset`` exceeds every earlier one.

    ``process`` writes each derived record to the partition of its source, in
    source-offset order; after a crash it replays from its last commit, so a
    replayed record's source offset is never above what came before it.

    Returns:
        The keep mask, and the new highest source offset (``None`` if unknown).
    """
    if "_source_offset" not in table.column_names:
        return pa.array([True] * table.num_rows), None
    raw = table.column("_source_offset").combine_chunks()
    source = raw.fill_null(-1)
    running = pc.cumulative_max(source)
    floor = -1 if seen is None else seen
    before = pa.concat_arrays([pa.array([floor], pa.int64()),
                               pc.max_element_wise(running, floor).slice(0, len(source) - 1)])
    keep = pc.or_(pc.is_null(raw), pc.greater(source, before))
    top = pc.max(source).as_py()
    return keep, max(floor, top) if top is not None and top >= 0 else seen


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
    """``table`` with the Kafka coordinates as columns (and the topic, for bronze: SPEC §4)."""
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
