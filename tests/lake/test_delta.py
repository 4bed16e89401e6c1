"""The Delta commit path: offsets in the log, compare-and-swap commits, fencing (local and S3)."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from lakestream.config import S3Settings
from lakestream.errors import FencedError
from lakestream.lake.delta import DeltaDataset, OffsetRange, app_id
from lakestream.lake.storage import Storage, open_storage
from tests.conftest import s3_settings
from tests.support.seaweedfs import SeaweedFS


def _rows(first: int, last: int, day: str = "04") -> pa.Table:
    offsets = list(range(first, last + 1))
    return pa.table({"offset": pa.array(offsets, pa.int64()),
                     "year": ["2026"] * len(offsets), "month": ["12"] * len(offsets),
                     "day": [day] * len(offsets)})


def _local(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "lake"), S3Settings())


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return _local(tmp_path)
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket: str = request.getfixturevalue("s3_bucket")
    s3 = s3_settings(server)
    return open_storage(f"s3://{bucket}/lake", s3)


def _offsets(dataset: DeltaDataset) -> list[int]:
    table = dataset.table()
    # to_pyarrow_dataset, not to_pyarrow_table: see tests/lake/interop.py (abort at exit)
    return sorted(table.to_pyarrow_dataset().to_table(columns=["offset"])
                  .column("offset").to_pylist())


def test_offsets_round_trip_through_the_log_in_hive_folders(lake: Storage) -> None:
    data = DeltaDataset(lake, "streams/s", ["year", "month", "day"])
    assert data.table() is None and data.next_offset("t", 0) is None
    version = data.append(_rows(0, 9), [OffsetRange("t", 0, None, 9)])
    assert data.next_offset("t", 0) == 10 and data.next_offset("t", 1) is None
    data.append(_rows(10, 19), [OffsetRange("t", 0, 9, 19)])
    assert data.table().version() == version + 1
    assert _offsets(data) == list(range(20))
    files = data.table().file_uris()
    assert all("/year=2026/month=12/day=04/" in f and f.endswith(".parquet") for f in files)


def test_a_writer_whose_partition_moved_on_is_fenced_and_commits_nothing(lake: Storage) -> None:
    owner = DeltaDataset(lake, "streams/s", ["day"])
    owner.append(_rows(0, 9), [OffsetRange("t", 3, None, 9)])
    stale = DeltaDataset(lake, "streams/s", ["day"])  # a writer frozen with offsets 10..19
    owner.append(_rows(10, 14), [OffsetRange("t", 3, 9, 14)])  # the new owner got there first
    before = owner.table().version()
    with pytest.raises(FencedError, match=r"t\[3\].*holds offset 14.*expected 9"):
        stale.append(_rows(10, 19), [OffsetRange("t", 3, 9, 19)])
    assert owner.table().version() == before
    assert _offsets(owner) == list(range(15)), "no duplicate, no gap"


def test_writers_of_other_partitions_race_for_versions_and_lose_nothing(lake: Storage) -> None:
    """Writers of four partitions commit at once: every commit lands, each exactly once."""
    errors: list[BaseException] = []

    def writer(partition: int) -> None:
        data = DeltaDataset(lake, "streams/s", ["day"])
        expected = None
        try:
            for batch in range(10):
                first = partition * 1000 + batch * 10
                data.append(_rows(first, first + 9), [OffsetRange("t", partition, expected,
                                                                  first + 9)])
                expected = first + 9
        except BaseException as exc:  # reported below
            errors.append(exc)

    DeltaDataset(lake, "streams/s", ["day"]).append(_rows(-1, -1))  # create the table first
    threads = [threading.Thread(target=writer, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    data = DeltaDataset(lake, "streams/s", ["day"])
    assert data.table().version() == 41  # 0 creates the table empty, 1 holds offset -1
    want = [-1] + [p * 1000 + i for p in range(4) for i in range(100)]
    assert _offsets(data) == sorted(want)
    assert data.transaction_versions([app_id("t", p) for p in range(4)]) == {
        app_id("t", p): p * 1000 + 99 for p in range(4)}


def test_two_writers_of_one_partition_at_once_land_it_once(lake: Storage) -> None:
    """Both believe they own partition 0 with the same expected offset: one wins, one is fenced."""
    DeltaDataset(lake, "streams/s", ["day"]).append(_rows(0, 4), [OffsetRange("t", 0, None, 4)])
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def writer(last: int) -> None:
        data = DeltaDataset(lake, "streams/s", ["day"])
        data.table()
        barrier.wait()
        try:
            data.append(_rows(5, last), [OffsetRange("t", 0, 4, last)])
            outcomes.append("committed")
        except FencedError:
            outcomes.append("fenced")

    threads = [threading.Thread(target=writer, args=(last,)) for last in (9, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["committed", "fenced"]
    offsets = _offsets(DeltaDataset(lake, "streams/s", ["day"]))
    assert offsets in (list(range(10)), list(range(13)))


def test_a_table_log_exists_before_its_first_data_file(lake: Storage) -> None:
    """The first commit creates the table empty, then appends: data files without a log are
    never the remains of a first commit (they are a dataset from before Delta)."""
    data = DeltaDataset(lake, "streams/s", ["year", "month", "day"])
    data.append(_rows(0, 4), [OffsetRange("t", 0, None, 4)])
    table = data.table()
    first = table.history()[-1]
    assert first["version"] == 0 and first["operation"] == "CREATE TABLE"
    assert table.version() == 1 and _offsets(data) == [0, 1, 2, 3, 4]
    assert (table.protocol().min_reader_version, table.protocol().min_writer_version) == (1, 2)
