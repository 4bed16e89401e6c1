"""Table feeds on Delta: one table partitioned by ``version``, a snapshot and the removal of
the oldest kept version in one commit, offsets in the log, fenced writers (local and S3)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from lakestream.config import S3Settings
from lakestream.errors import ConfigError, FencedError
from lakestream.feeds import Feed
from lakestream.ingest.tables import TableSink
from lakestream.lake.delta import DeltaDataset, app_id, is_delta_table, storage_options
from lakestream.lake.reader import LakeReader
from lakestream.lake.storage import Storage, open_storage
from lakestream.lake.table_versions import (
    current_delta_version,
    delta_table_versions,
    read_delta_version,
)
from tests.governance.lakebuild import TABLE_SPEC, build_table

LEGACY_LAKE = Path(__file__).parents[1] / "fixtures" / "legacy_lake"
TOTALS = Feed(name="totals", topic="totals", kind="table", layer="tables",
              schema={"k": "string", "n": "int64"}, key=("k",))


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty lake: a local folder, or a fresh SeaweedFS bucket."""
    if request.param == "s3":
        server = request.getfixturevalue("seaweedfs")
        return open_storage(f"s3://{request.getfixturevalue('s3_bucket')}/lake", S3Settings(
            endpoint=server.endpoint_url, access_key=server.access_key,
            secret_key=server.secret_key))
    return open_storage(str(tmp_path / "lake"), S3Settings())


def sink(lake: Storage, keep: int = 7) -> TableSink:
    loaded = TableSink(lake, TOTALS, keep)
    loaded.load()
    return loaded


def put(s: TableSink, partition: int, offset: int, key: str, n: int | None) -> None:
    value = None if n is None else json.dumps({"k": key, "n": n}).encode()
    s.apply(partition, offset, key.encode(), value)


def rows(lake: Storage, version: str | None = None) -> dict[str, int]:
    got = read_delta_version(lake, TOTALS.dataset, version)
    return dict(zip(got.column("k").to_pylist(), got.column("n").to_pylist(), strict=True))


def delta_table(lake: Storage, version: int | None = None) -> Any:
    from deltalake import DeltaTable

    return DeltaTable(lake.url(TOTALS.dataset), version=version,
                      storage_options=storage_options(lake))


def last_log_entry(lake: Storage) -> list[dict[str, Any]]:
    files = sorted(f.path for f in lake.list_files(f"{TOTALS.dataset}/_delta_log")
                   if f.path.endswith(".json"))
    return [json.loads(line) for line in lake.read(files[-1]).decode().splitlines()]


def test_each_version_holds_exactly_the_latest_value_per_key(lake: Storage) -> None:
    s = sink(lake)
    put(s, 0, 0, "a", 1)
    put(s, 1, 0, "b", 2)
    put(s, 0, 1, "a", 3)
    v1 = s.snapshot()
    put(s, 1, 1, "b", None)  # b deleted
    put(s, 0, 2, "c", 5)
    put(s, 0, 3, "a", 4)
    v2 = s.snapshot()

    assert v1 is not None and v2 is not None and (v1.name, v2.name) == ("v1", "v2")
    assert rows(lake, "v1") == {"a": 3, "b": 2}
    assert rows(lake) == {"a": 4, "c": 5}
    assert current_delta_version(lake, TOTALS.dataset) == "v2"
    assert delta_table_versions(lake, TOTALS.dataset) == ["v1", "v2"]
    assert v2.rows == 2 and v2.offsets == {"0": 4, "1": 2}
    table = delta_table(lake)
    assert table.transaction_version(app_id("totals", 0)) == 3
    assert table.transaction_version(app_id("totals", 1)) == 1
    assert sorted(lake.list_dirs(TOTALS.dataset)) == ["_delta_log", "version=v1", "version=v2"]
    meta = json.loads(lake.read(f"{TOTALS.dataset}/_metadata.json"))
    assert (meta["current_version"], meta["records"], meta["format"]) == ("v2", 2, "delta")
    assert [v["version"] for v in meta["versions"]] == ["v1", "v2"]
    assert meta["kafka_offsets"] == {"0": 4, "1": 2}


def test_the_eighth_snapshot_adds_v8_and_removes_v1_in_one_commit(lake: Storage) -> None:
    s = sink(lake, keep=7)
    for v in range(1, 9):
        put(s, 0, v, "a", v)
        s.snapshot()

    entry = last_log_entry(lake)
    added = [a["add"]["partitionValues"]["version"] for a in entry if "add" in a]
    removed = [a["remove"]["partitionValues"]["version"] for a in entry if "remove" in a]
    assert (added, removed) == (["v8"], ["v1"])
    assert [a["txn"]["version"] for a in entry if "txn" in a
            and a["txn"]["appId"] == app_id("totals", 0)] == [8]
    metrics = delta_table(lake).history(1)[0]["operationMetrics"]
    assert (metrics["num_added_files"], metrics["num_removed_files"]) == (1, 1)
    assert delta_table_versions(lake, TOTALS.dataset) == [f"v{n}" for n in range(2, 9)]
    assert rows(lake) == {"a": 8}


