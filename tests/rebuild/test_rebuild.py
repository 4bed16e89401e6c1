"""Day rebuilds without a broker: what a rebuild refuses (nothing committed), usage errors.

What a rebuild commits is tested in ``test_delta_rebuild.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakestream.errors import LakestreamError, TerminalError
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import Storage
from lakestream.rebuild.day import DayRebuild
from tests.lake.lakegen import FEED, batches, checksums, land, local_lake

DAY = dt.date(2025, 1, 15)
FOLDER = "streams/feed/year=2025/month=01/day=15"


class ScriptedSource:
    """Replays what ``land`` produced, as a Kafka scan would."""

    def __init__(self, count: int, available_from: dict[int, int] | None = None) -> None:
        self.count = count
        self.available_from = available_from or {}
        self.asked: dict[int, tuple[int, int]] = {}

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionBuffer]:
        self.asked = ranges
        for p, offsets, values in batches(self.count):
            first, last = ranges.get(p, (0, -1))
            keep = [i for i, o in enumerate(offsets) if first <= o <= last]
            yield PartitionBuffer(FEED.topic, p, [values[i] for i in keep], [b"k"] * len(keep),
                                  [offsets[i] for i in keep], [1736935200000] * len(keep))


def _version(storage: Storage) -> int:
    return int(DeltaDataset(storage, "streams/feed").table().version())


def test_a_source_that_lost_records_of_the_day_is_refused(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    land(storage, 4, delta=True)
    version, before = _version(storage), checksums(tmp_path)
    with pytest.raises(TerminalError, match="no longer holds"):
        DayRebuild(storage, FEED, DAY).run(ScriptedSource(4, available_from={0: 20}))
    assert _version(storage) == version and checksums(tmp_path) == before


class Replay:
    """A scripted partition 0: the given messages at offsets 0.., minus ``dropped``."""

    def __init__(self, values: list[bytes], dropped: frozenset[int] = frozenset()) -> None:
        self.values, self.dropped = values, dropped

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionBuffer]:
        first, last = ranges.get(0, (0, -1))
        keep = [o for o in range(first, last + 1) if o not in self.dropped]
        yield PartitionBuffer(FEED.topic, 0, [self.values[o] for o in keep], [b"k"] * len(keep),
                              keep, [1736935200000] * len(keep))


def test_a_rebuild_that_would_lose_records_of_the_day_commits_nothing(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    values = [json.dumps({"id": f"e{i}", "at": "2025-01-15T10:00:00Z", "amount": i}).encode()
              for i in range(20)]
    sink = DeltaLakeSink(storage, FEED)
    sink.recover(FEED.topic, 0)
    sink.write(FEED.topic, 0, values, [b"k"] * 20, list(range(20)), [1736935200000] * 20)
    version, before = _version(storage), checksums(tmp_path)
    with pytest.raises(TerminalError, match="would lose 2 of the records the day holds"):
        DayRebuild(storage, FEED, DAY).run(Replay(values, dropped=frozenset({3, 11})))
    assert _version(storage) == version and checksums(tmp_path) == before
    assert not (tmp_path / "_dlq").exists()


def test_a_dataset_written_before_delta_is_not_rebuilt_but_upgraded(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    legacy = pa.table({"id": ["e0"], "_kafka_partition": [0], "_kafka_offset": [0]})
    pq.write_table(legacy, folder / "events-0-000000000000-000000000000.parquet")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(TerminalError, match="written before the lake moved to Delta") as caught:
        DayRebuild(storage, FEED, DAY).run(ScriptedSource(1))
    assert isinstance(caught.value, LakestreamError)  # TerminalError is a mixin: no hint
    assert "lakestream lake upgrade" in str(caught.value.hint)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


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
