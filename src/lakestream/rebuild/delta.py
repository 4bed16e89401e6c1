"""Rebuild one day of a stream on Delta tables: one commit replaces the day's files.

``lakestream export --stream S --date D`` re-reads from the source (Kafka, or
ksqlDB) the records the lake holds and replaces day D of the feed's rows table
in ONE commit, then readers see the old day or the new one, never a mix. The
feed's dead-letter table ``_dlq/<feed>`` gets its own commit, before the rows'.

**What the rebuild covers.** It reads one snapshot ``V0`` of the rows table:
the day's live files ``F0``, and per Kafka partition ``p`` the application
transaction ``L[p]`` (the last offset landed). Every commit that lands records
is fenced on that transaction (:mod:`lakestream.lake.delta`), so ``F0`` holds
offsets ``<= L[p]`` only and every later append holds offsets ``> L[p]``. The
new day is every source record of ``p`` at offsets ``<= L[p]`` whose event time
falls on D (read from the lowest offset the lake still holds).

**The commit, and why no record is lost or doubled.** The new files are written
once; the commit is then built from explicit actions: *remove exactly ``F0``*,
*add the new files* (``create_write_transaction``; not a predicate overwrite,
which would also remove what was appended since ``V0``). It is a
compare-and-swap like the appends': read the latest version ``V``, check that
every file of ``F0`` is still live in it, commit as ``V + 1`` with
``max_commit_retries=0`` (the log entry is put-if-absent); if another commit
took ``V + 1``, check again on the newer log. So, for a commit ``C`` of
someone else:

- ``C`` landed before ``V0``: its rows are in ``F0`` and below ``L[p]``: the
  rebuild re-read them from the source and replaces them.
- ``C`` is an append after ``V0`` (the ingest, into D or any other day): its
  files are not in ``F0``, so the rebuild does not remove them, and its offsets
  are ``> L[p]``, which the rebuild did not read: kept once, not doubled.
- ``C`` removed a file of ``F0`` (a compaction, a retention delete, another
  rebuild): the check fails, nothing is committed, and the rebuild starts over
  from a new snapshot. Since the check and the commit are at consecutive
  versions, no such ``C`` can slip in between.

The rebuild carries no application transaction, so the ingest's offsets in the
log are unchanged: a rebuild is not a consumer. Data files of a commit that lost
are never in the log; ``vacuum`` deletes them.

**Dead letters.** The dead-letter table is partitioned by the records' Kafka
timestamp. Its day D is replaced the same way (remove its files of the
snapshot, add the new ones), so that each record of the day is a row or a dead
letter, never both, never neither: a dead letter that now lands as a row of D
leaves it; a row of D that no longer fits the feed's types (a stricter schema)
becomes a dead letter (in the dead-letter day of its Kafka timestamp, unless
the table already holds it); the other dead letters of D are kept. This commit
comes first: a crash before the rows' commit leaves a record in both until the
rebuild runs again, never in neither.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakestream.errors import FencedError, StorageConflictError
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DATE_COLUMNS
from lakestream.lake.dead_letters import dead_letter_table, with_dates
from lakestream.lake.delta import (
    REWRITE_APP,
    DeltaDataset,
    OffsetRange,
    app_id,
    delta_errors,
    rewrite_range,
)
from lakestream.lake.delta_files import FilesGone, replace_files, write_files
from lakestream.lake.delta_metadata import first_offset, partitions_seen
from lakestream.lake.snapshot import snapshot_dataset
from lakestream.lake.storage import Storage
from lakestream.lake.writer import BatchId, dlq_table
from lakestream.rebuild.day import (
    DayReader,
    RebuildReport,
    account,
    collect_rows,
    refuse_losses,
)
from lakestream.rebuild.records import DeadLetters, FeedRows

log = logging.getLogger(__name__)

REBUILD_ATTEMPTS = 5


@dataclass
class _Snapshot:
    """One version of a table as the rebuild saw it."""

    table: Any
    files: pa.Table  # every live file (add actions, flattened)
    day: pa.Table  # the live files of the day
    landed: dict[int, int | None] = field(default_factory=dict)  # app transaction per partition
    missing: frozenset[str] = frozenset()  # live files of the day storage no longer has
    rewrite: int | None = None  # the rewrite transaction (REWRITES) at this version

    @property
    def records(self) -> int:
        """Rows of the day's files."""
        return int(pc.sum(self.day.column("num_records")).as_py() or 0) if self.day.num_rows else 0

    def day_rows(self, storage: Storage, partition: dict[str, str],
                 columns: list[str] | None = None) -> pa.Table:
        """The day's rows (these columns) as of this snapshot."""
        if self.table is None or self.day.num_rows <= len(self.missing):
            return pa.table({c: pa.array([], pa.int64())
                             for c in columns or ["_kafka_partition", "_kafka_offset"]})
        where = None
        for name, value in partition.items():
            match = pads.field(name) == value
            where = match if where is None else where & match
        # read what is there: the commit removes the lost files
        dataset = snapshot_dataset(storage, self.table, self.missing)
        return dataset.to_table(columns=columns, filter=where)


