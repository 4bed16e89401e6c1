"""``lakestream lake upgrade`` on a lake the legacy (pre-Delta) version wrote.

The lake is ``tests/fixtures/legacy_lake`` (see its README); what the legacy
version showed of it — rows of every dataset after its own recovery, and the
offsets its sinks resumed from — is ``legacy_lake.expected.json``, written by
the legacy code. After the upgrade, Delta must show the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from confluent_kafka import Producer
from deltalake import DeltaTable

from lakestream.api import Lakestream
from lakestream.config import S3Settings, load_settings
from lakestream.derive.state import AggregateState
from lakestream.errors import TerminalError
from lakestream.feeds import BUILTIN_FEEDS
from lakestream.ingest.delta_sink import SOURCE_PREFIX, DeltaLakeSink
from lakestream.kafka.client import ensure_topics
from lakestream.lake.delta import storage_options
from lakestream.lake.storage import Storage, open_storage
from lakestream.lake.table_versions import (
    VersionedTable,
    current_delta_version,
    delta_table_versions,
)
from lakestream.lake.upgrade import upgrade_lake
from tests.conftest import s3_settings, settings_for, unique_topic, write_feed
from tests.ingest.helpers import event, generated
from tests.lake.lake_digest import view_digest
from tests.support.seaweedfs import SeaweedFS

FIXTURES = Path(__file__).parents[1] / "fixtures"
EXPECTED = json.loads((FIXTURES / "legacy_lake.expected.json").read_text())
FEEDS = {f.name: f for f in BUILTIN_FEEDS}


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A copy of the legacy fixture lake."""
    root = tmp_path / "lake"
    shutil.copytree(FIXTURES / "legacy_lake", root, ignore=shutil.ignore_patterns("README.md"))
    return root


def storage_of(root: Path) -> Storage:
    return open_storage(str(root), S3Settings())


def upgrade(root: Path, **kwargs: Any) -> list[Any]:
    return upgrade_lake(storage_of(root), BUILTIN_FEEDS, **kwargs)


def delta_digest(root: Path, rel: str) -> dict[str, Any]:
    con = duckdb.connect()
    con.register("__data", DeltaTable(str(root / rel)).to_pyarrow_dataset())
    con.execute('CREATE VIEW "v" AS SELECT * FROM "__data"')
    return view_digest(con, "v")


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_upgraded(root: Path) -> None:
    """Every dataset holds the legacy rows and offsets, as a reader-1/writer-2 Delta table."""
    for rel, digest in EXPECTED["rows"].items():
        table = DeltaTable(str(root / rel))
        protocol = table.protocol()
        assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2), rel
        assert not protocol.reader_features and not protocol.writer_features, rel
        assert delta_digest(root, rel) == digest, rel
    for key, version in EXPECTED["offsets"].items():
        rel, app = key.split("|")
        assert DeltaTable(str(root / rel)).transaction_version(app) == version, key
    leftovers = [p for p in tree(root) if "/_ledger/" in f"/{p}" or p.endswith(
        ("_day.json", "_retention.json")) or p.startswith("_staging/streams")]
    assert leftovers == []


# -- the upgrade itself ---------------------------------------------------------------------


def test_upgrade_keeps_every_row_and_offset_of_the_legacy_lake(lake: Path) -> None:
    done = upgrade(lake)

    assert {u.plan.rel for u in done} == set(EXPECTED["rows"])
    assert_upgraded(lake)
    moved = [f for u in done for f in u.plan.files if f.staged]
    assert len(moved) == 3  # partition 1's batch committed, then killed before the move
    assert not (lake / "streams/transaction_stream/year=2026/month=12/day=03/"
                "g000002~compacted-deadbeefdeadbeef.parquet").exists()


def test_metadata_is_rewritten_from_the_log(lake: Path) -> None:
    upgrade(lake)

    stream = json.loads((lake / "streams/transaction_stream/_metadata.json").read_text())
    assert stream["format"] == "delta"
    assert stream["records"] == EXPECTED["rows"]["streams/transaction_stream"]["rows"]
    assert stream["rejected_records"] == EXPECTED["rows"]["_dlq/transaction_stream"]["rows"]
    assert stream["kafka_offsets"]["transactions:1"]["last"] == 21
    table = json.loads((lake / "tables/user_transaction_summary/_metadata.json").read_text())
    assert table["format"] == "delta"
    assert table["current_version"] == "v5"
    assert [v["version"] for v in table["versions"]] == ["v3", "v4", "v5"]


