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

from lakestream.derive.shipped import TABLES
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
    assert rows is not None
    keys, _ = TABLES[table]
    out = {}
    for row in rows.fetchall():
        record = dict(zip(rows.columns, row, strict=True))
        out[tuple(record.pop(k) for k in keys)] = record
    return out


def topic_records(workdir: Path, topic: str) -> list[tuple[int, int, bytes]]:
    """Every record of ``topic`` as (partition, offset, value), in each partition's order."""
    from confluent_kafka import Consumer, TopicPartition

    from lakestream.kafka.client import topic_partitions

    servers = bootstrap(workdir)
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, -2) for p in topic_partitions(servers, topic)])
    records = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3:
        for m in consumer.consume(5000, 0.5):
            if m.error() is None:
                partition, offset, value = m.partition(), m.offset(), m.value()
                assert partition is not None and offset is not None and value is not None
                records.append((partition, offset, value))
                idle_since = time.monotonic()
    consumer.close()
    return records


def topic_table(workdir: Path, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The latest value per key of the table's changelog topic."""
    keys = TABLES[table][0]
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _, _, raw in topic_records(workdir, table):
        value = json.loads(raw)
        latest[tuple(value[k] for k in keys)] = value
    return {k: {c: v for c, v in row.items() if c not in keys} for k, row in latest.items()}


def assert_tables_exact(workdir: Path, values: list[bytes]) -> None:
    """Lake tables and table topics equal the recomputation from the input topic."""
    source = topic_records(workdir, "transactions")
    assert sorted(v for _, _, v in source) == sorted(values), "the input is what was sent"
    expected = expected_tables([v for _, _, v in source], [(p, o) for p, o, _ in source])
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
    assert rel is not None
    assert "card_last4" not in rel.columns and "user_email" not in rel.columns
    cells = {str(v) for row in rel.fetchall() for v in row}
    assert not cells & secrets, "an identifier leaked into the anonymized stream"
    users = duckdb.sql(f"SELECT user_id FROM read_parquet('{pipeline}/lake/"
                       "streams/transaction_stream_anonymized/**/*.parquet')")
    assert users is not None
    pseudonyms = {r[0] for r in users.fetchall()}
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
    bad: list[tuple[bytes | None, bytes]] = [
        (b"x", b"{oops"),
        (b"x", json.dumps({**json.loads(second[0][1]), "amount": -5}).encode()),
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


def purchase(template: bytes, event_time: str, product: tuple[str, str, str],
             method: tuple[str, str]) -> bytes:
    """A completed purchase made from a generated event, with the given time and attributes."""
    event = json.loads(template)
    event.update(transaction_type="purchase", status="completed", event_time=event_time)
    event["transaction_id"] = f"{event_time}-{product[1]}-{method[1]}"
    event["product"].update(zip(("product_id", "name", "category"), product, strict=True))
    event["payment_method"].update(payment_method_id=method[0], name=method[1], is_active=True)
    return json.dumps(event).encode()


def send_to(workdir: Path, records: list[tuple[int, bytes]]) -> None:
    """Produce each value to the given partition of ``transactions``, acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap(workdir), "enable.idempotence": True})
    for partition, value in records:
        producer.produce("transactions", value, key=b"U1", partition=partition)
    assert producer.flush(30) == 0


def test_tables_show_the_attributes_of_each_keys_latest_event(pipeline: Path) -> None:
    template = generated(1, seed=26)[0][1]
    zeta, alpha = ("P0205", "Zeta Lamp", "home"), ("P0205", "Alpha Lamp", "lighting")
    old, new = ("PM90", "zz_old_wallet"), ("PM90", "aa_new_wallet")
    send(bootstrap(pipeline), "transactions", [])
    first = [(1, purchase(template, "2025-03-10T09:00:00.000Z", zeta, old)),
             (3, purchase(template, "2025-03-10T08:00:00.000Z", zeta, old))]
    send_to(pipeline, first)
    process_and_ingest(pipeline)
    assert lake_table(pipeline, "product_purchase_counts")[("P0205",)]["product_name"] == \
        "Zeta Lamp"

    # renamed later in event time, in other partitions; then late events with the old
    # names arrive after them, in the same partitions and in others
    second = [(0, purchase(template, "2025-03-10T12:00:00.000Z", alpha, new)),
              (2, purchase(template, "2025-03-10T11:00:00.000Z", alpha, new)),
              (0, purchase(template, "2025-03-10T10:00:00.000Z", zeta, old)),
              (2, purchase(template, "2025-03-10T07:00:00.000Z", zeta, old)),
              (1, purchase(template, "2025-03-10T09:30:00.000Z", zeta, old))]
    send_to(pipeline, second)
    process_and_ingest(pipeline)

    for rows in (lake_table(pipeline, "product_purchase_counts"),
                 topic_table(pipeline, "product_purchase_counts")):
        product = rows[("P0205",)]
        assert (product["product_name"], product["product_category"],
                product["purchase_count"]) == ("Alpha Lamp", "lighting", 7)
    for rows in (lake_table(pipeline, "payment_method_totals"),
                 topic_table(pipeline, "payment_method_totals")):
        assert (rows[("PM90",)]["payment_method_name"],
                rows[("PM90",)]["transaction_count"]) == ("aa_new_wallet", 7)
    assert_tables_exact(pipeline, [v for _, v in first + second])
