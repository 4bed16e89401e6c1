"""Kafka → lake through a real Tansu broker, read back with DuckDB."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lakestream.api import Lakestream
from lakestream.lake.layout import STAGING
from tests.conftest import settings_for, unique_topic, write_feed
from tests.ingest.helpers import event, generated, lake_rows, send, transaction_ids
from tests.support.seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration


def ingest(workdir: Path, feed: str = "feed", **env: str) -> tuple[Lakestream, int]:
    api = Lakestream(settings_for(workdir, **env))
    engine = api.ingest_engine(api.select_feeds(None, feed), until_idle=True, idle_timeout_s=2.0)
    report = engine.run()
    return api, report.written


def test_every_event_lands_once_in_its_event_day(workdir: Path) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    messages = generated(3000, seed=1)
    send(_bootstrap(workdir), topic, messages)

    _, written = ingest(workdir)

    rows = lake_rows(
        workdir / "lake",
        columns="transaction_id, event_time, year, month, day, _kafka_partition, _kafka_offset",
    )
    assert written == 3000
    assert sorted(r[0] for r in rows) == sorted(transaction_ids(messages))
    for _tid, when, year, month, day, *_ in rows:
        # the Delta log keeps the partition values as the folders' zero-padded strings
        assert (f"{when.year:04d}", f"{when.month:02d}", f"{when.day:02d}") == (year, month, day)
    coords = Counter((r[5], r[6]) for r in rows)
    assert max(coords.values()) == 1
    days = {(r[2], r[3], r[4]) for r in rows}
    assert len(days) > 1, "the generator's late events should land in earlier days"


def test_rerun_adds_only_new_records_and_metadata_tracks_them(workdir: Path) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    first = generated(500, seed=2)
    send(_bootstrap(workdir), topic, first)
    ingest(workdir)
    _, again = ingest(workdir)
    assert again == 0
    second = generated(700, seed=3)
    send(_bootstrap(workdir), topic, second)
    _, written = ingest(workdir)

    assert written == 700
    ids = [r[0] for r in lake_rows(workdir / "lake", columns="transaction_id")]
    assert sorted(ids) == sorted(transaction_ids(first + second))
    meta = json.loads((workdir / "lake/streams/feed/_metadata.json").read_text())
    assert meta["records"] == 1200
    assert sum(p["records"] for p in meta["partitions"]) == 1200
    assert meta["source"] == {"type": "kafka", "topic": topic}
    assert {"name": "transaction_id", "type": "string"} in meta["schema"]
    assert sum(o["last"] - o["first"] + 1 for o in meta["kafka_offsets"].values()) == 1200
    assert not list((workdir / "lake" / STAGING).rglob("*.parquet"))


def test_bad_records_go_to_the_dlq_with_reason_and_coordinates(workdir: Path) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    good = [event(f"g{i}", "2025-01-15T10:00:00.000Z") for i in range(20)]
    bad = [
        (b"k", b"{not json"),
        (b"k", b"[1, 2]"),
        (b"k", b'"just a string"'),
        (
            b"k",
            json.dumps({"event_time": "2025-01-15T10:00:00Z", "user": {"user_id": "U"}}).encode(),
        ),
        (
            b"k",
            json.dumps(
                {"transaction_id": "t", "event_time": "noon", "user": {"user_id": "U"}}
            ).encode(),
        ),
        (
            b"k",
            json.dumps(
                {
                    "transaction_id": "t",
                    "event_time": "2025-01-15T10:00:00Z",
                    "amount": "ten",
                    "user": {"user_id": "U"},
                }
            ).encode(),
        ),
        (
            b"k",
            json.dumps(
                {"transaction_id": "t", "event_time": "2025-01-15T10:00:00Z", "user": "U1"}
            ).encode(),
        ),
        (b"k", b""),
        (b"\xff\xfe", b"\x00\x01binary"),
    ]
    send(_bootstrap(workdir), topic, good[:10] + bad + good[10:], partitions=1)

    _, written = ingest(workdir)

    assert written == 20
    dlq = lake_rows(
        workdir / "lake",
        "_dlq/feed",
        "reason, raw, _kafka_topic, _kafka_partition, _kafka_offset, _kafka_key",
    )
    assert len(dlq) == len(bad)
    by_offset = {r[4]: r for r in dlq}
    assert sorted(by_offset) == list(range(10, 10 + len(bad)))
    reasons = [by_offset[10 + i][0] for i in range(len(bad))]
    assert "JSON parse error" in reasons[0]
    assert "not a JSON object" in reasons[1] and "array" in reasons[1]
    assert "not a JSON object" in reasons[2]
    assert reasons[3] == "missing required field 'transaction_id'"
    assert "timestamp" in reasons[4] and "noon" in reasons[4]
    assert "amount" in reasons[5] or "float" in reasons[5] or "double" in reasons[5]
    assert "user" in reasons[6]
    assert reasons[7] == "empty message"
    assert by_offset[10][1] == b"{not json" and by_offset[10][2] == topic
    assert by_offset[18][5] is not None  # undecodable key kept (replaced characters)


def test_month_and_year_boundaries_and_late_events(workdir: Path) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    times = {
        "a": "2024-12-31T23:59:59.999Z",
        "b": "2025-01-01T00:00:00.000Z",
        "c": "2025-01-31T23:59:59.000Z",
        "d": "2025-02-01T00:00:00.001Z",
        "late": "2020-06-15T08:00:00.000Z",
        "offset": "2025-03-01T01:30:00+02:00",
    }
    send(_bootstrap(workdir), topic, [event(k, v) for k, v in times.items()])
    ingest(workdir)
    rows = {  # the log's partition values are the folders' strings: compare them as numbers
        r[0]: tuple(int(v) for v in r[1:])
        for r in lake_rows(workdir / "lake", columns="transaction_id, year, month, day")
    }
    assert rows == {
        "a": (2024, 12, 31),
        "b": (2025, 1, 1),
        "c": (2025, 1, 31),
        "d": (2025, 2, 1),
        "late": (2020, 6, 15),
        "offset": (2025, 2, 28),
    }
    assert (workdir / "lake/streams/feed/year=2024/month=12/day=31").is_dir()


def test_a_new_optional_field_becomes_a_column(workdir: Path) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    send(_bootstrap(workdir), topic, [event("old", "2025-01-15T10:00:00Z")])
    ingest(workdir)
    send(
        _bootstrap(workdir),
        topic,
        [
            event(
                "new",
                "2025-01-15T11:00:00Z",
                promo_code="WINTER",
                device={"ip_address": "1.2.3.4", "os": "linux"},
            )
        ],
    )
    ingest(workdir)

    rows = dict(lake_rows(workdir / "lake", columns="transaction_id, promo_code"))
    assert rows == {"old": None, "new": "WINTER"}
    os_col = dict(lake_rows(workdir / "lake", columns="transaction_id, device.os"))
    assert os_col == {"old": None, "new": "linux"}
    api = Lakestream(settings_for(workdir))
    _, out = api.query("SELECT transaction_id, promo_code FROM feed ORDER BY 1")
    assert out == [("new", "WINTER"), ("old", None)]


def test_s3_lake_on_seaweedfs(workdir: Path, seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    from tests.conftest import s3_env

    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    messages = generated(1500, seed=5)
    send(_bootstrap(workdir), topic, messages)
    env = {**s3_env(seaweedfs), "LAKESTREAM_LAKE_ROOT": f"s3://{s3_bucket}/lake"}

    api, written = ingest(workdir, **env)

    assert written == 1500
    _, rows = api.query("SELECT count(*), count(DISTINCT transaction_id), min(year) FROM feed")
    assert rows == [(1500, 1500, 2025)]
    _, day = api.query("SELECT count(*) FROM feed WHERE year = 2025 AND month = 3 AND day = 10")
    assert 0 < day[0][0] < 1500
    files = api.storage.list_files("streams/feed")
    assert any(f.path.endswith("_metadata.json") for f in files)
    assert not api.storage.list_files("_staging")
    _, again = ingest(workdir, **env)
    assert again == 0


def _bootstrap(workdir: Path) -> str:
    servers = settings_for(workdir).kafka.bootstrap_servers
    assert servers
    return servers