def test_dry_run_changes_no_byte_and_lists_what_the_run_does(lake: Path) -> None:
    before = tree(lake)

    planned = upgrade(lake, dry_run=True)

    assert tree(lake) == before
    by_rel = {u.plan.rel: u for u in planned}
    stream = by_rel["streams/transaction_stream"]
    assert stream.rows == EXPECTED["rows"]["streams/transaction_stream"]["rows"]
    assert stream.plan.offsets == {"lakestream/transactions/0": 21,
                                   "lakestream/transactions/1": 21}
    assert "streams/transaction_stream/year=2026/month=12/day=03/" \
           "transactions-0-000000000000-000000000007.parquet" in stream.plan.drop
    assert not any(u.done for u in planned)


def test_running_it_again_changes_nothing(lake: Path) -> None:
    upgrade(lake)
    after = tree(lake)

    again = upgrade(lake)

    assert again == []
    assert tree(lake) == after


def test_a_crash_after_a_commit_is_finished_by_the_next_run(lake: Path) -> None:
    def crash(message: str) -> None:
        if message == "streams/transaction_stream: committed; cleaning up":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upgrade(lake, progress=crash)
    assert (lake / "streams/transaction_stream/_ledger").exists()

    finished = upgrade(lake)

    assert "streams/transaction_stream" in {u.plan.rel for u in finished if u.plan.finish}
    assert_upgraded(lake)