def test_a_restart_loads_the_newest_version_and_resumes_after_its_offsets(
        lake: Storage) -> None:
    first = sink(lake)
    put(first, 0, 0, "a", 1)
    put(first, 2, 7, "b", 2)
    first.snapshot()
    put(first, 0, 1, "a", 9)  # applied, never snapshotted: read again after the restart

    again = sink(lake)
    assert again.rows == {("a",): {"k": "a", "n": 1}, ("b",): {"k": "b", "n": 2}}
    assert again.offsets == {0: 1, 2: 8}
    put(again, 0, 1, "a", 9)
    again.snapshot()
    assert rows(lake) == {"a": 9, "b": 2}
    assert sink(lake).offsets == {0: 2, 2: 8}


def test_two_writers_of_one_table_never_both_commit(lake: Storage) -> None:
    s = sink(lake)
    put(s, 0, 0, "a", 1)
    s.snapshot()
    old, new = sink(lake), sink(lake)  # a restart while the old process still runs
    put(new, 1, 0, "b", 2)  # another partition: the offsets alone could not tell
    new.snapshot()
    log_version = delta_table(lake).version()
    put(old, 0, 1, "a", 5)

    with pytest.raises(FencedError):
        old.snapshot()
    assert delta_table(lake).version() == log_version
    assert rows(lake) == {"a": 1, "b": 2}
    old.load()  # what the fenced writer does: reload the winner's version
    assert old.offsets == {0: 1, 1: 1}


def test_protocol_time_travel_and_reading_without_duckdb(lake: Storage) -> None:
    s = sink(lake, keep=2)
    for v in range(1, 4):
        put(s, 0, v, "a", v * 10)
        put(s, 0, 100 + v, f"only{v}", v)
        s.snapshot()

    table = delta_table(lake)
    protocol = table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert not protocol.reader_features and not protocol.writer_features
    data = table.to_pyarrow_dataset().to_table().sort_by([("version", "ascending"),
                                                          ("k", "ascending")])
    assert data.select(["version", "k", "n"]).to_pylist() == [
        {"version": "v2", "k": "a", "n": 20}, {"version": "v2", "k": "only1", "n": 1},
        {"version": "v2", "k": "only2", "n": 2},
        {"version": "v3", "k": "a", "n": 30}, {"version": "v3", "k": "only1", "n": 1},
        {"version": "v3", "k": "only2", "n": 2}, {"version": "v3", "k": "only3", "n": 3}]
    assert delta_table(lake, version=0).to_pyarrow_dataset().count_rows() == 0  # created empty
    first = delta_table(lake, version=1).to_pyarrow_dataset().to_table()  # time travel
    assert set(first.column("version").to_pylist()) == {"v1"}
    assert sorted(first.column("k").to_pylist()) == ["a", "only1"]


def test_an_empty_snapshot_is_the_current_version_with_no_rows(lake: Storage) -> None:
    s = sink(lake)
    put(s, 0, 0, "a", 1)
    s.snapshot()
    put(s, 0, 1, "a", None)
    v2 = s.snapshot()

    assert v2 is not None and v2.name == "v2" and v2.rows == 0
    assert current_delta_version(lake, TOTALS.dataset) == "v2"
    assert rows(lake) == {}
    assert delta_table_versions(lake, TOTALS.dataset) == ["v1", "v2"]
    again = sink(lake)
    assert again.rows == {} and again.offsets == {0: 2} and again.current is not None
    assert again.current.version == 2


def test_new_columns_and_null_only_columns_are_typed_for_every_reader(lake: Storage) -> None:
    s = sink(lake)
    s.apply(0, 0, b"a", json.dumps({"k": "a", "n": 1, "note": None}).encode())
    s.snapshot()
    s.apply(0, 1, b"b", json.dumps({"k": "b", "n": 2, "note": "x", "extra": 1.5}).encode())
    s.snapshot()

    schema = pa.schema(delta_table(lake).schema().to_arrow())
    assert schema.field("note").type in (pa.string(), pa.large_string(), pa.string_view())
    got = read_delta_version(lake, TOTALS.dataset).sort_by("k").to_pylist()
    assert [(r["k"], r["note"], r["extra"]) for r in got] == [("a", None, None),
                                                              ("b", "x", 1.5)]


