"""``lakestream export --all --runner beam`` under a real Apache Beam (DirectRunner).

Beam pins pyarrow < 26 and an older protobuf, so it never goes into ``.venv``:
the session creates ``.venv-beam/`` (reused when present; 30-40 s from the
package mirror) with the project and its ``beam`` extra, and runs that venv's
``lakestream`` against the session broker. The lake it writes must equal what the
built-in export (this venv) writes from the same events.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from lakestream.config import S3Settings
from lakestream.lake.delta import DeltaDataset, app_id
from lakestream.lake.ledger import OffsetLedger
from lakestream.lake.storage import open_storage
from tests.conftest import subprocess_env, unique_topic, write_feed
from tests.export.helpers import api_for, bootstrap, make_delta
from tests.ingest.helpers import event, generated, send

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-beam"
BIN = VENV / "bin"
FEEDS = ("feed", "strict")  # two datasets of one topic, with different required fields


@pytest.fixture(scope="session")
def beam_bin() -> Path:
    """``.venv-beam/bin`` with this project and its ``beam`` extra installed."""
    stamp = VENV / ".lakestream-stamp"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and (BIN / "lakestream").exists():
        return BIN
    started = time.monotonic()
    if not (BIN / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    for args in (["--upgrade", "pip"], ["-e", f"{ROOT}[beam]"]):
        subprocess.run([str(BIN / "python"), "-m", "pip", "install", "--quiet", *args],
                       check=True, timeout=900)
    stamp.write_text(wanted)
    print(f"built {VENV} in {time.monotonic() - started:.0f}s")
    return BIN


def _project(root: Path, source: Path, lake: str) -> Path:
    """A project folder like ``source`` (same broker, same feeds) with its own lake."""
    config = yaml.safe_load((source / "lakestream.yaml").read_text())
    config.update(data_dir=str(root / "data"), feeds_dir=str(source / "feeds"))
    config["lake"]["root"] = str(root / lake)
    root.mkdir(exist_ok=True)
    (root / "lakestream.yaml").write_text(yaml.safe_dump(config))
    return root


def _beam_export(beam_bin: Path, project: Path, *options: str) -> str:
    run = subprocess.run(
        [str(beam_bin / "lakestream"), "--config", str(project / "lakestream.yaml"), "export",
         "--all", "--pipeline", "test", "--runner", "beam", "--idle-timeout", "1", *options],
        cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def _datasets(lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every dataset's rows (dead letters without their rejection time), sorted."""
    folders: dict[str, Path] = {}
    for file in lake.rglob("*.parquet"):
        rel = file.relative_to(lake)
        assert rel.parts[0] != "_staging", f"{rel} left in staging"
        folders[str(rel).split("/year=")[0]] = lake / str(rel).split("/year=")[0]
    rows = {}
    for name, folder in sorted(folders.items()):
        rows[name] = duckdb.sql(
            "SELECT COLUMNS(lambda c: c <> 'rejected_at') FROM read_parquet("
            f"'{folder}/**/*.parquet', union_by_name = true, hive_partitioning = true) "
            "ORDER BY ALL").fetchall()
    return rows


def _ledgers(lake: Path) -> dict[str, dict[str, Any]]:
    """What each feed's ledger says it holds, per partition (not how it was batched)."""
    storage = open_storage(str(lake), S3Settings())
    held: dict[str, dict[str, Any]] = defaultdict(dict)
    for feed in FEEDS:
        for m in OffsetLedger(storage, f"streams/{feed}").all_latest():
            t = m.totals
            held[feed][f"{m.topic}:{m.partition}"] = (t.first_offset, m.end_offset, t.records,
                                                     t.rejected, t.dates)
    return dict(held)


def _files(lake: Path) -> dict[str, int]:
    return {str(p.relative_to(lake)): p.stat().st_size for p in lake.rglob("*")
            if p.is_file() and "_exports.json" not in p.name and "_metadata" not in p.name}


