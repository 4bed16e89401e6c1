"""Dead letters back through today's decoding, exactly once (``lakestream dlq replay``).

After a fix — a field added to the feed's schema, a required field dropped, a
type declared — a feed's dead letters are decoded again with the feed as it
is now: those that pass land in the feed's dataset with their Kafka
coordinates, as if the ingest had landed them; those that still fail stay in
the dead-letter table, with today's reason.

**Exactly once.** The ingest lands each Kafka offset of a feed once, as a row
of the dataset or as a dead letter, never both. So a dead letter whose
(partition, offset) the dataset holds has been replayed. A replay:

1. reads the dead-letter table's snapshot and picks the letters that match;
2. reads which of them the dataset holds already (a replay killed between its
   two commits landed them): those only leave the dead letters, in step 5;
3. decodes the others as the ingest would;
4. appends those that pass to the dataset in one commit, fenced by the
   dataset's *rewrite* transaction (:data:`~lakestream.lake.delta.REWRITES`): it
   lands only if no other replay, and no day rebuild, committed rows to the
   dataset since step 2 read it, else the replay starts over at step 1;
5. replaces the dead-letter files that held the picked letters by files
   without the replayed ones and with the new reasons of the others, in one
   commit that lands only while those files are still live (a compaction
   that merged them meanwhile sends the replay back to step 1).

Killed anywhere, a replay run again finds the two tables before step 4,
between 4 and 5, or after 5; from each, every picked letter ends in exactly
one of the two tables. Readers see each table move in one commit.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.errors import FencedError, StorageConflictError
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink, Run, split_round
from lakestream.ingest.sink import _keys
from lakestream.lake.dead_letter_report import LetterFile, LetterFilter, letter_files, reason_group
from lakestream.lake.delta import REWRITE_APP, rewrite_range
from lakestream.lake.delta_files import FilesGone, replace_files, write_files
from lakestream.lake.snapshot import snapshot_dataset
from lakestream.lake.storage import Storage

log = logging.getLogger(__name__)

ATTEMPTS = 10

Coordinates = tuple[str, int, int]  # topic, partition, offset


@dataclass
class ReplayReport:
    """What a replay did (or, dry, would do) with a feed's dead letters."""

    feed: str
    dry_run: bool
    picked: int = 0
    """Dead letters that matched the filter."""
    landed: int = 0
    """Rows the dataset gained."""
    already: int = 0
    """Picked letters the dataset held already (a replay killed between its commits)."""
    failing: Counter[str] = field(default_factory=Counter)
    """Picked letters that still fail, by reason group (today's reason)."""
    reasons_changed: int = 0
    """Of those, how many fail for another reason than they were stored with."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"feed": self.feed, "dry_run": self.dry_run, "picked": self.picked,
                "landed": self.landed, "already_in_dataset": self.already,
                "still_failing": sum(self.failing.values()),
                "reasons_changed": self.reasons_changed,
                "still_failing_by_reason": dict(self.failing.most_common())}


@dataclass
class _Plan:
    """One attempt's reading of the two tables and what it will commit."""

    files: list[LetterFile]
    picked: list[Coordinates]
    held: set[Coordinates]
    rows: pa.Table | None
    passed: set[Coordinates]
    reasons: dict[Coordinates, str]  # today's reason of each picked letter that fails
    rewrite: int | None  # the dataset's rewrite transaction when step 2 read it