@pytest.mark.parametrize("kill_at", [2, 9, 16])
def test_kill_9_at_any_step_then_a_rerun_finishes(lake: Path, tmp_path: Path,
                                                  kill_at: int) -> None:
    """The upgrade in a process of its own, SIGKILLed at its ``kill_at``-th progress line."""
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump({"lake": {"root": str(lake)},
                                      "data_dir": str(tmp_path / "data"),
                                      "feeds_dir": str(tmp_path / "feeds")}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESTREAM_")}
    proc = subprocess.Popen([sys.executable, "-m", "lakestream", "--config", str(config),
                             "lake", "upgrade"], stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    seen = 0
    for _line in proc.stderr:
        seen += 1
        if seen == kill_at:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert seen == kill_at  # it was killed mid-way, not finished before

    upgrade(lake)

    assert_upgraded(lake)


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["duckdb-delta", "polars"])
def test_readers_other_than_delta_rs_read_the_upgraded_tables(
        lake: Path, reader: str, read_with: Callable[..., list[dict[str, Any]]]) -> None:
    """DuckDB's delta extension (delta-kernel-rs) and polars: the same rows as the legacy
    reader, through the log (the hidden and superseded files are still on disk here)."""
    upgrade(lake)
    (lake / "streams/transaction_stream/year=2026/month=12/day=03/g000002~stray.parquet") \
        .write_bytes((lake / "streams/transaction_stream/year=2026/month=12/day=03/"
                      "transactions-0-000000000008-000000000013.parquet").read_bytes())

    for rel in ("streams/transaction_stream", "tables/user_transaction_summary"):
        rows = read_with(reader, str(lake / rel), "SELECT count(*) AS n FROM lake")
        assert rows == [{"n": EXPECTED["rows"][rel]["rows"]}], (reader, rel)
    offsets = read_with(reader, str(lake / "streams/transaction_stream"),
                        "SELECT _kafka_partition AS p, max(_kafka_offset) AS o, "
                        "count(DISTINCT _kafka_offset) AS n FROM lake GROUP BY 1 ORDER BY 1")
    assert [r["p"] for r in offsets] == [0, 1]
    assert sum(r["n"] for r in offsets) == EXPECTED["rows"]["streams/transaction_stream"]["rows"]


@pytest.mark.integration
def test_upgrade_on_s3(request: pytest.FixtureRequest) -> None:
    """The fixture lake in a SeaweedFS bucket: same rows, same offsets, legacy files gone."""
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket: str = request.getfixturevalue("s3_bucket")
    storage = open_storage(f"s3://{bucket}/lake", s3_settings(server))
    source = FIXTURES / "legacy_lake"
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.name != "README.md":
            storage.write_atomic(str(path.relative_to(source)), path.read_bytes())

    upgrade_lake(storage, BUILTIN_FEEDS)

    options = storage_options(storage)
    for rel, digest in EXPECTED["rows"].items():
        table = DeltaTable(storage.url(rel), storage_options=options)
        con = duckdb.connect()
        con.register("v", table.to_pyarrow_dataset())
        assert view_digest(con, "v") == digest, rel
    for key, version in EXPECTED["offsets"].items():
        rel, app = key.split("|")
        table = DeltaTable(storage.url(rel), storage_options=options)
        assert table.transaction_version(app) == version, key
    left = [f.path for f in storage.list_files("") if "/_ledger/" in f.path
            or f.path.endswith("_day.json") or f.path.startswith("_staging/streams")]
    assert left == []
    assert upgrade_lake(storage, BUILTIN_FEEDS) == []


# -- ingest goes on where the legacy lake stopped ------------------------------------------


def test_the_delta_sink_resumes_each_partition_after_the_carried_offset(lake: Path) -> None:
    upgrade(lake)
    storage = storage_of(lake)
    feed = FEEDS["transaction_stream"]
    sink = DeltaLakeSink(storage, feed)
    assert [sink.recover(feed.topic, p) for p in (0, 1)] == [22, 22]

    event = {"transaction_id": "new-1", "event_time": "2026-12-04T09:00:00Z",
             "transaction_type": "purchase", "status": "completed", "amount": 5.0,
             "currency": "USD", "quantity": 1, "coupon": "NEW", "user": {"user_id": "U1"},
             "payment_method": {"payment_method_id": "PM1"}, "product": {"product_id": "P1"}}
    sink.write(feed.topic, 1, [orjson.dumps(event), b"{bad"], [b"U", b"U"], [22, 23],
               [1796328000000, 1796328000000])

    rows = DeltaTable(str(lake / feed.dataset)).to_pyarrow_dataset().to_table()
    assert rows.num_rows == EXPECTED["rows"][feed.dataset]["rows"] + 1
    landed = rows.filter(pc.equal(rows["_kafka_partition"], 1))
    assert sorted(landed["_kafka_offset"].to_pylist()) == sorted(set(
        landed["_kafka_offset"].to_pylist()))  # no offset twice
    assert DeltaTable(str(lake / feed.dataset)).transaction_version(
        f"lakestream/{feed.topic}/1") == 23
    dlq = DeltaTable(str(lake / "_dlq/transaction_stream")).to_pyarrow_dataset().to_table()
    assert dlq.num_rows == EXPECTED["rows"]["_dlq/transaction_stream"]["rows"] + 1


def test_a_derived_stream_still_drops_records_replayed_from_before_the_upgrade(
        lake: Path) -> None:
    upgrade(lake)
    feed = FEEDS["transaction_flattened"]
    sink = DeltaLakeSink(storage_of(lake), feed)
    assert sink.recover(feed.topic, 0) == 19
    assert DeltaTable(str(lake / feed.dataset)).transaction_version(
        f"lakestream/{SOURCE_PREFIX}{feed.topic}/0") == 19

    base = {"transaction_id": "t", "event_time": "2026-12-04T09:00:00Z", "amount": 1.0,
            "_source_partition": 0}
    replay, fresh = {**base, "_source_offset": 12}, {**base, "_source_offset": 22}
    last = {**base, "_source_offset": 19}  # the highest source offset the old lake holds
    sink.write(feed.topic, 0, [orjson.dumps(replay), orjson.dumps(last), orjson.dumps(fresh)],
               [b"U", b"U", b"U"], [19, 20, 21], [1796328000000] * 3)

    rows = DeltaTable(str(lake / feed.dataset)).to_pyarrow_dataset().to_table()
    assert rows.num_rows == EXPECTED["rows"][feed.dataset]["rows"] + 1
    assert 22 in rows["_source_offset"].to_pylist()


def test_a_table_continues_from_its_newest_version_and_offsets(lake: Path) -> None:
    upgrade(lake)
    feed = FEEDS["user_transaction_summary"]
    versions = VersionedTable(storage_of(lake), feed.dataset, feed.topic)

    loaded = versions.load()

    assert loaded is not None
    assert (loaded.number, loaded.offsets, loaded.rejected) == (5, {0: 15, 1: 14}, 1)
    assert loaded.rows.num_rows == 6
    assert current_delta_version(storage_of(lake), feed.dataset) == "v5"
    versions.commit(loaded.rows, 6, {0: 16}, {0: 15}, keep=3)
    assert delta_table_versions(storage_of(lake), feed.dataset) == ["v4", "v5", "v6"]
    meta = json.loads((lake / feed.dataset / "_metadata.json").read_text())
    assert meta["kafka_offsets"] == {"0": 16, "1": 15}  # the next offset, as before


@pytest.mark.integration
def test_ingest_after_the_upgrade_lands_only_what_the_legacy_lake_did_not_hold(
        lake: Path, workdir: Path) -> None:
    """A real Tansu broker: the topic holds the records the legacy lake landed (offsets
    0..21 of both partitions) and 5 more per partition; ``ingest --until-idle`` into the
    upgraded lake lands exactly the new ones."""
    assert lake == workdir / "lake"
    topic = unique_topic()
    rename_topic(lake / "streams/transaction_stream/_ledger", "transactions", topic)
    write_feed(workdir / "feeds", "transaction_stream", topic,
               required=["transaction_id", "event_time", "user.user_id"])
    api = Lakestream(settings_for(workdir))
    api.upgrade_lake()
    bootstrap = api.settings.kafka.bootstrap_servers
    assert bootstrap is not None  # the workdir's configuration names the session broker
    ensure_topics(bootstrap, [topic], 2)
    old = generated(44, seed=3)
    new = [event(f"new-{p}-{i}", "2026-12-05T08:00:00Z") for p in (0, 1) for i in range(5)]
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in (0, 1):
        for key, value in [*old[22 * p:22 * (p + 1)], *new[5 * p:5 * (p + 1)]]:
            producer.produce(topic, value, key, partition=p)
    assert producer.flush(30) == 0

    engine = api.ingest_engine(api.select_feeds(None, "transaction_stream"), until_idle=True,
                               idle_timeout_s=2.0)
    report = engine.run()

    table = DeltaTable(str(lake / "streams/transaction_stream"))
    rows = table.to_pyarrow_dataset().to_table(
        columns=["transaction_id", "_kafka_partition", "_kafka_offset"])
    landed = sorted(t for t in rows["transaction_id"].to_pylist() if t.startswith("new-"))
    assert report.written == 10
    assert rows.num_rows == EXPECTED["rows"]["streams/transaction_stream"]["rows"] + 10
    assert landed == sorted(f"new-{p}-{i}" for p in (0, 1) for i in range(5))
    assert [table.transaction_version(f"lakestream/{topic}/{p}") for p in (0, 1)] == [26, 26]


def rename_topic(ledger: Path, old: str, new: str) -> None:
    """The legacy ledger of a feed whose topic is ``new`` (each test has its own topic)."""
    (ledger / old).rename(ledger / new)
    for manifest in (ledger / new).rglob("*.json"):
        data = json.loads(manifest.read_text())
        data["topic"] = new
        manifest.write_text(json.dumps(data))


def test_dead_letters_the_processor_committed_but_had_not_moved_are_kept(
        tmp_path: Path) -> None:
    """The processor's state names a committed dead-letter file still in ``_staging/``."""
    lake = tmp_path / "lake"
    rejects = pa.table({"raw": [b"{x"], "reason": ["not JSON"],
                        "_kafka_offset": pa.array([7], pa.int64())})
    kept = lake / "_dlq/processor/year=2026/month=12/day=03/transactions-0-0-3.parquet"
    staged = lake / "_staging/processor/transactions-0/dlq-transactions-0-4-7.parquet"
    orphan = lake / "_staging/processor/transactions-0/dlq-transactions-0-8-9.parquet"
    for path in (kept, staged, orphan):
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rejects, path)
    (tmp_path / "data/state").mkdir(parents=True)
    AggregateState(tmp_path / "data/state/processor.sqlite").close()
    with sqlite3.connect(tmp_path / "data/state/processor.sqlite") as state:  # as before Delta
        state.execute("CREATE TABLE pending_files (staging TEXT PRIMARY KEY, final TEXT NOT NULL)")
        state.execute("INSERT INTO pending_files VALUES (?, ?)", (
            str(staged.relative_to(lake)),
            "_dlq/processor/year=2026/month=12/day=04/transactions-0-4-7.parquet"))
    state.close()
    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump({"lake": {"root": str(lake)},
                                      "data_dir": str(tmp_path / "data"),
                                      "feeds_dir": str(tmp_path / "feeds")}))

    Lakestream(load_settings(config, environ={}, cwd=tmp_path)).upgrade_lake()

    table = DeltaTable(str(lake / "_dlq/processor"))
    assert table.to_pyarrow_dataset().to_table().num_rows == 2
    paths = pa.table(table.get_add_actions(flatten=True))["path"].to_pylist()
    assert sorted(paths) == ["year=2026/month=12/day=03/transactions-0-0-3.parquet",
                             "year=2026/month=12/day=04/transactions-0-4-7.parquet"]
    assert not (lake / "_staging/processor").exists()


