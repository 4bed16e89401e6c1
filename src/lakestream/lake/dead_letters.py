"""Dead letters on Delta tables: a batch's rejected records, each offset exactly once."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.decode.schemas import TIMESTAMP
from lakestream.lake.delta import DeltaDataset, OffsetRange
from lakestream.lake.writer import BatchId, dlq_table

DATE_COLUMNS = ("year", "month", "day")


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
    if last is not None and offsets[-1] <= last:
        return 0, last  # a replay after a crash: already there
    fresh = [(i, why) for i, why in rejected if last is None or offsets[i] > last]
    if not fresh:
        return 0, last
    rows = dlq_table(batch, fresh, values, keys, offsets, timestamps)
    when = pc.coalesce(rows.column("_kafka_timestamp"), rows.column("rejected_at"))
    dlq.append(with_dates(rows, when),
               [OffsetRange(batch.topic, batch.partition, last, offsets[-1])])
    return len(fresh), offsets[-1]


def with_dates(table: pa.Table, times: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``table`` with ``year``/``month``/``day`` (zero-padded strings) of ``times`` (UTC)."""
    utc = pc.cast(times, TIMESTAMP)
    for name, fmt in zip(DATE_COLUMNS, ("%Y", "%m", "%d"), strict=True):
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(name, pc.strftime(utc, format=fmt))
    return table


