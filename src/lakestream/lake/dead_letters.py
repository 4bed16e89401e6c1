"""Dead letters on Delta tables: a batch's rejected records, each offset exactly once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.decode.schemas import TIMESTAMP
from lakestream.lake.delta import DeltaDataset, OffsetRange
from lakestream.lake.delta_maintenance import PartitionDelete, delete_partitions, partition_files
from lakestream.lake.layout import dlq_path
from lakestream.lake.storage import Storage
from lakestream.lake.writer import BatchId, dlq_table

DATE_COLUMNS = ("year", "month", "day")


def dead_letter_table(storage: Storage, feed: str) -> DeltaDataset:
    """The dead-letter table of the feed called ``feed`` (``_dlq/<feed>``, by day)."""
    return DeltaDataset(storage, dlq_path(feed), DATE_COLUMNS)


def commit_dead_letters(dlq: DeltaDataset, batch: BatchId, last: int | None,
                        rejected: Sequence[tuple[int, str]], values: Sequence[bytes | None],
                        keys: Sequence[str | None], offsets: Sequence[int],
                        timestamps: Sequence[int | None]) -> tuple[int, int | None]:
    """Commit a batch's dead letters to a dead-letter table, each offset once.

    ``last`` is the offset the table's application transaction of the batch's
    partition is expected to hold. Only records past it are committed, and the
    commit moves it to the batch's last offset (fenced: see
    :mod:`lakestream.lake.delta`), so a batch replayed after a crash between
    this commit and the next one adds nothing twice.

    Returns:
        How many dead letters were committed, and the table's new last offset.
    """
    rows = dead_letter_rows(batch, last, rejected, values, keys, offsets, timestamps)
    if rows is None:
        return 0, last
    dlq.append(rows, [OffsetRange(batch.topic, batch.partition, last, offsets[-1])])
    return rows.num_rows, offsets[-1]


def dead_letter_rows(batch: BatchId, last: int | None, rejected: Sequence[tuple[int, str]],
                     values: Sequence[bytes | None], keys: Sequence[str | None],
                     offsets: Sequence[int],
                     timestamps: Sequence[int | None]) -> pa.Table | None:
    """The dead-letter rows of a batch's records past offset ``last`` (``None``: none),
    with their days (the Kafka timestamp, else the time of rejection)."""
    if last is not None and offsets[-1] <= last:
        return None  # a replay after a crash: already there
    fresh = [(i, why) for i, why in rejected if last is None or offsets[i] > last]
    if not fresh:
        return None
    rows = dlq_table(batch, fresh, values, keys, offsets, timestamps)
    return with_dates(rows, pc.coalesce(rows.column("_kafka_timestamp"),
                                        rows.column("rejected_at")))


def with_dates(table: pa.Table, times: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``table`` with ``year``/``month``/``day`` (zero-padded strings) of ``times`` (UTC).

    A batch spans a few days: each distinct day is formatted once and the
    strings are taken from those (25 times cheaper than formatting every row).
    """
    utc = pc.cast(times, TIMESTAMP)
    if isinstance(utc, pa.ChunkedArray):
        utc = utc.combine_chunks()
    days = pc.cast(utc, pa.date32()).dictionary_encode()
    for name, fmt in zip(DATE_COLUMNS, ("%Y", "%m", "%d"), strict=True):
        if name in table.column_names:
            table = table.drop_columns([name])
        text = pc.strftime(days.dictionary, format=fmt).take(days.indices)
        table = table.append_column(name, text)
    return table


def purge_dead_letters(dlq: DeltaDataset, before: dt.date,
                       dry_run: bool = False) -> PartitionDelete:
    """Remove the day partitions of a dead-letter table older than ``before`` in one commit
    (``dry_run``: what it would remove). The files stay for ``vacuum``, as retention's do.

    The days are the dead letters' Kafka timestamps (the time of rejection when the
    record had none), the folders they are stored in.
    """
    old = {p: files for p, files in partition_files(dlq).items() if _day(p) < before}
    if not dry_run:
        return delete_partitions(dlq, {p: [f.path for f in files] for p, files in old.items()})
    chosen = sorted(old)
    gone = [f for p in chosen for f in old[p]]
    return PartitionDelete(chosen, [f.path for f in gone], sum(f.size for f in gone),
                           sum(f.records for f in gone), None)


def _day(partition: tuple[str, ...]) -> dt.date:
    year, month, day = (int(v) for v in partition)
    return dt.date(year, month, day)
