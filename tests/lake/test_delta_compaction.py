"""Compaction of Delta datasets: `compact` and the in-band pass (local and S3).

What a user would notice: fewer files, the same rows, offsets and protocol,
a dry run naming exactly the files the real run rewrites, appends running
meanwhile landing exactly once, and a reader that never sees a half state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pyarrow as pa
import pytest

from lakestream.lake.compaction import compact_dataset
from lakestream.lake.delta import DeltaDataset, OffsetRange, app_id
from lakestream.lake.delta_maintenance import (
    compact_small_files,
    partition_files,
    protocol_of,
)
from lakestream.lake.storage import Storage
from tests.lake.test_delta import lake  # noqa: F401 (the local / SeaweedFS lake fixture)

DAY = ("2026", "12", "04")
OTHER = ("2026", "12", "03")
COLUMNS = ["year", "month", "day"]


def _rows(first: int, count: int, day: tuple[str, str, str]) -> pa.Table:
    return pa.table({"offset": pa.array(range(first, first + count), pa.int64()),
                     "payload": [f"value-{i}" * 3 for i in range(first, first + count)],
                     "year": [day[0]] * count, "month": [day[1]] * count,
                     "day": [day[2]] * count})


class Writer:
    """Appends batches of one Kafka partition through the fenced commit path."""

    def __init__(self, storage: Storage, partition: int = 0) -> None:
        self.data = DeltaDataset(storage, "streams/s", COLUMNS)
        self.partition = partition
        self.next = 0

    def append(self, count: int, day: tuple[str, str, str]) -> None:
        expected = self.next - 1 if self.next else None
        first = self.partition * 1_000_000 + self.next
        self.data.append(_rows(first, count, day),
                         [OffsetRange("t", self.partition, expected, self.next + count - 1)])
        self.next += count


def _offsets(storage: Storage) -> list[int]:
    table = DeltaDataset(storage, "streams/s").table()
    return sorted(table.to_pyarrow_dataset().to_table(columns=["offset"])
                  .column("offset").to_pylist())


def _live(storage: Storage) -> set[str]:
    return {f.path for files in partition_files(DeltaDataset(storage, "streams/s")).values()
            for f in files}


def test_compact_turns_100_small_files_into_few_in_one_commit_keeping_rows_and_offsets(
    lake: Storage,  # noqa: F811
) -> None:
    writer = Writer(lake)
    for i in range(100):
        writer.append(5 + i % 7, DAY)
    writer.append(10, OTHER)  # a partition with one file: nothing to merge there
    data = DeltaDataset(lake, "streams/s")
    version, rows = data.table().version(), _offsets(lake)
    txn = data.table().transaction_version(app_id("t", 0))
    live = _live(lake)

    dry = compact_dataset(lake, "streams/s", dry_run=True, target=8 * 1024 * 1024)
    assert _live(lake) == live and data.table().version() == version, "a dry run changed it"
    assert [(r.date, r.files_before, r.files_after) for r in dry] == [("2026-12-04", 100, 1)]

    done = compact_dataset(lake, "streams/s", target=8 * 1024 * 1024)
    assert [(r.date, r.files_before, r.files_after, r.mode) for r in done] == \
        [("2026-12-04", 100, 1, "delta")]
    table = DeltaDataset(lake, "streams/s").table()
    assert table.version() == version + 1, "one commit for the partition"
    removed = {f"streams/s/{p}" for p in live - _live(lake)}
    assert removed == set(dry[0].rewritten) == set(done[0].rewritten)
    assert len(removed) == 100
    assert _offsets(lake) == rows, "the same rows, none twice"
    assert table.transaction_version(app_id("t", 0)) == txn, "offsets kept in the log"
    assert protocol_of(DeltaDataset(lake, "streams/s")) == (1, 2, None, None)
    assert done[0].bytes_after < done[0].bytes_before
    assert compact_dataset(lake, "streams/s", target=8 * 1024 * 1024) == [], "nothing left"
    writer.append(3, DAY)  # the writer goes on from the kept transaction version
    assert _offsets(lake) == rows + list(range(len(rows), len(rows) + 3))


def test_dry_run_names_exactly_the_files_a_mixed_partition_rewrites(tmp_path_lake: Storage
                                                                    ) -> None:
    """Files above the target split the runs delta-rs packs: the plan follows it exactly."""
    writer = Writer(tmp_path_lake)
    for i in range(40):
        writer.append(2000 if i % 9 == 4 else 20 + (i * 37) % 300, DAY)
    live = _live(tmp_path_lake)
    target = sorted(f.size for f in partition_files(
        DeltaDataset(tmp_path_lake, "streams/s"))[DAY])[-8]  # some files are above it
    dry = compact_dataset(tmp_path_lake, "streams/s", target=target, dry_run=True)
    done = compact_dataset(tmp_path_lake, "streams/s", target=target)
    removed = {f"streams/s/{p}" for p in live - _live(tmp_path_lake)}
    assert removed and removed == set(dry[0].rewritten)
    assert done[0].files_after == dry[0].files_after
    assert len(removed) < len(live), "big files and lone small ones stay"


@pytest.fixture
def tmp_path_lake(tmp_path: object) -> Storage:
    from pathlib import Path

    from lakestream.config import S3Settings
    from lakestream.lake.storage import open_storage

    assert isinstance(tmp_path, Path)
    return open_storage(str(tmp_path / "lake"), S3Settings())


def test_in_band_compaction_takes_partitions_over_the_threshold_but_not_skipped_ones(
    tmp_path_lake: Storage,
) -> None:
    writer = Writer(tmp_path_lake)
    busy, old, few = DAY, OTHER, ("2026", "12", "02")
    for _ in range(6):
        writer.append(4, busy)
        writer.append(4, old)
    for _ in range(3):
        writer.append(4, few)
    data = DeltaDataset(tmp_path_lake, "streams/s", COLUMNS)
    result = compact_small_files(data, min_files=4, target_bytes=1 << 20, skip={busy})
    assert [p.partition for p in result.partitions] == [old]
    assert result.skipped == [busy]
    counts = {k: len(v) for k, v in partition_files(data).items()}
    assert counts == {busy: 6, old: 1, few: 3}
    assert result.files_removed == 6
    assert compact_small_files(data, min_files=4, target_bytes=1 << 20).partitions[0] \
        .partition == busy
    assert _offsets(tmp_path_lake) == list(range(writer.next))


def _reader(storage: Storage, counts: list[int], stop: threading.Event,
            errors: list[BaseException]) -> Callable[[], None]:
    from deltalake import DeltaTable

    data = DeltaDataset(storage, "streams/s")

    def poll() -> None:
        try:
            while not stop.is_set():
                table = DeltaTable(data.uri, storage_options=data.options)
                counts.append(table.to_pyarrow_dataset().count_rows())
        except BaseException as exc:
            errors.append(exc)
    return poll


def test_appends_while_compacting_land_exactly_once_and_readers_see_whole_snapshots(
    lake: Storage,  # noqa: F811
) -> None:
    """One writer appends to the partition being compacted and to another one, a second
    writer to a third; in-band compaction runs over and over meanwhile."""
    first, second = Writer(lake, 0), Writer(lake, 1)
    for _ in range(20):
        first.append(5, DAY)
        first.append(5, OTHER)
    data = DeltaDataset(lake, "streams/s", COLUMNS)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(25):
                first.append(3, DAY if i % 2 else OTHER)
                second.append(2, ("2026", "12", "05"))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    passes = 0
    while thread.is_alive():
        compact_small_files(DeltaDataset(lake, "streams/s", COLUMNS), min_files=2,
                            target_bytes=1 << 20)
        passes += 1
    thread.join()
    assert not errors, errors
    compact_small_files(data, min_files=2, target_bytes=1 << 20)
    offsets = _offsets(lake)
    assert offsets == sorted(list(range(first.next)) +
                             list(range(1_000_000, 1_000_000 + second.next))), \
        "every append exactly once"
    table = DeltaDataset(lake, "streams/s").table()
    assert table.transaction_version(app_id("t", 0)) == first.next - 1
    assert table.transaction_version(app_id("t", 1)) == second.next - 1
    assert protocol_of(data) == (1, 2, None, None)
    assert passes >= 1
    assert all(len(v) <= 2 for v in partition_files(data).values())

    # a reader polling fresh snapshots while three partitions are compacted, one commit each
    counts: list[int] = []
    for day in ("06", "07", "08"):
        for _ in range(20):
            first.append(2, ("2026", "12", day))
    total = len(_offsets(lake))
    before = table.version()
    poll = threading.Thread(target=_reader(lake, counts, stop, errors))
    poll.start()
    while len(counts) < 3:
        stop.wait(0.01)
    done = compact_small_files(data, min_files=2, target_bytes=1 << 20)
    stop.set()
    poll.join()
    assert not errors, errors
    assert len(done.partitions) == 3
    assert DeltaDataset(lake, "streams/s").table().version() > before
    assert counts and set(counts) == {total}, \
        "every snapshot whole: no file counted twice, none missing"


def test_the_compact_command_on_a_delta_feed(tmp_path: object,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """100 ingest commits into one day, then `compact --dry-run`, then `compact`."""
    import json
    from pathlib import Path

    from lakestream.ingest.delta_sink import DeltaLakeSink
    from tests.conftest import clear_settings_environment
    from tests.governance.conftest import api_for, run, write_project

    assert isinstance(tmp_path, Path)
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    api = api_for(tmp_path)
    feed = {f.name: f for f in api.feeds}["events"]
    sink = DeltaLakeSink(api.storage, feed)
    sink.recover(feed.topic, 0)
    for batch in range(100):
        values = [json.dumps({"id": f"{batch}-{i}", "ts": f"2025-01-15T10:{i:02d}:00Z",
                              "email": "a@example.com"}).encode() for i in range(20)]
        sink.write(feed.topic, 0, values, [b"k"] * 20, list(range(batch * 20, batch * 20 + 20)),
                   [1736935200000] * 20)
    data = DeltaDataset(api.storage, feed.dataset)
    live = _live_of(data)
    assert run(tmp_path, "compact", "--feed", "events", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "streams/events 2025-01-15: would merge 100 files; 100 -> 1 files" in out
    listed = {line.strip() for line in out.splitlines() if line.startswith("  streams/")}
    assert run(tmp_path, "compact", "--feed", "events", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    [done] = report["partitions"]
    assert (done["files_before"], done["files_after"], done["mode"]) == (100, 1, "delta")
    assert listed == set(done["rewritten"]) == {f"{feed.dataset}/{p}"
                                                for p in live - _live_of(data)}
    assert data.table().transaction_version(app_id(feed.topic, 0)) == 1999
    assert data.table().to_pyarrow_dataset().count_rows() == 2000


def _live_of(data: DeltaDataset) -> set[str]:
    return {f.path for files in partition_files(data).values() for f in files}
