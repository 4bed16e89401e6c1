"""Retention of Delta datasets: one delete commit per dataset, vacuum after the grace period.

The dry run lists exactly the partitions and files the real run removes from
the table, and exactly the files its vacuum deletes from storage; readers see
every old partition or none of them gone; `_metadata.json` follows the log.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from lakestream.lake.delta import DeltaDataset, app_id
from lakestream.lake.delta_maintenance import partition_files, protocol_of
from lakestream.lake.layout import dlq_path
from lakestream.lake.metadata import read_metadata
from lakestream.lake.storage import Storage
from tests.support.seaweedfs import SeaweedFS

from .conftest import api_for, run
from .lakebuild import build_stream, build_table
from .test_retention import retention_json, s3_project, today


def stored(storage: Storage) -> set[str]:
    """Every file of the lake but the Delta logs and the metadata summaries."""
    return {f.path for f in storage.list_files("")
            if "/_delta_log/" not in f.path and not f.path.endswith("_metadata.json")}


def rows(storage: Storage, dataset: str) -> int:
    from deltalake import DeltaTable

    data = DeltaDataset(storage, dataset)
    return int(DeltaTable(data.uri, storage_options=data.options).to_pyarrow_dataset()
               .count_rows())


def test_delta_retention_is_one_commit_then_a_vacuum_after_the_grace_period(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = api_for(project)
    feeds = {f.name: f for f in api.feeds}
    day = today()
    counts = build_stream(api.storage, feeds["events"], day, days=400, batches=2,
                          partitions=2)
    build_table(api.storage, feeds["totals"], versions=9)  # a table feed beside
    data, dlq = DeltaDataset(api.storage, "streams/events"), DeltaDataset(
        api.storage, dlq_path("events"))
    versions = (data.table().version(), dlq.table().version())
    offsets = {p: data.table().transaction_version(app_id("t-events", p)) for p in (0, 1)}
    files_before = stored(api.storage)

    dry = retention_json(project, capsys, "--dry-run")
    assert stored(api.storage) == files_before and data.table().version() == versions[0]
    real = retention_json(project, capsys)
    assert real["deletions"] == dry["deletions"]

    cutoff = (day - dt.timedelta(days=90)).isoformat()
    events = [d for d in dry["deletions"] if d["view"] == "events"]
    assert {d["date"] for d in events} == {k for k in counts if k <= cutoff}
    assert sum(d["rows"] for d in events) == sum(n for k, n in counts.items() if k <= cutoff)
    assert any(d["layer"] == "dlq" for d in dry["deletions"])
    planned = {f for d in dry["deletions"] for f in d["files"]}
    removed = {f for o in real["deleted"] for f in o["removed_files"]}
    assert any(d["layer"] == "tables" for d in dry["deletions"])
    assert removed == planned, "the delete commits removed exactly the plan"
    assert stored(api.storage) == files_before, "the files stay on storage for the grace period"

    assert (data.table().version(), dlq.table().version()) == (versions[0] + 1,
                                                              versions[1] + 1), "one commit each"
    assert protocol_of(data) == (1, 2, None, None) and protocol_of(dlq) == (1, 2, None, None)
    assert {p: data.table().transaction_version(app_id("t-events", p)) for p in (0, 1)} == offsets
    kept = {k: n for k, n in counts.items() if k > cutoff}
    assert rows(api.storage, "streams/events") == sum(kept.values())
    meta = read_metadata(api.storage, "streams/events")
    assert meta is not None and meta["format"] == "delta"
    assert meta["records"] == sum(kept.values())
    assert {p["date"]: p["records"] for p in meta["partitions"]} == kept
    assert dry["vacuum"] == [] and real["grace_hours"] == 24

    # the grace period over (0 h here): the dry run lists the removed files, the run deletes them
    dry0 = retention_json(project, capsys, "--dry-run", "--grace-hours", "0")
    assert dry0["deletions"] == [], "the first run removed every old partition"
    vacuum = {f for v in dry0["vacuum"] for f in v["files"]}
    assert vacuum == removed
    before = stored(api.storage)
    real0 = retention_json(project, capsys, "--grace-hours", "0")
    assert {f for o in real0["deleted"] for f in o["vacuumed_files"]} == vacuum
    assert {api.storage.url(p) for p in before - stored(api.storage)} == vacuum
    assert rows(api.storage, "streams/events") == sum(kept.values())
    assert not any(p.startswith(f"streams/events/year={cutoff[:4]}/month={cutoff[5:7]}/"
                                f"day={cutoff[8:]}/") for p in stored(api.storage))
    assert retention_json(project, capsys, "--dry-run", "--grace-hours", "0")["vacuum"] == []


def test_the_table_output_lists_what_the_vacuum_would_delete(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = api_for(project)
    build_stream(api.storage, {f.name: f for f in api.feeds}["events"], today(), days=95,
                 batches=1)
    assert run(project, "retention", "--grace-hours", "0", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would delete 5 partition(s)/version(s)" in out
    assert "vacuum streams/events: would delete 5 file(s)" in out
    assert run(project, "retention", "--grace-hours", "0") == 0
    out = capsys.readouterr().out
    assert "deleted 5 partition(s)" in out and "vacuum streams/events: deleted 5 file(s)" in out


def _poll(storage: Storage, counts: list[int], stop: threading.Event,
          errors: list[BaseException]) -> threading.Thread:
    def poll() -> None:
        try:
            while not stop.is_set():
                counts.append(rows(storage, "streams/events"))
        except BaseException as exc:
            errors.append(exc)
    thread = threading.Thread(target=poll)
    thread.start()
    while not counts and not errors:
        stop.wait(0.01)
    return thread


def _reader_sees_whole_snapshots(project: Path, storage: Storage) -> None:
    api = api_for(project)
    counts = build_stream(storage, {f.name: f for f in api.feeds}["events"], today(),
                          days=200, batches=4)
    before = rows(storage, "streams/events")
    cutoff = (today() - dt.timedelta(days=90)).isoformat()
    after = sum(n for k, n in counts.items() if k > cutoff)
    seen: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []
    thread = _poll(storage, seen, stop, errors)
    try:
        # the delete commit under the reader: its files stay for the grace period, so a read
        # of the snapshot before it that is still running finds them all
        assert run(project, "retention") == 0
        mark = len(seen)
        while len(seen) < mark + 2 and not errors:  # the reader now opens later snapshots
            stop.wait(0.01)
        # the vacuum (grace 0) under the reader: no snapshot it opens refers to those files
        assert run(project, "retention", "--grace-hours", "0") == 0
        mark = len(seen)
        while len(seen) < mark + 2 and not errors:
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert not stored(storage) & {f"streams/events/{p}" for p in _removed(storage)}
    assert before > after and seen[0] == before and rows(storage, "streams/events") == after
    assert set(seen) <= {before, after}, "a reader saw some old partitions gone, not all"


def _removed(storage: Storage) -> set[str]:
    """Files the log of streams/events removed at some point (from its remove actions)."""
    data = DeltaDataset(storage, "streams/events")
    found: set[str] = set()
    for entry in storage.list_files("streams/events/_delta_log"):
        if entry.path.endswith(".json"):
            for line in storage.read(entry.path).decode().splitlines():
                action = json.loads(line)
                if "remove" in action:
                    found.add(action["remove"]["path"])
    assert data.table() is not None
    return found


def test_a_reader_polling_during_retention_sees_whole_snapshots(project: Path) -> None:
    _reader_sees_whole_snapshots(project, api_for(project).storage)


@pytest.mark.integration
def test_s3_delta_retention_one_commit_and_whole_snapshots(
    tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    api = s3_project(tmp_path, seaweedfs, s3_bucket, monkeypatch)
    _reader_sees_whole_snapshots(tmp_path, api.storage)
    data = DeltaDataset(api.storage, "streams/events")
    assert protocol_of(data) == (1, 2, None, None)
    cutoff = today() - dt.timedelta(days=90)
    assert min(dt.date(*map(int, k)) for k in partition_files(data)) > cutoff
    capsys.readouterr()
    left = retention_json(tmp_path, capsys, "--dry-run", "--grace-hours", "0")
    assert left["deletions"] == [] and left["vacuum"] == [], "all vacuumed on S3 too"


def test_table_versions_beside_streams_keep_their_own_rule(project: Path) -> None:
    api = api_for(project)
    feeds = {f.name: f for f in api.feeds}
    build_stream(api.storage, feeds["events"], today(), days=3, batches=1)
    build_table(api.storage, feeds["totals"], versions=9)
    plan = api.governance.retention_plan()
    assert [d.partition for d in plan.deletions if d.layer == "tables"] == \
        ["version=v1", "version=v2"]
    assert not [d for d in plan.deletions if d.layer == "streams"]


def test_delta_table_versions_past_the_kept_ones_go_in_one_commit(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakestream.lake.table_versions import current_delta_version, read_delta_version

    api = api_for(project)
    build_table(api.storage, {f.name: f for f in api.feeds}["totals"], versions=10)
    data = DeltaDataset(api.storage, "tables/totals")
    version, current = data.table().version(), read_delta_version(api.storage, "tables/totals")
    dry = retention_json(project, capsys, "--dry-run", "--layer", "tables")
    assert [d["partition"] for d in dry["deletions"]] == [f"version=v{n}" for n in (1, 2, 3)]
    real = retention_json(project, capsys, "--layer", "tables")
    assert {f for o in real["deleted"] for f in o["removed_files"]} == \
        {f for d in dry["deletions"] for f in d["files"]}
    assert data.table().version() == version + 1 and protocol_of(data) == (1, 2, None, None)
    assert current_delta_version(api.storage, "tables/totals") == "v10"
    assert read_delta_version(api.storage, "tables/totals").equals(current)
    meta = read_metadata(api.storage, "tables/totals")
    assert meta is not None and meta["current_version"] == "v10"
    assert [v["version"] for v in meta["versions"]] == [f"v{n}" for n in range(4, 11)]