class DeltaDayRebuild:
    """Rebuild ``day`` of ``feed`` (a stream's Delta dataset) from a source; see the module.

    Made by :class:`~lakestream.rebuild.day.DayRebuild` for a Delta dataset.
    """

    def __init__(self, storage: Storage, feed: Feed, day: dt.date,
                 rows_per_file: int = 1_000_000) -> None:
        self.storage = storage
        self.feed = feed
        self.day = day
        self.rows_per_file = rows_per_file
        self.data = DeltaDataset(storage, feed.dataset, DATE_COLUMNS)
        self.dlq = dead_letter_table(storage, feed.name)
        self.partition = {"year": f"{day.year:04d}", "month": f"{day.month:02d}",
                          "day": f"{day.day:02d}"}

    def run(self, read: DayReader, source: str = "kafka") -> RebuildReport:
        """Read the day from ``read`` and replace the lake's day with it."""
        for attempt in range(1, REBUILD_ATTEMPTS + 1):
            try:
                return self._attempt(read, source)
            except (FilesGone, FencedError) as exc:
                log.info("%s %s: %s; rebuilding again (attempt %d)", self.feed.name, self.day,
                         exc, attempt + 1)
        raise StorageConflictError(f"{self.feed.dataset} {self.day} was rewritten by another "
                                   f"commit during each of {REBUILD_ATTEMPTS} rebuilds",
                                   "is a compaction or retention running on it? try again later")

    # -- one attempt ------------------------------------------------------------------------

    def _attempt(self, read: DayReader, source: str) -> RebuildReport:
        rows_at = self._snapshot(self.data)
        dlq_at = self._snapshot(self.dlq)
        seen = max(partitions_seen(rows_at.files), partitions_seen(dlq_at.files), key=len)
        rows_at.landed = self._landed(rows_at, seen)
        dlq_at.landed = self._landed(dlq_at, seen)
        first = {p: first_offset(rows_at.files, p, dlq_at.files) or 0 for p in seen}
        limits = {p: v for p, v in rows_at.landed.items() if v is not None}
        ranges = {p: (first[p], max(limits.get(p, -1), dlq_at.landed.get(p) or -1))
                  for p in seen}
        ranges = {p: r for p, r in ranges.items() if r[1] >= 0}
        held = self._held(rows_at)
        decoded = FeedRows(self.storage, self.feed, self.day, held, limits)
        rows = collect_rows(decoded, read(ranges))
        available = getattr(read, "available_from", {})
        refuse_losses(self.feed, self.day, held, first, available)
        moving = account(self.feed, self.day, held, rows, decoded.dead)
        moved = self._replace_dead_letters(dlq_at, decoded, held, moving, rows, available)
        report = self._replace_rows(rows_at, rows, source)
        report.dead_letters, report.replays = decoded.rejected, decoded.replays
        report.new_dead_letters = moved
        report.read = report.records_after + report.dead_letters + report.replays
        report.offsets = {f"{self.feed.topic}:{p}": {"first": first[p], "last": last}
                          for p, last in sorted(limits.items())}
        return report

    def _snapshot(self, dataset: DeltaDataset) -> _Snapshot:
        """The table's latest version, in an object of its own (never refreshed)."""
        table = DeltaDataset(self.storage, dataset.rel, DATE_COLUMNS).table()
        files = _files(table)
        day = self._of_day(files)
        with delta_errors(f"read the log of {dataset.uri}"):
            rewrite = None if table is None else table.transaction_version(REWRITE_APP)
        return _Snapshot(table, files, day, missing=self._missing(dataset.rel, day),
                         rewrite=rewrite)

    def _missing(self, rel: str, day: pa.Table) -> frozenset[str]:
        """Live files of the day (paths in the log) that storage no longer holds."""
        if not day.num_rows:
            return frozenset()
        folder = "/".join(f"{k}={v}" for k, v in self.partition.items())
        present = {f.path for f in self.storage.list_files(f"{rel}/{folder}")}
        paths = (unquote(p) for p in day.column("path").to_pylist())
        return frozenset(p for p in paths if f"{rel}/{p}" not in present)

    def _of_day(self, files: pa.Table) -> pa.Table:
        if not files.num_rows or "partition.year" not in files.column_names:
            return files.slice(0, 0)
        mask = None
        for name, value in self.partition.items():
            match = pc.equal(files.column(f"partition.{name}"), value)
            mask = match if mask is None else pc.and_(mask, match)
        return files.filter(mask)

    def _landed(self, snap: _Snapshot, seen: range) -> dict[int, int | None]:
        """The snapshot's application transaction of each Kafka partition (same version)."""
        if snap.table is None:
            return dict.fromkeys(seen)
        with delta_errors(f"read the log of {self.feed.dataset}"):
            return {p: snap.table.transaction_version(app_id(self.feed.topic, p)) for p in seen}

    def _held(self, snap: _Snapshot) -> dict[int, pa.Array]:
        """Per Kafka partition, the offsets the day's files hold."""
        table = snap.day_rows(self.storage, self.partition, ["_kafka_partition", "_kafka_offset"])
        held: dict[int, pa.Array] = {}
        for p in pc.unique(table.column("_kafka_partition")).to_pylist():
            held[p] = table.filter(pc.equal(table.column("_kafka_partition"), p)).column(
                "_kafka_offset").combine_chunks().cast(pa.int64())
        return held

    # -- the rows ---------------------------------------------------------------------------

    def _replace_rows(self, snap: _Snapshot, rows: dict[int, pa.Table],
                      source: str) -> RebuildReport:
        report = RebuildReport(self.feed.name, self.day.isoformat(), "delta")
        report.files_before, report.records_before = snap.day.num_rows, snap.records
        report.missing_files = len(snap.missing)
        if snap.missing:
            log.warning("%s %s: %d live files of the day are missing on storage; the rebuild "
                        "restores their records from %s and removes them from the log",
                        self.feed.name, self.day, len(snap.missing), source)
        tables = [rows[p] for p in sorted(rows) if rows[p].num_rows]
        new = self._conform(self.data, tables)
        adds = [] if new is None else write_files(self.storage, self.data.rel, self.partition,
                                                  new, self.rows_per_file)
        report.files_after, report.records_after = len(adds), 0 if new is None else new.num_rows
        self._commit(self.data, snap, adds, [rewrite_range(snap.rewrite)])
        log.info("rebuilt %s %s from %s: %d records in %d files (was %d in %d)", self.feed.name,
                 self.day, source, report.records_after, report.files_after,
                 report.records_before, report.files_before)
        return report

    def _conform(self, dataset: DeltaDataset, tables: list[pa.Table]) -> pa.Table | None:
        """``tables`` as one table of ``dataset``'s schema (grown first if they hold more)."""
        if not tables:
            return None
        table = dataset.table()
        current = pa.schema(table.schema().to_arrow()) if table is not None else pa.schema([])
        merged = pa.concat_tables([current.empty_table(), *tables], promote_options="permissive")
        grown = [f for f in merged.schema
                 if f.name not in current.names and not pa.types.is_null(f.type)]
        if table is not None and grown:  # the new columns alone first (no rows, no offsets)
            dataset.append(pa.schema([*current, *grown]).empty_table())
        return merged

    def _commit(self, dataset: DeltaDataset, snap: _Snapshot, adds: list[Any],
                ranges: Sequence[OffsetRange] = ()) -> int | None:
        """Remove the snapshot's day files and add ``adds`` in one commit (see the module);
        the rows' commit moves the rewrite transaction, so a dead-letter replay that
        committed since the snapshot sends the rebuild back to its start."""
        return replace_files(dataset, snap.day, adds, {
            "lakestream.operation": "rebuild", "lakestream.day": self.day.isoformat()}, ranges)

    # -- the dead letters -------------------------------------------------------------------

    def _replace_dead_letters(self, snap: _Snapshot, decoded: FeedRows,
                              held: dict[int, pa.Array], moving: dict[int, pa.Array],
                              rows: dict[int, pa.Table], available: dict[int, int]) -> int:
        """Replace the dead-letter day (see the module); how many rows became dead letters."""
        old = snap.day_rows(self.storage, self.partition, ["_kafka_partition", "_kafka_offset"])
        was_dead = {p: old.filter(pc.equal(old.column("_kafka_partition"), p)).column(
            "_kafka_offset").combine_chunks().cast(pa.int64())
            for p in pc.unique(old.column("_kafka_partition")).to_pylist()}
        fresh = [self._letters(p, letters, pa.concat_arrays(
                     [was_dead.get(p, pa.array([], pa.int64())),
                      held.get(p, pa.array([], pa.int64()))]))
                 for p, letters in sorted(decoded.kafka_day_dead.items())]
        kept = self._kept_dead_letters(snap, decoded, rows, available)
        elsewhere, moved = self._moved_elsewhere(decoded, moving)
        moved += sum(int(pc.sum(pc.is_in(held.get(p, pa.array([], pa.int64())),
                                         value_set=pa.array(d.offsets, pa.int64()))).as_py() or 0)
                     for p, d in decoded.kafka_day_dead.items())
        tables = [t for t in (*fresh, kept) if t is not None and t.num_rows]
        if snap.table is None:
            if tables or elsewhere:
                self.dlq.append(_dated(pa.concat_tables([*tables, *elsewhere])))
            return moved
        new = self._conform(self.dlq, tables)
        adds = [] if new is None else write_files(self.storage, self.dlq.rel, self.partition,
                                                  new, self.rows_per_file)
        if elsewhere:
            dated = _dated(pa.concat_tables(elsewhere))
            days = list(zip(*(dated.column(c).to_pylist() for c in DATE_COLUMNS), strict=True))
            for day in sorted(set(days)):
                mask = pa.array([d == day for d in days])
                adds += write_files(self.storage, self.dlq.rel, dict(zip(DATE_COLUMNS, day,
                                    strict=True)), dated.filter(mask))
        self._commit(self.dlq, snap, adds)
        return moved

    def _letters(self, partition: int, letters: DeadLetters, wanted: pa.Array) -> pa.Table | None:
        """Dead-letter rows of ``letters`` whose offsets are in ``wanted``."""
        pick = pc.indices_nonzero(pc.is_in(pa.array(letters.offsets, pa.int64()),
                                           value_set=wanted)).to_pylist()
        if not pick:
            return None
        batch = BatchId(self.feed.dataset, self.feed.name, self.feed.topic, partition,
                        letters.offsets[pick[0]], letters.offsets[pick[-1]])
        return dlq_table(batch, [(i, letters.reasons[i]) for i in pick], letters.values,
                         letters.keys, letters.offsets, letters.timestamps)

    def _kept_dead_letters(self, snap: _Snapshot, decoded: FeedRows, rows: dict[int, pa.Table],
                           available: dict[int, int]) -> pa.Table | None:
        """The dead letters of the day the rebuild does not derive again and that did not
        become rows of the day: kept as they are."""
        if snap.table is None:
            return None
        old = snap.day_rows(self.storage, self.partition)
        if old.num_rows == 0:
            return None
        old = old.drop_columns([c for c in DATE_COLUMNS if c in old.column_names])
        keep = pc.is_valid(old.column("_kafka_offset"))
        parts, offsets = old.column("_kafka_partition"), old.column("_kafka_offset")
        for p in pc.unique(parts).to_pylist():
            rederived = pa.array(decoded.kafka_day_dead.get(p, DeadLetters()).offsets, pa.int64())
            landed = (rows[p].column("_kafka_offset").combine_chunks() if p in rows
                      else pa.array([], pa.int64()))
            gone = pc.is_in(offsets, value_set=pa.concat_arrays([rederived, landed]))
            here = pc.equal(parts, p)
            keep = pc.and_(keep, pc.invert(pc.and_(here, gone)))
        return old.filter(keep)

    def _moved_elsewhere(self, decoded: FeedRows,
                         moving: dict[int, pa.Array]) -> tuple[list[pa.Table], int]:
        """Rows of the day that are dead letters now, of another dead-letter day, and not in
        the dead-letter table yet: their dead-letter rows, and how many."""
        out, count = [], 0
        for p, mask in sorted(moving.items()):
            letters = decoded.dead.get(p)
            if letters is None:
                continue
            pick = [i for i in pc.indices_nonzero(mask).to_pylist()
                    if letters.timestamps[i] is None
                    or dt.datetime.fromtimestamp(letters.timestamps[i] / 1000,
                                                 dt.UTC).date() != self.day]
            offsets = pa.array([letters.offsets[i] for i in pick], pa.int64())
            present = self._dead_letters_held(p, offsets)
            pick = [i for i in pick if letters.offsets[i] not in present]
            if not pick:
                continue
            batch = BatchId(self.feed.dataset, self.feed.name, self.feed.topic, p,
                            letters.offsets[pick[0]], letters.offsets[pick[-1]])
            out.append(dlq_table(batch, [(i, letters.reasons[i]) for i in pick], letters.values,
                                 letters.keys, letters.offsets, letters.timestamps))
            count += len(pick)
        return out, count

    def _dead_letters_held(self, partition: int, offsets: pa.Array) -> set[int]:
        table = self.dlq.table()
        if table is None or not len(offsets):
            return set()
        found = snapshot_dataset(self.storage, table).to_table(
            columns=["_kafka_offset"],
            filter=(pc.field("_kafka_partition") == partition)
            & pc.field("_kafka_offset").isin(offsets))
        return set(found.column("_kafka_offset").to_pylist())


def _dated(rows: pa.Table) -> pa.Table:
    """Dead-letter rows with their partition columns (the Kafka timestamp's date, as the sink)."""
    when = pc.coalesce(rows.column("_kafka_timestamp"), rows.column("rejected_at"))
    return with_dates(rows, when)


def _files(table: Any) -> pa.Table:
    """The live files of a table object's version (no refresh)."""
    if table is None:
        return pa.table({"path": pa.array([], pa.string()),
                         "size_bytes": pa.array([], pa.int64()),
                         "num_records": pa.array([], pa.int64())})
    return pa.table(table.get_add_actions(flatten=True))