# -- datasets whose files disagree on types ---------------------------------------------------


def legacy_stream(root: Path, files: dict[str, pa.Table], last: int = 9) -> None:
    """A legacy stream dataset ``streams/x``: files in day folders, one ledger manifest."""
    for name, table in files.items():
        path = root / "streams/x/year=2026/month=12/day=4" / name  # not zero-padded, as some
        path.parent.mkdir(parents=True, exist_ok=True)          # hand-made lakes are
        pq.write_table(table, path)
    manifest = {"dataset": "streams/x", "topic": "x", "partition": 0, "start_offset": 0,
                "end_offset": last, "files": [], "totals": {}, "committed_at": ""}
    ledger = root / "streams/x/_ledger/x/0"
    ledger.mkdir(parents=True)
    (ledger / f"{last:020d}.json").write_text(json.dumps(manifest))


def test_files_with_widenable_types_are_rewritten_to_the_table_type(tmp_path: Path) -> None:
    legacy_stream(tmp_path, {
        "a.parquet": pa.table({"id": ["a", "b"], "qty": pa.array([1, 2], pa.int64())}),
        "b.parquet": pa.table({"id": ["c"], "qty": pa.array([2.5]), "note": ["new"]}),
    })

    done = upgrade(tmp_path)

    assert list(done[0].rewrite) == ["streams/x/year=2026/month=12/day=4/a.parquet"]
    table = DeltaTable(str(tmp_path / "streams/x"))
    assert table.transaction_version("lakestream/x/0") == 9
    rows = table.to_pyarrow_dataset().to_table().sort_by("id")
    assert rows["qty"].type == pa.float64()
    assert rows["qty"].to_pylist() == [1.0, 2.0, 2.5]
    assert rows["note"].to_pylist() == [None, None, "new"]
    assert set(rows["day"].to_pylist()) == {"04"}  # the value zero-padded, the file in place
    assert pq.read_schema(tmp_path / "streams/x/year=2026/month=12/day=4/a.parquet") \
        .field("qty").type == pa.float64()


