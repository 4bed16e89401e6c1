"""The offset ledger: a batch is committed by its manifest, and any crash recovers exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestream.config import S3Settings
from lakestream.errors import FencedError
from lakestream.lake.layout import ledger_path, staging_path
from lakestream.lake.ledger import Manifest, OffsetLedger, StagedFile, Totals
from lakestream.lake.storage import Storage, open_storage

DATASET = "streams/orders"
TOPIC = "orders"


@pytest.fixture
def lake(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "lake"), S3Settings())


def stage(
    lake: Storage, start: int, end: int, days: tuple[str, ...] = ("2025-01-02",), dlq: int = 0
) -> list[StagedFile]:
    """Write a batch's files to staging, as the writer does, and describe them."""
    files = []
    for day in days:
        y, m, d = day.split("-")
        name = f"{TOPIC}-0-{start:012d}-{end:012d}.parquet"
        staged = f"{staging_path(DATASET, TOPIC, 0)}/data-{day}-{name}"
        lake.write_atomic(staged, f"rows of {day} {start}-{end}".encode())
        final = f"{DATASET}/year={y}/month={m}/day={d}/{name}"
        files.append(StagedFile(staged, final, records=end - start + 1, bytes=10, date=day))
    if dlq:
        staged = f"{staging_path(DATASET, TOPIC, 0)}/dlq-{days[0]}-{start}.parquet"
        lake.write_atomic(staged, b"dead letters")
        files.append(
            StagedFile(staged, f"_dlq/orders/{start}.parquet", dlq, 5, days[0], kind="dlq")
        )
    return files


def manifest(
    start: int, end: int, files: list[StagedFile], previous: Totals | None = None
) -> Manifest:
    return Manifest(
        dataset=DATASET, topic=TOPIC, partition=0, start_offset=start, end_offset=end,
        files=files, totals=(previous or Totals()).add(start, files),
        committed_at="2025-01-02T00:00:00.000+00:00",
    )  # fmt: skip


def visible(lake: Storage) -> list[str]:
    """What a plain reader globbing the dataset sees."""
    return [f.path for f in lake.list_files(DATASET) if f.path.endswith(".parquet")]


def staged_files(lake: Storage) -> list[str]:
    return [f.path for f in lake.list_files("_staging")]


def manifests(lake: Storage) -> list[str]:
    return [f.path.rsplit("/", 1)[1] for f in lake.list_files(ledger_path(DATASET, TOPIC, 0))]


def test_an_empty_ledger_recovers_to_none(lake: Storage) -> None:
    ledger = OffsetLedger(lake, DATASET)
    assert ledger.latest(TOPIC, 0) is None
    assert ledger.recover(TOPIC, 0) is None


def test_staged_files_are_invisible_until_commit_then_moved_into_place(lake: Storage) -> None:
    ledger = OffsetLedger(lake, DATASET)
    files = stage(lake, 0, 9, days=("2025-01-01", "2025-01-02"))
    assert visible(lake) == []  # staging is outside the dataset's folder
    ledger.commit(manifest(0, 9, files), expected_next=None)
    assert visible(lake) == [f.final for f in files]
    assert lake.read(files[0].final) == b"rows of 2025-01-01 0-9"
    assert staged_files(lake) == []
    assert ledger.recover(TOPIC, 0) == 10


