"""Day rebuilds without a broker: a scripted source, the ingest's own sink for the lake."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestream.errors import TerminalError
from lakestream.export.kafka_scan import PartitionChunk
from lakestream.export.rebuild import DayRebuild, ledger_view
from lakestream.ingest.sink import LakeSink
from tests.lake.lakegen import FEED, batches, checksums, land, local_lake

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
