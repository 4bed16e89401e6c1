"""Day rebuilds of Delta datasets without a broker: a scripted source, the ingest's Delta sink.

Each rebuild is checked against the log: one commit replaces the day, the
ingest's offsets (application transactions) do not move, and what other
writers commit meanwhile is neither lost nor doubled.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.lake.delta import DeltaDataset, app_id
from lakestream.lake.storage import Storage
from lakestream.rebuild.day import DayRebuild
from tests.lake.lakegen import FEED, batches, land, local_lake
from tests.lake.test_delta import lake as _local_and_s3_lake

lake = _local_and_s3_lake  # the fixture: a local lake, and one on SeaweedFS (integration)
DAY = dt.date(2025, 1, 15)
TS_15 = 1736935200000  # 2025-01-15T10:00:00Z
TS_16 = TS_15 + 86_400_000
ROWS = "streams/feed"
DLQ = "_dlq/feed"


def _table(storage: Storage, rel: str = ROWS) -> Any:
    return DeltaDataset(storage, rel).table()


def _rows(storage: Storage, rel: str = ROWS, day: str | None = "15") -> list[tuple[Any, ...]]:
    """Every row (all columns but the dates), sorted by Kafka coordinates (fresh table)."""
    table = _table(storage, rel)
    if table is None:
        return []
    data = table.to_pyarrow_dataset().to_table()
    if day is not None:
        data = data.filter(pc.equal(data.column("day"), day))
    skip = {"year", "month", "day", "rejected_at"}
    names = sorted(c for c in data.column_names if c not in skip)
    rows = [tuple(json.dumps(r[c], default=str) for c in names) for r in data.to_pylist()]
    return sorted(rows)


def _coordinates(storage: Storage, rel: str = ROWS) -> list[tuple[int, int]]:
    table = _table(storage, rel)
    data = table.to_pyarrow_dataset().to_table(columns=["_kafka_partition", "_kafka_offset"])
    return sorted(zip(data.column(0).to_pylist(), data.column(1).to_pylist(), strict=True))


def _offsets_in_log(storage: Storage, topic: str = FEED.topic) -> dict[str, Any]:
    table, dlq = _table(storage), _table(storage, DLQ)
    return {f"{rel}:{p}": t.transaction_version(app_id(topic, p))
            for rel, t in ((ROWS, table), (DLQ, dlq)) if t is not None for p in range(2)}


class ScriptedSource:
    """Replays what ``land`` produced (``count`` batches per partition), as a Kafka scan would.

    ``during`` runs once, after the rebuild planned and before it gets any record.
    """

    def __init__(self, count: int, during: Callable[[], None] | None = None,
                 values: Callable[[int, int, bytes], bytes] | None = None,
                 timestamps: Callable[[int, int], int] | None = None) -> None:
        self.count = count
        self.during = during
        self.values = values or (lambda p, o, v: v)
        self.timestamps = timestamps or (lambda p, o: TS_15)
        self.asked: dict[int, tuple[int, int]] = {}

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionBuffer]:
        self.asked = ranges
        if self.during is not None:
            during, self.during = self.during, None
            during()
        for p, offsets, values in batches(self.count):
            first, last = ranges.get(p, (0, -1))
            keep = [i for i, o in enumerate(offsets) if first <= o <= last]
            yield PartitionBuffer(FEED.topic, p,
                                  [self.values(p, offsets[i], values[i]) for i in keep],
                                  [b"k"] * len(keep), [offsets[i] for i in keep],
                                  [self.timestamps(p, offsets[i]) for i in keep])


def test_a_rebuild_replaces_the_day_in_one_commit_and_leaves_the_offsets(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 6, delta=True)
    before, other_day = _rows(storage), _rows(storage, day="16")
    offsets = _offsets_in_log(storage)
    version = _table(storage).version()

    source = ScriptedSource(8)  # the topic holds two more batches than the lake
    report = DayRebuild(storage, FEED, DAY).run(source)

    table = _table(storage)
    assert table.version() == version + 1
    assert table.history(1)[0]["operation"] == "WRITE"
    assert source.asked == {0: (0, 59), 1: (0, 59)}
    assert (report.mode, report.records_before, report.records_after) == ("delta", 60, 60)
    assert report.read == 60 and report.files_before == 12 and report.files_after == 1
    assert report.offsets == {"events:0": {"first": 0, "last": 59},
                              "events:1": {"first": 0, "last": 59}}
    assert _rows(storage) == before and _rows(storage, day="16") == other_day
    assert _offsets_in_log(storage) == offsets
    protocol = table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert protocol.reader_features is None and protocol.writer_features is None
    # the new file's statistics are there for readers that skip files
    files = pa.table(table.get_add_actions(flatten=True))
    rebuilt = files.filter(pc.match_substring(files.column("path"), "rebuild"))
    assert rebuilt.column("num_records").to_pylist() == [60]
    assert rebuilt.column("min._kafka_offset").to_pylist() == [0]
    assert rebuilt.column("max.at").to_pylist()[0].date() == DAY

    # the ingest goes on where it was: nothing twice
    land(storage, 2, delta=True)
    assert Counter(_coordinates(storage)).most_common(1)[0][1] == 1
    assert len(_coordinates(storage)) == 160


def test_a_rebuild_restores_rows_and_dead_letters_of_the_day(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)

    def broken(p: int, offset: int, value: bytes) -> bytes:
        return b"not json" if offset % 10 == 3 else value

    sink = DeltaLakeSink(storage, FEED)
    for p in (0, 1):
        sink.recover(FEED.topic, p)
    for p, offsets, values in batches(4):
        sink.write(FEED.topic, p, [broken(p, o, v) for o, v in zip(offsets, values, strict=True)],
                   [b"k"] * len(values), offsets, [TS_15] * len(values))
    rows, letters = _rows(storage), _rows(storage, DLQ)
    assert len(letters) == 8 and len(rows) == 36  # of 80 records, half on the 15th
    dlq_version = _table(storage, DLQ).version()
    # a day's files lost outside the log's knowledge cannot be, but a bad rewrite can:
    # here the day is rebuilt from the source and must equal what the ingest wrote
    report = DayRebuild(storage, FEED, DAY).run(ScriptedSource(4, values=broken))

    assert _rows(storage) == rows and _rows(storage, DLQ) == letters
    assert _table(storage, DLQ).version() == dlq_version + 1  # its own commit
    assert (report.records_after, report.new_dead_letters) == (36, 0)
    again = DayRebuild(storage, FEED, DAY).run(ScriptedSource(4, values=broken))
    assert (again.records_before, again.records_after) == (36, 36)
    assert _rows(storage) == rows and _rows(storage, DLQ) == letters


LOOSE = FEED.model_copy(update={"required": ("at",)})  # the feed once did not require an id


def _no_id(p: int, offset: int, value: bytes) -> bytes:
    """Every fifth record without an id."""
    if offset % 5:
        return value
    body = json.loads(value)
    del body["id"]
    return json.dumps(body).encode()


def _kafka_time(p: int, offset: int) -> int:
    """Odd offsets were produced on the 16th (late for their event time)."""
    return TS_16 if offset % 2 else TS_15


def _land_loose(storage: Storage, count: int) -> None:
    """The lake of a feed that did not require an id: every record landed."""
    sink = DeltaLakeSink(storage, LOOSE)
    for p in (0, 1):
        sink.recover(FEED.topic, p)
    for p, offsets, values in batches(count):
        sink.write(FEED.topic, p, [_no_id(p, o, v) for o, v in zip(offsets, values, strict=True)],
                   [b"k"] * len(values), offsets, [_kafka_time(p, o) for o in offsets])


def _loose_source(count: int, during: Callable[[], None] | None = None) -> ScriptedSource:
    return ScriptedSource(count, during, values=_no_id, timestamps=_kafka_time)


def test_rows_that_no_longer_fit_become_dead_letters_once(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    _land_loose(storage, 4)
    assert _table(storage, DLQ) is None
    held = [c for c in _coordinates(storage)]
    day_before = _rows(storage)

    report = DayRebuild(storage, FEED, DAY).run(_loose_source(4))  # "id" is required now

    dead, rows = _coordinates(storage, DLQ), _coordinates(storage)
    assert dead and report.new_dead_letters == len(dead)
    assert sorted(dead + rows) == held  # each record a row or a dead letter, exactly once
    assert all(o % 5 == 0 for _, o in dead)
    assert report.records_after + report.dead_letters == report.records_before == len(day_before)
    letters = DeltaDataset(storage, DLQ).table().to_pyarrow_dataset().to_table()
    assert set(letters.column("day").to_pylist()) == {"15", "16"}  # by their Kafka time
    assert set(letters.column("reason").to_pylist()) == {"missing required field id"} or all(
        "id" in r for r in letters.column("reason").to_pylist())

    again = DayRebuild(storage, FEED, DAY).run(_loose_source(4))
    assert again.new_dead_letters == 0
    assert _coordinates(storage, DLQ) == dead and _coordinates(storage) == rows


def _appender(storage: Storage, feed: Feed, stop: threading.Event,
              landed: threading.Event) -> Callable[[], None]:
    """Appends batches of both days to both partitions through the Delta sink until ``stop``."""
    def run() -> None:
        sink = DeltaLakeSink(storage, feed)
        for p in (0, 1):
            sink.recover(feed.topic, p)
        n = 0
        while not stop.is_set():
            p = n % 2
            start = sink.next_offset[(feed.topic, p)] or 0
            values = [json.dumps({"id": f"x{p}-{start + i}", "amount": 1.0,
                                  "at": f"2025-01-{15 + i % 2}T11:00:00Z"}).encode()
                      for i in range(5)]
            sink.write(feed.topic, p, values, [b"k"] * 5, list(range(start, start + 5)),
                       [TS_15] * 5)
            n += 1
            if n >= 2:
                landed.set()
    return run


def test_appends_during_a_rebuild_land_once(lake: Storage) -> None:
    land(lake, 4, delta=True)
    stop, landed = threading.Event(), threading.Event()
    thread = threading.Thread(target=_appender(lake, FEED, stop, landed))
    before = _offsets_in_log(lake)

    def append_meanwhile() -> None:
        thread.start()
        assert landed.wait(60)  # appends of the day committed after the rebuild's snapshot

    try:
        report = DayRebuild(lake, FEED, DAY).run(ScriptedSource(4, during=append_meanwhile))
    finally:
        stop.set()
        thread.join()
    coordinates = _coordinates(lake)
    assert Counter(coordinates).most_common(1)[0][1] == 1
    after = _offsets_in_log(lake)
    for p in (0, 1):
        last = after[f"{ROWS}:{p}"]
        assert last > before[f"{ROWS}:{p}"]
        assert [o for q, o in coordinates if q == p] == list(range(last + 1))
    assert report.records_after == 40
    day = _rows(lake)
    assert any(r[-1].startswith('"x') for r in day)  # appended rows of the day survived


def test_a_compaction_during_a_rebuild_makes_it_start_over(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 6, delta=True)
    before = _rows(storage)

    def compact() -> None:
        table = _table(storage)
        table.optimize.compact(partition_filters=[("day", "=", "15")])

    report = DayRebuild(storage, FEED, DAY).run(ScriptedSource(6, during=compact))
    assert report.records_after == 60
    assert _rows(storage) == before
    assert Counter(_coordinates(storage)).most_common(1)[0][1] == 1
    operations = [h["operation"] for h in _table(storage).history(3)]
    assert operations[:2] == ["WRITE", "OPTIMIZE"]


def test_readers_during_a_rebuild_see_the_day_before_or_after(lake: Storage) -> None:
    _land_loose(lake, 6)
    before = len(_coordinates(lake))
    uri, options = DeltaDataset(lake, ROWS).uri, DeltaDataset(lake, ROWS).options
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        from deltalake import DeltaTable

        while not stop.is_set():
            seen.append(DeltaTable(uri, storage_options=options)
                        .to_pyarrow_dataset().count_rows())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        reports = [DayRebuild(lake, FEED, DAY).run(_loose_source(6)) for _ in range(2)]
    finally:
        stop.set()
        reader.join()
    after = len(_coordinates(lake))
    assert after < before  # records without an id are dead letters now
    assert reports[0].new_dead_letters == before - after
    assert set(seen) <= {before, after} and seen, Counter(seen)


def test_a_rebuilt_day_with_a_new_field_grows_the_tables_schema_first(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 2, delta=True)
    version = _table(storage).version()

    def with_note(p: int, offset: int, value: bytes) -> bytes:
        return json.dumps({**json.loads(value), "note": f"n{offset}"}).encode()

    report = DayRebuild(storage, FEED, DAY).run(ScriptedSource(2, values=with_note))

    table = _table(storage)
    assert table.version() == version + 2  # the new column alone, then the day
    assert "note" in table.schema().to_arrow().names
    data = table.to_pyarrow_dataset().to_table(columns=["day", "note", "_kafka_offset"])
    notes = {(r["day"], r["note"] is not None) for r in data.to_pylist()}
    assert notes == {("15", True), ("16", False)}
    assert report.records_after == report.records_before == 20
    assert table.protocol().min_writer_version == 2


def _land_strict(storage: Storage, count: int) -> list[tuple[int, int]]:
    """The lake of the feed that requires an id: every fifth record a dead letter; all
    coordinates."""
    sink = DeltaLakeSink(storage, FEED)
    for p in (0, 1):
        sink.recover(FEED.topic, p)
    every = []
    for p, offsets, values in batches(count):
        sink.write(FEED.topic, p, [_no_id(p, o, v) for o, v in zip(offsets, values, strict=True)],
                   [b"k"] * len(values), offsets, [_kafka_time(p, o) for o in offsets])
        every += [(p, o) for o in offsets]
    return sorted(every)


def test_a_replay_during_a_rebuild_lands_each_record_once(tmp_path: Path) -> None:
    """Both turn the same dead letters into rows: whichever commits second starts over."""
    from lakestream.ingest.replay import DeadLetterReplay

    storage = local_lake(tmp_path)
    every = _land_strict(storage, 4)
    assert _coordinates(storage, DLQ)
    replays = []
    report = DayRebuild(storage, LOOSE, DAY).run(_loose_source(
        4, during=lambda: replays.append(DeadLetterReplay(storage, LOOSE).run())))
    assert replays[0].landed > 0 and report.records_after
    rows, dead = _coordinates(storage), _coordinates(storage, DLQ)
    assert Counter(rows).most_common(1)[0][1] == 1
    assert not set(rows) & set(dead) and sorted(rows + dead) == every


def test_a_replay_planned_before_a_rebuild_plans_again(tmp_path: Path) -> None:
    from lakestream.errors import FencedError
    from lakestream.ingest.replay import DeadLetterReplay
    from lakestream.lake.dead_letter_report import LetterFilter

    storage = local_lake(tmp_path)
    every = _land_strict(storage, 4)
    replay = DeadLetterReplay(storage, LOOSE)
    stale = replay._plan(LetterFilter())
    DayRebuild(storage, LOOSE, DAY).run(_loose_source(4))
    try:
        replay._land(stale)
        raise AssertionError("a replay planned before the rebuild committed landed")
    except FencedError:
        pass
    DeadLetterReplay(storage, LOOSE).run()
    rows, dead = _coordinates(storage), _coordinates(storage, DLQ)
    assert Counter(rows).most_common(1)[0][1] == 1 and not dead
    assert sorted(rows) == every