def test_types_with_no_common_one_stop_the_upgrade_and_name_the_file(tmp_path: Path) -> None:
    legacy_stream(tmp_path, {
        "a.parquet": pa.table({"id": ["a"], "qty": pa.array([1], pa.int64())}),
        "b.parquet": pa.table({"id": ["b"], "qty": ["lots"]}),
    })
    before = tree(tmp_path)

    with pytest.raises(TerminalError, match=r"column 'qty' is int64 .* string in .*b\.parquet"):
        upgrade(tmp_path)

    assert tree(tmp_path) == before
    assert not (tmp_path / "streams/x/_delta_log").exists()


# -- the command ------------------------------------------------------------------------------


def test_the_command_prints_every_dataset_file_and_offset_of_a_dry_run(lake: Path,
                                                                       tmp_path: Path) -> None:
    from lakestream.cli.root import main

    config = tmp_path / "project.yaml"
    config.write_text(yaml.safe_dump({"lake": {"root": str(lake)},
                                      "data_dir": str(tmp_path / "data"),
                                      "feeds_dir": str(tmp_path / "feeds")}))
    before = tree(lake)
    out = subprocess.run([sys.executable, "-m", "lakestream", "--config", str(config), "lake",
                          "upgrade", "--dry-run", "--format", "json"], capture_output=True,
                         text=True, check=True).stdout

    report = json.loads(out)
    assert tree(lake) == before
    assert {d["dataset"] for d in report["datasets"]} == set(EXPECTED["rows"])
    stream = next(d for d in report["datasets"] if d["dataset"] == "streams/transaction_stream")
    assert stream["offsets"]["lakestream/transactions/1"] == 21
    assert sum(f["rows"] for f in stream["files"]) == 35
    assert main(["--config", str(config), "lake", "upgrade"]) == 0
    assert_upgraded(lake)
