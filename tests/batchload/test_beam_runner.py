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
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestream.config import S3Settings
from lakestream.lake.delta import DeltaDataset, app_id
from lakestream.lake.storage import open_storage
from tests.batchload.helpers import api_for, bootstrap
from tests.conftest import subprocess_env, unique_topic, write_feed
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


DATASETS = ("_dlq/feed", "_dlq/strict", "streams/feed", "streams/strict")


def _datasets(lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every Delta table's rows as its log has them (dead letters without their rejection
    time), sorted by value."""
    storage = open_storage(str(lake), S3Settings())
    assert not list((lake / "_staging").rglob("*.parquet")), "files left in staging"
    rows = {}
    for rel in DATASETS:
        table = DeltaDataset(storage, rel).table()
        if table is None:
            continue
        data = table.to_pyarrow_dataset().to_table()
        names = sorted(c for c in data.column_names if c != "rejected_at")
        rows[rel] = sorted(tuple(json.dumps(r[c], default=str, sort_keys=True) for c in names)
                            for r in data.to_pylist())
    return rows


def _offsets(lake: Path, topic: str) -> dict[str, dict[str, int | None]]:
    """The Kafka offsets each table's log says it landed, per partition's application id
    (not how it was batched)."""
    storage = open_storage(str(lake), S3Settings())
    return {rel: DeltaDataset(storage, rel).transaction_versions(
                [app_id(topic, p) for p in range(4)]) for rel in DATASETS}


def _versions(lake: Path) -> dict[str, int]:
    storage = open_storage(str(lake), S3Settings())
    return {rel: DeltaDataset(storage, rel).table().version() for rel in DATASETS}


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
    assert sorted(datasets) == list(DATASETS)
    assert datasets == _datasets(builtin_lake)
    assert len(datasets["streams/feed"]) == 3001 and len(datasets["_dlq/feed"]) == 2
    assert 0 < len(datasets["streams/strict"]) < 3001
    offsets = _offsets(beam_lake, topic)
    assert offsets == _offsets(builtin_lake, topic)
    assert sum(v + 1 for v in offsets["streams/feed"].values() if v is not None) == len(messages)
    log = json.loads((beam_lake / "streams/feed/_exports.json").read_text())["last_export"]
    assert (log["mode"], log["records"]) == ("append", 3001)
    assert "feed: append from kafka, 3,001 records" in out

    send(bootstrap(workdir), topic, generated(400, seed=22))  # from the log's next offsets
    assert "feed: append from kafka, 400 records" in _beam_export(beam_bin, beam)
    api_for(workdir).batch.export(everything=True, pipeline="test")
    datasets = _datasets(beam_lake)
    assert len(datasets["streams/feed"]) == 3401
    assert datasets == _datasets(builtin_lake)
    assert _offsets(beam_lake, topic) == _offsets(builtin_lake, topic)

    versions = _versions(beam_lake)
    again = _beam_export(beam_bin, beam)
    assert "feed: append from kafka, 0 records" in again
    assert _versions(beam_lake) == versions  # nothing committed
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
