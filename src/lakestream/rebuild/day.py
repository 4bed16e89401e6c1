"""Rebuild one day of a stream from its source, replacing the lake's day in one commit.

The rebuilt day covers exactly the offsets the lake holds: for each Kafka
partition, every record up to the offset the dataset's Delta log says was
landed (its application transaction) whose event time falls on the day.
Records landed after the rebuild read the log are left to the appends, so a
rebuild never duplicates them. How the day is replaced, and why no record is
lost or doubled: :mod:`lakestream.rebuild.delta`.

A rebuild accounts for every record of the day: what it read is what it lands
plus the day's dead letters (records that no longer fit the feed's types, a
required field, ...). A record the lake's day held that now is a dead letter
goes to the dead-letter table in a commit before the day's (a crash in between
leaves it in both until the rebuild runs again, never in neither); a record the
day held that the source no longer returns, or returns for another day, stops
the rebuild: nothing is committed.

A dataset written before Delta (files without a ``_delta_log/``) is not
rebuilt: ``lakestream lake upgrade`` turns it into a Delta table first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.errors import BrokerRefusedError, FeedError, LakeDataError
from lakestream.feeds import Feed
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.lake.delta import writes_delta
from lakestream.lake.storage import Storage
from lakestream.rebuild.records import DeadLetters, FeedRows, concat

ROWS_PER_FILE = 1_000_000

# what a source hands the rebuild: (partition, first offset, last offset) -> chunks
DayReader = Callable[[dict[int, tuple[int, int]]], Iterable[PartitionBuffer]]


@dataclass
class RebuildReport:
    """What a day rebuild changed.

    ``read`` = ``records_after`` (landed) + ``dead_letters`` + ``replays`` (records
    a derived stream's processor sent twice, dropped as the ingest drops them).
    ``missing_files`` counts live files of the day the log named but storage had
    lost: the rebuild's commit removed them (their records came from the source).
    """

    feed: str
    date: str
    mode: str = ""
    records_before: int = 0
    records_after: int = 0
    files_before: int = 0
    files_after: int = 0
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    read: int = 0
    dead_letters: int = 0
    new_dead_letters: int = 0
    replays: int = 0
    missing_files: int = 0


class DayRebuild:
    """Rebuild ``day`` of ``feed`` from a source.

    Args:
        storage: The lake.
        feed: A stream feed.
        day: The date partition to rebuild.
        rows_per_file: Split the day's rows into files of at most this many rows.
    """

    def __init__(self, storage: Storage, feed: Feed, day: dt.date,
                 rows_per_file: int = ROWS_PER_FILE) -> None:
        if feed.kind != "stream":
            raise FeedError(f"'{feed.name}' is a table: tables have versions, not days",
                            f"lakestream export --table {feed.name}")
        self.storage = storage
        self.feed = feed
        self.day = day
        self.rows_per_file = rows_per_file

    def run(self, read: DayReader, source: str = "kafka") -> RebuildReport:
        """Read the day from ``read`` and replace the lake's day with it (one commit).

        Raises:
            TerminalError: The dataset was written before Delta (not upgraded yet), or
                the rebuild would lose records of the day (nothing is committed).
        """
        if not writes_delta(self.storage, self.feed.dataset):
            raise LakeDataError(
                f"{self.feed.dataset} was written before the lake moved to Delta tables "
                f"(it has no _delta_log/): cannot rebuild {self.day}",
                "run `lakestream lake upgrade` (with ingest, process and export stopped), "
                "then rebuild the day")
        from lakestream.rebuild.delta import DeltaDayRebuild

        return DeltaDayRebuild(self.storage, self.feed, self.day,
                               self.rows_per_file).run(read, source)


def collect_rows(decoder: FeedRows, chunks: Iterable[PartitionBuffer]) -> dict[int, pa.Table]:
    """The day's rows of ``chunks``, per Kafka partition."""
    found: dict[int, list[pa.Table]] = {}
    for chunk in chunks:
        table = decoder.decode(chunk)
        if table is not None:
            found.setdefault(chunk.partition, []).append(table)
    tables = {p: concat(ts) for p, ts in found.items()}
    return {p: t for p, t in tables.items() if t is not None}


def refuse_losses(feed: Feed, day: dt.date, held: dict[int, pa.Array], first: dict[int, int],
                  available_from: dict[int, int]) -> None:
    """Stop if the source no longer holds records the lake's day holds (retention)."""
    gone = {p: low for p, low in available_from.items() if low > first.get(p, 0)}
    lost = sum(int(pc.sum(pc.less(held[p], low)).as_py() or 0)
               for p, low in gone.items() if p in held)
    if lost:
        p, low = next(iter(gone.items()))
        raise BrokerRefusedError(
            f"{feed.topic} no longer holds {lost} of the records the lake has for "
            f"{day} (partition {p} now starts at offset {low})",
            "the day was left unchanged; Kafka's retention deleted its source",
            topic=feed.topic, partition=p)

def account(feed: Feed, day: dt.date, held: dict[int, pa.Array], rows: dict[int, pa.Table],
            dead: dict[int, DeadLetters]) -> dict[int, pa.Array]:
    """Which of the day's dead letters the day held (to move to the DLQ), per partition.

    Raises:
        TerminalError: The day holds records the rebuild would neither land
            nor send to the DLQ.
    """
    lost: list[tuple[int, int, int]] = []
    moving: dict[int, pa.Array] = {}
    for p, offsets in held.items():
        landed = rows[p].column("_kafka_offset").combine_chunks() if p in rows \
            else pa.array([], pa.int64())
        dead_offsets = pa.array(dead[p].offsets if p in dead else [], pa.int64())
        accounted = pa.concat_arrays([landed, dead_offsets])
        missing = offsets.filter(pc.invert(pc.is_in(offsets, value_set=accounted)))
        if len(missing):
            lost.append((p, len(missing), pc.min(missing).as_py()))
        moving[p] = pc.is_in(dead_offsets, value_set=offsets)
    if lost:
        total = sum(n for _, n, _ in lost)
        where = ", ".join(f"partition {p} from offset {o}" for p, _, o in lost[:3])
        raise LakeDataError(
            f"rebuilding {feed.name} {day} would lose {total} of the records the "
            f"day holds: the source did not return them ({where})",
            "the day was left unchanged; check that the source still holds the topic's "
            "records as they were ingested")
    return moving
