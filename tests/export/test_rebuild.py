"""Day rebuilds without a broker: a scripted source, the ingest's own sink for the lake."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestream.errors import TerminalError
from lakestream.export.kafka_scan import PartitionChunk
from lakestream.export.rebuild import DayRebuild, ledger_view
from lakestream.ingest.sink import LakeSink
from lakestream.lake.reader import LakeReader
from tests.lake.lakegen import FEED, batches, checksums, forget_types, land, local_lake

DAY = dt.date(2025, 1, 15)
FOLDER = "streams/feed/year=2025/month=01/day=15"


class ScriptedSource:
    """Replays what ``land`` produced, as a Kafka scan would."""

    def __init__(self, count: int, available_from: dict[int, int] | None = None) -> None:
        self.count = count
        self.available_from = available_from or {}
        self.asked: dict[int, tuple[int, int]] = {}

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionChunk]:
        self.asked = ranges
        for p, offsets, values in batches(self.count):
            first, last = ranges.get(p, (0, -1))
            keep = [i for i, o in enumerate(offsets) if first <= o <= last]
            yield PartitionChunk(FEED.topic, p, [values[i] for i in keep], [b"k"] * len(keep),
                                 [offsets[i] for i in keep], [1736935200000] * len(keep))


def test_a_rebuild_writes_the_ingests_rows_under_names_recovery_knows(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = local_lake(tmp_path)
    land(storage, 6)
    before = checksums(tmp_path)
    view = ledger_view(storage, FEED, FOLDER)

    report = DayRebuild(storage, FEED, DAY).run(ScriptedSource(6))

    assert checksums(tmp_path) == before
    assert (report.records_before, report.records_after) == (60, 60)
    names = {p.name for p in (tmp_path / FOLDER).iterdir()}
    assert {name for _, _, name in view.protected.values()} <= names
    assert "events-0-000000000000-000000000048.parquet" in names  # first..last day-15 row
    with caplog.at_level(logging.WARNING, logger="lakestream"):
        assert [LakeSink(storage, FEED).recover(FEED.topic, p) for p in (0, 1)] == [60, 60]
    assert not caplog.records


def test_a_rebuild_reads_only_offsets_the_ledger_committed(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 3)
    source = ScriptedSource(5)  # the topic holds two more batches than the lake
    report = DayRebuild(storage, FEED, DAY).run(source)
    assert source.asked == {0: (0, 29), 1: (0, 29)}
    assert report.records_after == report.records_before == 30


def test_a_source_that_lost_records_of_the_day_is_refused(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 4)
    before = sorted(p.name for p in (tmp_path / FOLDER).iterdir())
    with pytest.raises(TerminalError, match="no longer holds"):
        DayRebuild(storage, FEED, DAY).run(ScriptedSource(4, available_from={0: 20}))
    assert sorted(p.name for p in (tmp_path / FOLDER).iterdir()) == before


class Replay:
    """A scripted partition 0: the given messages at offsets 0.., minus ``dropped``."""

    def __init__(self, values: list[bytes], dropped: frozenset[int] = frozenset()) -> None:
        self.values, self.dropped = values, dropped

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionChunk]:
        first, last = ranges.get(0, (0, -1))
        keep = [o for o in range(first, last + 1) if o not in self.dropped]
        yield PartitionChunk(FEED.topic, 0, [self.values[o] for o in keep], [b"k"] * len(keep),
                             keep, [1736935200000] * len(keep))


def _orders(root: Path, n: int, text: int = 0) -> list[bytes]:
    """``n`` records of 2025-01-15 in two batches; the last ``text`` have a text ``note``.

    The two batches are written as a lake from before the type contract would have
    (the committed types forgotten in between), so a text ``note`` lands too.
    """
    values = [json.dumps({"id": f"e{i}", "at": "2025-01-15T10:00:00Z", "amount": i,
                          "note": "late" if i >= n - text else i / 2}).encode() for i in range(n)]
    split = n - text if text else n // 2
    for lo, hi in ((0, split), (split, n)):
        sink = LakeSink(local_lake(root), FEED)
        sink.recover(FEED.topic, 0)
        sink.write(FEED.topic, 0, values[lo:hi], [b"k"] * (hi - lo), list(range(lo, hi)),
                   [1736935200000] * (hi - lo))
        forget_types(root)
    return values


def test_a_rebuild_sends_what_no_longer_fits_its_types_to_the_dlq(tmp_path: Path) -> None:
    values = _orders(tmp_path, 20, text=5)
    storage = local_lake(tmp_path)
    assert LakeReader(storage).query("SELECT count(*) FROM feed")[1] == [(20,)]
    declared = FEED.model_copy(update={"schema_spec": {**FEED.schema_spec, "note": "double"}})

    report = DayRebuild(storage, declared, DAY).run(Replay(values))

    assert (report.read, report.records_after, report.dead_letters) == (20, 15, 5)
    assert report.records_before == 20 and report.new_dead_letters == 5
    reader = LakeReader(storage, feeds=[declared])
    assert reader.query("SELECT count(*), typeof(any_value(note)) FROM feed")[1] == [
        (15, "DOUBLE")]
    assert reader.query("SELECT _kafka_offset, reason FROM dlq_feed ORDER BY 1")[1] == [
        (o, "field note: expected double, found string") for o in range(15, 20)]
    again = DayRebuild(storage, declared, DAY).run(Replay(values))
    assert (again.read, again.dead_letters, again.new_dead_letters) == (20, 5, 0)
    assert LakeReader(storage).query("SELECT count(*) FROM dlq_feed")[1] == [(5,)]


def test_a_rebuild_that_would_lose_records_of_the_day_commits_nothing(tmp_path: Path) -> None:
    values = _orders(tmp_path, 20)
    before = checksums(tmp_path)
    with pytest.raises(TerminalError, match="would lose 2 of the records the day holds"):
        DayRebuild(local_lake(tmp_path), FEED, DAY).run(Replay(values, dropped=frozenset({3, 11})))
    assert checksums(tmp_path) == before
    assert not (tmp_path / "_dlq").exists()


def test_a_table_has_no_days(tmp_path: Path) -> None:
    table = FEED.model_copy(update={"kind": "table"})
    with pytest.raises(TerminalError, match="is a table"):
        DayRebuild(local_lake(tmp_path), table, DAY)


@pytest.mark.parametrize(("args", "message"), [
    (["export"], "say what to export"),
    (["export", "--all", "--table", "t"], "say what to export"),
    (["export", "--table", "t", "--date", "2025-01-15"], "use it with --stream"),
    (["export", "--stream", "s", "--pipeline", "p"], "use it with --all"),
    (["export", "--stream", "s", "--date", "15/01/2025"], "is not a date like 2025-01-15"),
    (["export", "--stream", "user_transaction_summary"], "is a table, not a stream"),
    (["compact", "--feed", "user_transaction_summary"], "is a table"),
])
def test_export_and_compact_usage_errors_exit_2_with_one_line(
        args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lakestream.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