def test_query_views_are_the_current_version_and_the_history(lake: Storage) -> None:
    build_table(lake, Feed(name="totals", topic="t-totals", **TABLE_SPEC), 3)

    assert is_delta_table(lake, TOTALS.dataset)
    reader = LakeReader(lake, feeds=[TOTALS])
    try:
        current = reader.query("SELECT version, k, n FROM totals ORDER BY k")[1]
        history = reader.query("SELECT version, count(*) FROM totals_history GROUP BY 1 "
                               "ORDER BY 1")[1]
    finally:
        reader.close()
    assert current == [("v3", "key0", 20), ("v3", "key1", 21), ("v3", "key2", 22)]
    assert history == [("v1", 3), ("v2", 3), ("v3", 3)]


def test_a_table_written_before_delta_is_refused_with_the_upgrade_hint(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(LEGACY_LAKE / "tables", root / "tables")
    lake = open_storage(str(root), S3Settings())
    feed = Feed(name="user_transaction_summary", topic="user_transaction_summary",
                **TABLE_SPEC)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    for attempt in (TableSink(lake, feed).load, lambda: build_table(lake, feed, 1)):
        with pytest.raises(ConfigError) as refused:
            attempt()
        assert refused.value.message == (f"{lake.url(feed.dataset)} was written before "
                                         "Lakestream kept the lake as Delta tables")
        assert refused.value.hint == "run `lakestream lake upgrade` (--dry-run shows what it does)"
    assert not is_delta_table(lake, feed.dataset)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_reader_polling_during_snapshots_always_sees_one_whole_version_set(
        lake: Storage) -> None:
    keep, snapshots = 3, 12
    s = sink(lake, keep)
    errors: list[str] = []
    seen: set[str] = set()
    done = threading.Event()

    def expected(number: int) -> dict[str, int]:  # each version a different size
        return {f"k{i}": number for i in range(number % 4 + 2)}

    def poll() -> None:
        while not done.is_set():
            table = DeltaDataset(lake, TOTALS.dataset, ["version"]).table()
            if table is None:
                continue
            data = table.to_pyarrow_dataset().to_table()
            versions = sorted({int(v[1:]) for v in data.column("version").to_pylist()})
            if not versions:
                continue
            top = versions[-1]
            window = list(range(max(1, top - keep + 1), top + 1))
            if versions != window:
                errors.append(f"versions {versions}, expected {window}")
            for n in versions:
                part = data.filter(pads.field("version") == f"v{n}")
                got = dict(zip(part.column("k").to_pylist(), part.column("n").to_pylist(),
                               strict=True))
                if got != expected(n):
                    errors.append(f"v{n}: {got}")
            seen.add(f"v{top}")

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        offset = 0
        for number in range(1, snapshots + 1):
            s.rows = {}
            for key, n in expected(number).items():
                put(s, 0, offset, key, n)
                offset += 1
            s.snapshot()
            deadline = time.monotonic() + 30
            while f"v{number}" not in seen and time.monotonic() < deadline and errors == []:
                time.sleep(0.005)  # the reader reads every version while the next one commits
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert len(seen) == snapshots
    assert delta_table_versions(lake, TOTALS.dataset) == ["v10", "v11", "v12"]


def test_compaction_and_vacuum_between_snapshots_change_nothing_a_restart_sees(
        lake: Storage) -> None:
    s = sink(lake, keep=2)
    for v in range(1, 4):
        put(s, 0, 2 * v, "a", v)
        put(s, 1, v, f"b{v}", v)
        s.rejected += 1
        s.snapshot()
    table = delta_table(lake)
    table.optimize.compact()  # maintenance commits carry no snapshot of their own
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert "lakestream.version" not in delta_table(lake).history(1)[0]

    again = sink(lake, keep=2)
    assert again.offsets == {0: 7, 1: 4} and again.current is not None
    assert (again.current.version, again.current.rejected) == (3, 3)
    put(again, 0, 7, "a", 9)
    again.snapshot()
    assert rows(lake) == {"a": 9, "b1": 1, "b2": 2, "b3": 3}
    assert delta_table_versions(lake, TOTALS.dataset) == ["v3", "v4"]
    assert json.loads(lake.read(f"{TOTALS.dataset}/_metadata.json"))["rejected_records"] == 3


def test_a_complete_table_from_ksqldb_is_a_new_version_keeping_the_offsets(
        lake: Storage) -> None:
    from lakestream.batchload.tables import export_table_rows

    s = sink(lake)
    put(s, 0, 4, "a", 1)
    put(s, 3, 9, "b", 2)
    s.snapshot()

    version = export_table_rows(lake, TOTALS, 7, [{"k": "a", "n": 5}, {"k": "c", "n": 6}])

    assert (version.name, version.offsets) == ("v2", {"0": 5, "3": 10})
    assert rows(lake) == {"a": 5, "c": 6}
    assert sink(lake).offsets == {0: 5, 3: 10}  # the streaming ingest resumes from there