def test_a_crash_after_the_manifest_is_finished_by_recovery(
    lake: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = stage(lake, 0, 4)
    OffsetLedger(lake, DATASET).commit(manifest(0, 4, first), None)
    files = stage(lake, 5, 9, days=("2025-01-02", "2025-01-03"), dlq=1)
    moves = 0
    real_move = lake.move

    def crash_after_first_move(src: str, dst: str) -> None:
        nonlocal moves
        if moves == 1:
            raise KeyboardInterrupt("simulated kill -9 during the moves")
        moves += 1
        real_move(src, dst)

    monkeypatch.setattr(lake, "move", crash_after_first_move)
    with pytest.raises(KeyboardInterrupt):
        OffsetLedger(lake, DATASET).commit(manifest(5, 9, files), expected_next=5)
    monkeypatch.undo()
    assert len(visible(lake)) == 2  # the first batch's file and one of this batch's

    restarted = OffsetLedger(lake, DATASET)
    assert restarted.recover(TOPIC, 0) == 10
    assert visible(lake) == sorted([first[0].final, files[0].final, files[1].final])
    assert lake.exists(files[2].final)  # the DLQ file too
    assert staged_files(lake) == []
    assert restarted.recover(TOPIC, 0) == 10  # recovering again changes nothing
    assert len(visible(lake)) == 3


def test_a_crash_before_the_manifest_deletes_the_orphans_and_rewinds(lake: Storage) -> None:
    ledger = OffsetLedger(lake, DATASET)
    committed = stage(lake, 0, 99)
    ledger.commit(manifest(0, 99, committed), None)
    stage(lake, 100, 199, days=("2025-01-02", "2025-01-03"), dlq=2)  # then the process dies
    assert len(staged_files(lake)) == 3

    assert OffsetLedger(lake, DATASET).recover(TOPIC, 0) == 100  # consume 100.. again
    assert staged_files(lake) == []
    assert visible(lake) == [committed[0].final]


def test_a_crash_before_the_first_manifest_rewinds_to_the_start(lake: Storage) -> None:
    stage(lake, 0, 9)
    assert OffsetLedger(lake, DATASET).recover(TOPIC, 0) is None
    assert staged_files(lake) == [] and visible(lake) == []


def test_a_fenced_commit_raises_and_changes_nothing(lake: Storage) -> None:
    ledger = OffsetLedger(lake, DATASET)
    ledger.commit(manifest(0, 9, stage(lake, 0, 9)), None)
    # another consumer took the partition over and committed 10..19
    OffsetLedger(lake, DATASET).commit(manifest(10, 19, stage(lake, 10, 19)), 10)
    before = (visible(lake), manifests(lake))

    zombie = stage(lake, 10, 14)  # the old owner still thinks the ledger is at 10
    with pytest.raises(FencedError) as err:
        ledger.commit(manifest(10, 14, zombie), expected_next=10)
    assert "ledger is at 20" in err.value.message and "expected 10" in err.value.message
    assert (visible(lake), manifests(lake)) == before
    assert lake.exists(zombie[0].staging)  # not moved into the dataset
    latest = ledger.latest(TOPIC, 0)
    assert latest is not None and latest.end_offset == 19


def test_a_first_commit_expecting_an_offset_is_fenced(lake: Storage) -> None:
    with pytest.raises(FencedError):
        OffsetLedger(lake, DATASET).commit(manifest(5, 9, stage(lake, 5, 9)), expected_next=5)
    assert manifests(lake) == [] and visible(lake) == []


def test_only_the_newest_manifest_is_kept(lake: Storage) -> None:
    ledger = OffsetLedger(lake, DATASET)
    totals = Totals()
    expected = None
    for start in range(0, 40, 10):
        m = manifest(start, start + 9, stage(lake, start, start + 9), totals)
        ledger.commit(m, expected)
        totals, expected = m.totals, start + 10
    assert manifests(lake) == [f"{39:020d}.json"]
    latest = ledger.latest(TOPIC, 0)
    assert latest is not None and (latest.start_offset, latest.end_offset) == (30, 39)
    assert len(visible(lake)) == 4


def test_totals_accumulate_across_commits(lake: Storage) -> None:
    ledger = OffsetLedger(lake, DATASET)
    first = manifest(100, 109, stage(lake, 100, 109, days=("2025-01-01", "2025-01-02"), dlq=1))
    ledger.commit(first, None)
    second = manifest(110, 119, stage(lake, 110, 119), first.totals)
    ledger.commit(second, 110)

    latest = ledger.latest(TOPIC, 0)
    assert latest is not None
    totals = latest.totals
    assert totals.records == 10 + 10 + 10  # two days of 10 in the first batch, 10 in the second
    assert totals.rejected == 1
    assert totals.files == 4
    assert totals.bytes == 10 + 10 + 5 + 10
    assert totals.first_offset == 100  # where the lake's coverage starts, kept forever
    assert totals.dates == {"2025-01-01": 10, "2025-01-02": 20}


def test_totals_add_does_not_mutate_the_previous_totals() -> None:
    files = [StagedFile("s", "f", records=3, bytes=7, date="2025-01-01")]
    base = Totals()
    after = base.add(0, files)
    assert base == Totals() and base.dates == {}
    assert after == Totals(records=3, bytes=7, files=1, first_offset=0, dates={"2025-01-01": 3})


def test_a_manifest_round_trips_through_json(lake: Storage) -> None:
    m = manifest(0, 9, stage(lake, 0, 9, dlq=2))
    assert Manifest.from_json(m.to_json()) == m


def test_all_latest_returns_one_manifest_per_partition(lake: Storage) -> None:
    ledger = OffsetLedger(lake, DATASET)
    ledger.commit(manifest(0, 9, stage(lake, 0, 9)), None)
    ledger.commit(manifest(10, 19, stage(lake, 10, 19)), 10)
    other = Manifest(
        dataset=DATASET, topic=TOPIC, partition=1, start_offset=0, end_offset=4, files=[],
        totals=Totals(), committed_at="2025-01-02T00:00:00.000+00:00",
    )  # fmt: skip
    ledger.commit(other, None)
    assert [(m.partition, m.end_offset) for m in ledger.all_latest()] == [(0, 19), (1, 4)]