def test_the_beam_runner_gives_the_lake_of_the_builtin_export_and_appends_nothing_twice(
    beam_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    write_feed(workdir / "feeds", "strict", topic,
               required=["transaction_id", "event_time", "user.user_id", "card_last4"])
    messages = [*generated(3000, seed=21), (b"k", b"{not json"),
                event("t-late", "2025-03-01T00:00:00Z"), (None, b'{"amount": 1}')]
    send(bootstrap(workdir), topic, messages)

    beam = _project(tmp_path / "beam", workdir, "lake")
    beam_lake, builtin_lake = beam / "lake", workdir / "lake"
    started = time.monotonic()
    out = _beam_export(beam_bin, beam, "--beam-option", "direct_running_mode=multi_threading",
                       "--beam-option", "direct_num_workers=2")
    print(f"beam export: {time.monotonic() - started:.1f}s")
    api_for(workdir).batch.export(everything=True, pipeline="test")  # built-in, into workdir/lake

    datasets = _datasets(beam_lake)
    assert sorted(datasets) == ["_dlq/feed", "_dlq/strict", "streams/feed", "streams/strict"]
    assert datasets == _datasets(builtin_lake)
    assert len(datasets["streams/feed"]) == 3001 and len(datasets["_dlq/feed"]) == 2
    assert 0 < len(datasets["streams/strict"]) < 3001
    assert _ledgers(beam_lake) == _ledgers(builtin_lake)
    log = json.loads((beam_lake / "streams/feed/_exports.json").read_text())["last_export"]
    assert (log["mode"], log["records"]) == ("append", 3001)
    assert "feed: append from kafka, 3,001 records" in out

    send(bootstrap(workdir), topic, generated(400, seed=22))  # from the ledger's next offsets
    assert "feed: append from kafka, 400 records" in _beam_export(beam_bin, beam)
    api_for(workdir).batch.export(everything=True, pipeline="test")
    datasets = _datasets(beam_lake)
    assert len(datasets["streams/feed"]) == 3401
    assert datasets == _datasets(builtin_lake)
    assert _ledgers(beam_lake) == _ledgers(builtin_lake)

    files = _files(beam_lake)
    again = _beam_export(beam_bin, beam)
    assert "feed: append from kafka, 0 records" in again
    assert _files(beam_lake) == files
    assert _datasets(beam_lake) == datasets


def test_the_beam_runner_lands_every_record_once_in_delta_datasets(
    beam_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    messages = [*generated(1500, seed=23), (b"k", b"{not json")]
    send(bootstrap(workdir), topic, messages)
    beam = _project(tmp_path / "beam", workdir, "lake")
    storage = open_storage(str(beam / "lake"), S3Settings())
    make_delta(storage, "streams/feed", "_dlq/feed")

    out = _beam_export(beam_bin, beam, "--beam-option", "direct_running_mode=multi_threading",
                       "--beam-option", "direct_num_workers=2")

    assert "feed: append from kafka, 1,500 records" in out
    rows = _delta_coordinates(storage, "streams/feed")
    dead = _delta_coordinates(storage, "_dlq/feed")
    assert len(rows) == 1500 and len(dead) == 1
    assert sorted(rows + dead) == sorted(set(rows + dead))
    data = DeltaDataset(storage, "streams/feed")
    landed = data.transaction_versions(app_id(topic, p) for p in range(4))
    assert sum(v + 1 for v in landed.values() if v is not None) == len(messages)
    version = data.table().version()

    assert "feed: append from kafka, 0 records" in _beam_export(beam_bin, beam)
    assert data.table().version() == version  # a second run commits nothing
    send(bootstrap(workdir), topic, generated(300, seed=24))
    assert "feed: append from kafka, 300 records" in _beam_export(beam_bin, beam)
    rows = _delta_coordinates(storage, "streams/feed")
    assert len(rows) == 1800 == len(set(rows))
    meta = json.loads((beam / "lake/streams/feed/_metadata.json").read_text())
    assert meta["format"] == "delta" and meta["records"] == 1800


def _delta_coordinates(storage: Any, rel: str) -> list[tuple[int, int]]:
    table = DeltaDataset(storage, rel).table()
    data = table.to_pyarrow_dataset().to_table(columns=["_kafka_partition", "_kafka_offset"])
    return list(zip(data.column(0).to_pylist(), data.column(1).to_pylist(), strict=True))
