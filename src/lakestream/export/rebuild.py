"""Rebuild one day of a stream from its source and swap it in atomically.

The rebuilt day covers exactly the offsets the lake holds: for each Kafka
partition, every record below the ledger's next offset whose event time falls
on the day. Records the ledger has not committed yet are left to the next
ingest or append, so a rebuild never duplicates them; files the ingest commits
into the day while the rebuild runs are carried into the new day.

The streaming ingest's recovery checks that the files named by each
partition's newest manifest exist. The rebuild writes the rows of those
offsets under exactly those names, so recovery after a rebuild finds every
file it expects (and, in the rare case that it still has to move a committed
batch out of staging, it overwrites the file with the same records).

Output files are named like the ingest's, ``<topic>-<partition>-<first>-<last>.parquet``
by the offsets they hold, so the same rebuild twice writes the same files.

A rebuild accounts for every record of the day: what it read is what it lands
plus the day's dead letters (records that no longer fit the feed's types, a
required field, …). A record the lake's day held that now is a dead letter is
written to the DLQ before the day is swapped (a crash in between leaves it in
both until the rebuild runs again, never in neither); a record the day held
that the source no longer returns, or returns for another day, stops the
rebuild: nothing is committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakestream.errors import TerminalError
from lakestream.export.kafka_scan import PartitionChunk
from lakestream.export.records import DeadLetters, FeedRows, concat
from lakestream.feeds import Feed
from lakestream.lake.delta import is_delta_table
from lakestream.lake.layout import date_partition
from lakestream.lake.ledger import OffsetLedger
from lakestream.lake.storage import Storage
from lakestream.lake.swap import DayReplace, maintenance_lock, visible_files
from lakestream.lake.writer import BatchId, dlq_table, parquet_bytes, write_dlq

log = logging.getLogger(__name__)

ROWS_PER_FILE = 1_000_000
_INGEST_NAME = re.compile(
    r"^(?P<topic>.+)-(?P<partition>\d+)-(?P<start>\d{12})-(?P<end>\d{12})\.parquet$")

# what a source hands the rebuild: (partition, first offset, last offset) -> chunks
DayReader = Callable[[dict[int, tuple[int, int]]], Iterable[PartitionChunk]]


@dataclass
class LedgerView:
    """What the ledger says about one day: per partition, the bound and the protected file."""

    bounds: dict[int, int] = field(default_factory=dict)  # next offset not in the lake
    first: dict[int, int] = field(default_factory=dict)  # first offset the lake holds
    protected: dict[int, tuple[int, int, str]] = field(default_factory=dict)  # start, end, name


@dataclass
class RebuildReport:
    """What a day rebuild changed.

    ``read`` = ``records_after`` (landed) + ``dead_letters`` + ``replays`` (records
    a derived stream's processor sent twice, dropped as the ingest drops them).
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


def ledger_view(storage: Storage, feed: Feed, day_dir: str) -> LedgerView:
    """Bounds and protected files of ``feed`` for the day folder ``day_dir``."""
    view = LedgerView()
    for m in OffsetLedger(storage, feed.dataset).all_latest():
        if m.topic != feed.topic:
            continue
        view.bounds[m.partition] = m.end_offset + 1
        if m.totals.first_offset is not None:
            view.first[m.partition] = m.totals.first_offset
        for f in m.files:
            if f.kind == "data" and f.final.rsplit("/", 1)[0] == day_dir:
                view.protected[m.partition] = (m.start_offset, m.end_offset,
                                               f.final.rsplit("/", 1)[1])
    return view


class DayRebuild:
    """Rebuild ``day`` of ``feed`` from a source.

    Args:
        storage: The lake.
        feed: A stream feed.
        day: The date partition to rebuild.
        rows_per_file: Split a partition's rows into files of at most this many rows.
    """

    def __init__(self, storage: Storage, feed: Feed, day: dt.date,
                 rows_per_file: int = ROWS_PER_FILE) -> None:
        if feed.kind != "stream":
            raise TerminalError(f"'{feed.name}' is a table: tables have versions, not days",
                                f"lakestream export --table {feed.name}")
        self.storage = storage
        self.feed = feed
        self.day = day
        self.day_dir = f"{feed.dataset}/{date_partition(day)}"
        self.rows_per_file = rows_per_file

    def run(self, read: DayReader, source: str = "kafka") -> RebuildReport:
        """Read the day from ``read`` and replace the lake's day with it."""
        if is_delta_table(self.storage, self.feed.dataset):
            from lakestream.export.delta_rebuild import DeltaDayRebuild

            return DeltaDayRebuild(self.storage, self.feed, self.day,
                                   self.rows_per_file).run(read, source)
        with maintenance_lock(self.storage, self.feed.dataset):
            view = ledger_view(self.storage, self.feed, self.day_dir)
            ranges = {p: (view.first.get(p, 0), b - 1) for p, b in view.bounds.items() if b > 0}
            held = self._held(view)
            decoded = FeedRows(self.storage, self.feed, self.day, held)
            rows = collect_rows(decoded, read(ranges))
            refuse_losses(self.feed, self.day, held, view.first,
                          getattr(read, "available_from", {}))
            moving = account(self.feed, self.day, held, rows, decoded.dead)
            new_dead = self._to_dlq(decoded.dead, moving)
            report = self._replace(view, rows, source)
            report.dead_letters, report.replays = decoded.rejected, decoded.replays
            report.new_dead_letters = new_dead
            report.read = report.records_after + report.dead_letters + report.replays
            return report

    def _held(self, view: LedgerView) -> dict[int, pa.Array]:
        """Per Kafka partition, the offsets the lake's day holds (below the ledger's bounds)."""
        found: dict[int, list[pa.Array]] = {}
        for f in visible_files(self.storage, self.day_dir):
            if not f.path.endswith(".parquet"):
                continue
            with self.storage.fs.open_input_file(self.storage.full(f.path)) as handle:
                table = pq.read_table(handle, columns=["_kafka_partition", "_kafka_offset"])
            for p in pc.unique(table.column("_kafka_partition")).to_pylist():
                offsets = table.filter(pc.equal(table.column("_kafka_partition"), p)).column(
                    "_kafka_offset").combine_chunks()
                offsets = offsets.filter(pc.less(offsets, view.bounds.get(p, 0)))
                found.setdefault(p, []).append(offsets)
        return {p: pa.concat_arrays(arrays) for p, arrays in found.items()}

    def _to_dlq(self, dead: dict[int, DeadLetters], moving: dict[int, pa.Array]) -> int:
        """Write the dead letters the day held to the DLQ; how many."""
        written = 0
        for p, mask in sorted(moving.items()):
            letters = dead.get(p)
            picked = pc.indices_nonzero(mask).to_pylist() if letters is not None else []
            if letters is None or not picked:
                continue
            offsets = [letters.offsets[i] for i in picked]
            batch = BatchId(self.feed.dataset, self.feed.name, self.feed.topic, p,
                            min(offsets), max(offsets))
            rejects = dlq_table(batch, [(i, letters.reasons[i]) for i in picked], letters.values,
                                letters.keys, letters.offsets, letters.timestamps)
            write_dlq(self.storage, batch, rejects, f"rebuild-{self.day.isoformat()}")
            written += len(picked)
        return written

    def _replace(self, view: LedgerView, rows: dict[int, pa.Table], source: str) -> RebuildReport:
        replace = DayReplace(self.storage, self.day_dir)
        report = RebuildReport(self.feed.name, self.day.isoformat(), replace.mode)
        report.files_before = len(replace.live)
        report.records_before = _count_rows(self.storage, self.day_dir, replace.live)
        if not rows and not view.protected and not replace.live:
            replace.abort()  # nothing in the source, nothing in the lake: leave no empty folder
            return report
        try:
            for partition in sorted(set(rows) | set(view.protected)):
                for name, table in self._files(partition, rows.get(partition), view):
                    exact = partition in view.protected and name == view.protected[partition][2]
                    replace.write(name, memoryview(parquet_bytes(table)), exact=exact)
                    report.files_after += 1
                    report.records_after += table.num_rows
            replace.commit(carry=lambda name: _newer_than(name, self.feed.topic, view.bounds))
        except BaseException:
            replace.abort()
            raise
        report.offsets = {f"{self.feed.topic}:{p}": {"first": view.first.get(p, 0), "last": b - 1}
                          for p, b in sorted(view.bounds.items())}
        log.info("rebuilt %s %s from %s: %d records in %d files (was %d in %d)", self.feed.name,
                 self.day, source, report.records_after, report.files_after,
                 report.records_before, report.files_before)
        return report

    def _files(self, partition: int, table: pa.Table | None,
               view: LedgerView) -> Iterator[tuple[str, pa.Table]]:
        """(name, rows) of the new files of one Kafka partition."""
        protected = view.protected.get(partition)
        offsets = table.column("_kafka_offset") if table is not None else None
        if protected is not None and table is not None and offsets is not None:
            start, end, name = protected
            inside = pc.and_(pc.greater_equal(offsets, start), pc.less_equal(offsets, end))
            yield name, table.filter(inside)
            table = table.filter(pc.invert(inside))
        elif protected is not None:
            yield protected[2], self._empty(table)
        if table is None or table.num_rows == 0:
            return
        for at in range(0, table.num_rows, self.rows_per_file):
            part = table.slice(at, self.rows_per_file)
            column = part.column("_kafka_offset")
            first, last = pc.min(column).as_py(), pc.max(column).as_py()
            yield f"{self.feed.topic}-{partition}-{first:012d}-{last:012d}.parquet", part

    def _empty(self, like: pa.Table | None) -> pa.Table:
        if like is not None:
            return like.slice(0, 0)
        return FeedRows(self.storage, self.feed, None).decoder.schema.empty_table()


def collect_rows(decoder: FeedRows, chunks: Iterable[PartitionChunk]) -> dict[int, pa.Table]:
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
        raise TerminalError(
            f"{feed.topic} no longer holds {lost} of the records the lake has for "
            f"{day} (partition {p} now starts at offset {low})",
            "the day was left unchanged; Kafka's retention deleted its source")

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
        raise TerminalError(
            f"rebuilding {feed.name} {day} would lose {total} of the records the "
            f"day holds: the source did not return them ({where})",
            "the day was left unchanged; check that the source still holds the topic's "
            "records as they were ingested")
    return moving


def _newer_than(name: str, topic: str, bounds: dict[int, int]) -> bool:
    """Whether a file that appeared during the rebuild holds offsets the rebuild did not read."""
    match = _INGEST_NAME.match(name)
    if match is None or match.group("topic") != topic:
        return False
    return int(match.group("start")) >= bounds.get(int(match.group("partition")), 0)


def _count_rows(storage: Storage, folder: str, names: list[str]) -> int:
    total = 0
    for name in names:
        if name.endswith(".parquet"):
            with storage.fs.open_input_file(storage.full(f"{folder}/{name}")) as f:
                total += pq.ParquetFile(f).metadata.num_rows
    return total
