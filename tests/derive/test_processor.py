"""`lakestream process` against a real broker, checked against an independent recomputation."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from lakestream.derive.sql import TABLES
from lakestream.kafka.producer import produce
from tests.conftest import subprocess_env
from tests.derive.conftest import ANON_KEY
from tests.derive.expected import expected_tables
from tests.ingest.helpers import generated, lake_rows, send

pytestmark = pytest.mark.integration


def cli(workdir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(LAKESTREAM_ANON_KEY=ANON_KEY)
    return subprocess.run([sys.executable, "-m", "lakestream", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


def bootstrap(workdir: Path) -> str:
    return str(yaml.safe_load((workdir / "lakestream.yaml").read_text())["kafka"]
               ["bootstrap_servers"])


def process_and_ingest(workdir: Path) -> None:
    done = cli(workdir, "process", "--until-idle", "--idle-timeout", "2")
    assert done.returncode == 0, done.stderr
    landed = cli(workdir, "ingest", "--pipeline", "transactions", "--until-idle",
                 "--idle-timeout", "2")
    assert landed.returncode == 0, landed.stderr


def lake_table(workdir: Path, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's current version, read straight from its files."""
    folder = workdir / "lake/tables" / table
    current = json.loads((folder / "_metadata.json").read_text())["current_version"]
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{folder}/version={current}/*.parquet', "
                      "hive_partitioning=false)")
    keys, _ = TABLES[table]
    out = {}
    for row in rows.fetchall():
        record = dict(zip(rows.columns, row, strict=True))
        out[tuple(record.pop(k) for k in keys)] = record
    return out


def topic_table(workdir: Path, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The latest value per key of the table's changelog topic."""
    from confluent_kafka import Consumer, TopicPartition

    from lakestream.kafka.client import topic_partitions

    servers = bootstrap(workdir)
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(table, p, -2) for p in topic_partitions(servers, table)])
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3:
        for m in consumer.consume(5000, 0.5):
            if m.error() is None:
                value = json.loads(m.value())
                latest[tuple(value[k] for k in TABLES[table][0])] = value
                idle_since = time.monotonic()
    consumer.close()
    keys = TABLES[table][0]
    return {k: {c: v for c, v in row.items() if c not in keys} for k, row in latest.items()}


def assert_tables_exact(workdir: Path, values: list[bytes]) -> None:
    expected = expected_tables(values)
    for table, rows in expected.items():
        assert lake_table(workdir, table) == rows, f"lake table {table}"
        assert topic_table(workdir, table) == rows, f"topic {table}"


def test_aggregates_are_exact_in_the_lake_and_in_the_table_topics(pipeline: Path) -> None:
    messages = generated(4000, seed=21)
    send(bootstrap(pipeline), "transactions", messages)

    process_and_ingest(pipeline)

    values = [v for _, v in messages]
    assert_tables_exact(pipeline, values)
    flat = lake_rows(pipeline / "lake", "streams/transaction_flattened",
                     "transaction_id, amount_usd, user_email")
    assert len(flat) == 4000 and len({r[0] for r in flat}) == 4000
    blacklisted = lake_rows(pipeline / "lake", "streams/transaction_stream_blacklisted",
                            "user_id, user_country, ip_address, card_last4, blacklist_reason")
    assert all(r[4] for r in blacklisted)


def test_aggregates_stay_exact_when_process_is_killed_three_times(pipeline: Path) -> None:
    rng = random.Random(3)
    messages = generated(9000, seed=22)
    producer = threading.Thread(target=produce, args=(
        {"bootstrap.servers": bootstrap(pipeline), "linger.ms": 5}, "transactions", messages,
        1500.0))
    send(bootstrap(pipeline), "transactions", [])
    producer.start()
    env = subprocess_env(LAKESTREAM_ANON_KEY=ANON_KEY)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "lakestream", "process"], cwd=pipeline,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.5, 4.5))
        proc.kill()
        proc.wait()
    producer.join()

    process_and_ingest(pipeline)

    assert_tables_exact(pipeline, [v for _, v in messages])
    ids = Counter(r[0] for r in lake_rows(pipeline / "lake", "streams/transaction_flattened",
                                          "transaction_id"))
    assert sum(ids.values()) == 9000 and max(ids.values()) == 1, "each event once in the lake"


def test_anonymized_stream_holds_no_direct_identifier(pipeline: Path) -> None:
    messages = generated(1500, seed=23)
    send(bootstrap(pipeline), "transactions", messages)
    process_and_ingest(pipeline)

    events = [json.loads(v) for _, v in messages]
    secrets = {e["user"][k] for e in events for k in ("user_id", "name", "email")}
    secrets |= {e["device"]["ip_address"] for e in events}
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{pipeline}/lake/streams/"
                     "transaction_stream_anonymized/**/*.parquet')")
    assert "card_last4" not in rel.columns and "user_email" not in rel.columns
    cells = {str(v) for row in rel.fetchall() for v in row}
    assert not cells & secrets, "an identifier leaked into the anonymized stream"
    pseudonyms = {r[0] for r in duckdb.sql(f"SELECT user_id FROM read_parquet('{pipeline}/lake/"
                                           "streams/transaction_stream_anonymized/**/*.parquet')")
                  .fetchall()}
    assert len(pseudonyms) == len({e["user"]["user_id"] for e in events})
    assert all(len(p) == 64 for p in pseudonyms)


def test_blacklist_updates_apply_to_new_events_and_bad_events_go_to_the_dlq(
        pipeline: Path) -> None:
    first = generated(800, seed=24)
    send(bootstrap(pipeline), "transactions", first)
    assert cli(pipeline, "process", "--until-idle", "--idle-timeout", "2").returncode == 0
    changed = cli(pipeline, "reference", "blacklist", "add", "countries", "FR")
    assert changed.returncode == 0 and '"FR"' in changed.stdout
    second = generated(800, seed=25)
    bad = [(b"x", b"{oops"), (b"x", json.dumps({**json.loads(second[0][1]), "amount": -5})
                              .encode()),
           (b"x", json.dumps({**json.loads(second[1][1]), "currency": "XYZ"}).encode())]
    send(bootstrap(pipeline), "transactions", second + bad)
    process_and_ingest(pipeline)

    rows = lake_rows(pipeline / "lake", "streams/transaction_stream_blacklisted",
                     "transaction_id, blacklist_reason")
    flagged_fr = {tid for tid, reason in rows if "country FR" in reason}
    second_fr = {json.loads(v)["transaction_id"] for _, v in second
                 if json.loads(v)["user"]["country"] == "FR"}
    first_fr = {json.loads(v)["transaction_id"] for _, v in first
                if json.loads(v)["user"]["country"] == "FR"}
    assert flagged_fr == second_fr and second_fr and not flagged_fr & first_fr
    dlq = lake_rows(pipeline / "lake", "_dlq/processor", "reason")
    reasons = sorted(r[0] for r in dlq)
    assert len(reasons) == 3
    assert any("JSON parse error" in r for r in reasons)
    assert "amount must be > 0" in reasons and "unknown currency XYZ" in reasons


def test_process_without_an_anonymization_key_is_a_clear_error(pipeline: Path) -> None:
    env = subprocess_env()
    done = subprocess.run([sys.executable, "-m", "lakestream", "process", "--until-idle"],
                          cwd=pipeline, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "LAKESTREAM_ANON_KEY" in done.stderr and "Traceback" not in done.stderr