class DeadLetterReplay:
    """Replays one feed's dead letters (see the module)."""

    def __init__(self, storage: Storage, feed: Feed,
                 progress: Callable[[str], None] | None = None) -> None:
        self.storage = storage
        self.feed = feed
        self.sink = DeltaLakeSink(storage, feed)
        self.say = progress or (lambda _m: None)

    def run(self, where: LetterFilter | None = None, dry_run: bool = False) -> ReplayReport:
        """Replay the dead letters that match ``where`` (default: all; ``dry_run``: commit
        nothing)."""
        where = where or LetterFilter()
        for attempt in range(1, ATTEMPTS + 1):
            plan = self._plan(where)
            report = self._report(plan, dry_run)
            if dry_run or not plan.picked:
                return report
            try:
                report.landed = self._land(plan)
                self._leave_dead_letters(plan)
            except (FencedError, FilesGone) as exc:
                self.say(f"the tables moved meanwhile ({exc}); replaying again "
                         f"(attempt {attempt + 1})")
                continue
            self.sink.publish_metadata()
            return report
        raise StorageConflictError(f"{self.feed.name}: the dataset or its dead letters changed "
                                   f"during each of {ATTEMPTS} replays",
                                   "is another replay, a compaction or a rebuild running? "
                                   "try again")

    # -- steps 1-3 ----------------------------------------------------------------------

    def _plan(self, where: LetterFilter) -> _Plan:
        rewrite = self.sink.data.transaction_versions([REWRITE_APP])[REWRITE_APP]
        files = list(letter_files(self.storage, self.sink.dlq))
        letters = [f.rows.filter(where.mask(f.rows)) for f in files]
        of_file = [_coordinates(rows) for rows in letters]
        picked = [c for coordinates in of_file for c in coordinates]
        self.say(f"{len(picked)} dead letter(s) of {self.feed.name} match")
        held = self._held(picked)
        fresh = [rows.filter(pa.array([c not in held for c in coordinates], pa.bool_()))
                 for rows, coordinates in zip(letters, of_file, strict=True)]
        table, passed, reasons = self._decode(
            pa.concat_tables(fresh, promote_options="default") if fresh else None)
        return _Plan(files, picked, held, table, passed, reasons, rewrite)

    def _held(self, picked: Sequence[Coordinates]) -> set[Coordinates]:
        """The picked coordinates the dataset holds rows of."""
        table = self.sink.data.table()
        if table is None or not picked:
            return set()
        names = pa.schema(table.schema().to_arrow()).names
        if "_kafka_offset" not in names:
            return set()
        by_partition: dict[int, list[int]] = defaultdict(list)
        for _topic, partition, offset in picked:
            by_partition[partition].append(offset)
        dataset = snapshot_dataset(self.storage, table)
        held: set[Coordinates] = set()
        topics = {t for t, _, _ in picked}
        for partition, offsets in by_partition.items():
            where = ((pc.field("_kafka_partition") == partition)
                     & pc.field("_kafka_offset").isin(offsets))
            found = dataset.to_table(columns=["_kafka_offset"], filter=where)
            for offset in found.column("_kafka_offset").to_pylist():
                held.update((t, partition, offset) for t in topics)
        return held & set(picked)

    def _decode(self, letters: pa.Table | None
                ) -> tuple[pa.Table | None, set[Coordinates], dict[Coordinates, str]]:
        """Decode the letters as the ingest would: the rows that pass, their coordinates,
        and today's reason of each that fails."""
        if letters is None or not letters.num_rows:
            return None, set(), {}
        passed: set[Coordinates] = set()
        reasons: dict[Coordinates, str] = {}
        tables = []
        for topic in sorted(set(letters.column("_kafka_topic").to_pylist())):
            of_topic = letters.filter(pc.equal(letters.column("_kafka_topic"), topic))
            runs = _runs(of_topic)
            values = [v for r in runs for v in r.values]
            for piece in split_round(self.sink.decoder.decode(values), runs):
                run = piece.run
                for index, why in piece.rejected:
                    reasons[(topic, run.partition, run.offsets[index])] = why
                if piece.table is None or not piece.table.num_rows:
                    continue
                passed.update((topic, run.partition, run.offsets[i])
                              for i in piece.indices.to_pylist())
                tables.append(self.sink.with_coordinates(topic, run, piece.table, piece.indices,
                                                         _keys(run.keys)))
        return (self.sink.storable_rows(tables) if tables else None), passed, reasons

    def _report(self, plan: _Plan, dry_run: bool) -> ReplayReport:
        report = ReplayReport(self.feed.name, dry_run, picked=len(plan.picked),
                              already=len(plan.held))
        report.landed = len(plan.passed) if dry_run else 0
        stored = _stored_reasons(plan.files)
        for coordinates, why in plan.reasons.items():
            report.failing[reason_group(why)] += 1
            report.reasons_changed += why != stored.get(coordinates)
        return report

    # -- steps 4 and 5 ------------------------------------------------------------------

    def _land(self, plan: _Plan) -> int:
        """Append the rows that pass, fenced by the dataset's rewrite transaction."""
        if plan.rows is None or not plan.rows.num_rows:
            return 0
        self.sink.data.append(plan.rows, [rewrite_range(plan.rewrite)],
                              {"lakestream.operation": "replay"})
        self.say(f"landed {plan.rows.num_rows} row(s) in {self.feed.dataset}")
        return int(plan.rows.num_rows)

    def _leave_dead_letters(self, plan: _Plan) -> None:
        """Replace the files that held picked letters: without the landed ones, with the
        new reasons of the others (one commit, while those files are still live)."""
        gone = plan.passed | plan.held
        removed, adds = [], []
        for file in plan.files:
            rows = _rewritten(file.rows, gone, plan.reasons)
            if rows is None:
                continue
            removed.append(file.action)
            if rows.num_rows:
                adds += write_files(self.storage, self.sink.dlq.rel, file.partition, rows)
        if removed:
            replace_files(self.sink.dlq, pa.concat_tables(removed), adds,
                          {"lakestream.operation": "replay"})
            self.say(f"rewrote {len(removed)} dead-letter file(s)")


def _coordinates(rows: pa.Table) -> list[Coordinates]:
    return list(zip(rows.column("_kafka_topic").to_pylist(),
                    rows.column("_kafka_partition").to_pylist(),
                    rows.column("_kafka_offset").to_pylist(), strict=True))


def _runs(letters: pa.Table) -> list[Run]:
    """One run per partition, in offset order (the ingest's batches, rebuilt)."""
    runs = []
    for partition in sorted(set(letters.column("_kafka_partition").to_pylist())):
        rows = letters.filter(pc.equal(letters.column("_kafka_partition"), partition))
        rows = rows.sort_by("_kafka_offset")
        keys = [k.encode("utf-8") if k is not None else None
                for k in rows.column("_kafka_key").to_pylist()]
        stamps = pc.cast(rows.column("_kafka_timestamp"), pa.int64()).to_pylist()
        runs.append(Run(partition, rows.column("raw").to_pylist(), keys,
                        rows.column("_kafka_offset").to_pylist(), stamps))
    return runs


def _stored_reasons(files: Sequence[LetterFile]) -> dict[Coordinates, str]:
    stored: dict[Coordinates, str] = {}
    for file in files:
        stored.update(zip(_coordinates(file.rows), file.rows.column("reason").to_pylist(),
                          strict=True))
    return stored


def _rewritten(rows: pa.Table, gone: set[Coordinates],
               reasons: dict[Coordinates, str]) -> pa.Table | None:
    """A dead-letter file's rows after the replay (``None``: the file stays as it is)."""
    coordinates = _coordinates(rows)
    old = rows.column("reason").to_pylist()
    keep = [c not in gone for c in coordinates]
    new = [reasons.get(c, why) for c, why in zip(coordinates, old, strict=True)]
    if all(keep) and new == old:
        return None
    index = rows.schema.get_field_index("reason")
    rows = rows.set_column(index, rows.schema.field(index), pa.array(new, pa.string()))
    return rows.filter(pa.array(keep, pa.bool_()))
