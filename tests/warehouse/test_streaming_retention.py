"""A `--sink warehouse` group started after the retention still builds the whole `live` snapshot.

The table topics are compacted: Kafka's log cleaner keeps at least the latest
record of every message key of each partition, and nothing else is promised.
The embedded broker (Tansu 0.6) records ``cleanup.policy`` but neither compacts
nor deletes by retention, and DeleteRecords is not implemented
(docs/operations.md), so no broker here can produce "after the retention". The
test therefore builds that state itself, on a second broker: each table topic
holds only the latest record per message key of each partition (the least the
cleaner leaves), and the `transaction_flattened` stream only its events after the
retention cut. A new warehouse group then loads from there, and its `live` facts
must equal the aggregates of *every* event, including the expired ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from pydantic import SecretStr

from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.derive.shipped import TABLES
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import cleanup_policies, ensure_configured_topics, topic_partitions
from lakestream.warehouse.streaming import FLATTENED
from tests.derive.expected import expected_tables
from tests.ingest.helpers import generated, send
from tests.warehouse.checks import (
    FACT_COLUMNS,
    assert_facts_equal,
    assert_foreign_keys_hold,
    fact_rows,
)

pytestmark = pytest.mark.integration

Record = tuple[int, int, bytes, bytes]  # partition, offset, key, value
TOPICS = (*TABLES, FLATTENED)


def _api(folder: Path, bootstrap: str, warehouse_url: str | None = None) -> Lakestream:
    config: dict[str, Any] = {
        "data_dir": str(folder / "data"),
        "kafka": {"bootstrap_servers": bootstrap, "session_timeout_ms": 2000, "partitions": 4},
        "lake": {"root": str(folder / "lake"), "flush_interval_s": 0.3,
                 "max_batch_records": 300},
    }
    if warehouse_url:
        config["warehouse_url"] = warehouse_url
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lakestream.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(folder / "lakestream.yaml", environ={}, cwd=folder)
    return Lakestream(settings.model_copy(update={"anon_key": SecretStr("k")}))


def _records(bootstrap: str, topics: tuple[str, ...]) -> dict[str, list[Record]]:
    """Every record of each topic, in each partition's order."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "retention-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, -2) for t in topics
                     for p in topic_partitions(bootstrap, t)])
    records: dict[str, list[Record]] = {t: [] for t in topics}
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3:
        message: Any
        for message in consumer.consume(5000, 0.5):
            if message.error() is None:
                records[message.topic()].append((message.partition(), message.offset(),
                                                 message.key(), message.value()))
                idle_since = time.monotonic()
    consumer.close()
    return {t: sorted(rs, key=lambda r: (r[0], r[1])) for t, rs in records.items()}


def _ends(records: list[Record]) -> dict[int, int]:
    """The next offset of each partition."""
    ends: dict[int, int] = {}
    for partition, offset, _, _ in records:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def _compacted(records: list[Record]) -> list[Record]:
    """What the log cleaner leaves at least: the last record of each key in each partition."""
    last = {(p, key): offset for p, offset, key, _ in records}
    return [r for r in records if last[(r[0], r[2])] == r[1]]


def _assert_keyed_by_the_table_key(table: str, records: list[Record]) -> None:
    """The message key is the table key (docs/ksqldb.md), one partition per key."""
    columns = TABLES[table][0]
    partition_of: dict[tuple[Any, ...], int] = {}
    for partition, _, key, raw in records:
        value = json.loads(raw)
        logical = tuple(value[c] for c in columns)
        decoded = key.decode() if len(columns) == 1 else tuple(json.loads(key)[c] for c in columns)
        assert decoded == (logical[0] if len(columns) == 1 else logical), (table, key, value)
        assert partition_of.setdefault(logical, partition) == partition, (table, logical)


def _produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors: list[str] = []
    for partition, _, key, value in records:
        producer.produce(topic, value, key, partition=partition,
                         on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
    assert producer.flush(30) == 0 and not errors, errors


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_warehouse_group_started_after_the_retention_builds_the_complete_live_snapshot(
        tmp_path: Path, database_url: str) -> None:
    waves = [generated(1500, seed=41), generated(400, seed=42)]
    with EmbeddedBroker(tmp_path / "broker-before") as before:
        api = _api(tmp_path / "before", before.bootstrap_servers)
        first_wave_ends: dict[str, dict[int, int]] = {}  # where the retention will cut
        for wave in waves:
            send(before.bootstrap_servers, "transactions", wave)
            api.processor(until_idle=True, idle_timeout_s=2.0).run()
            first_wave_ends = first_wave_ends or {
                t: _ends(rs) for t, rs in _records(before.bootstrap_servers, TOPICS).items()}
        policies = cleanup_policies(before.bootstrap_servers, TABLES)
        assert policies == dict.fromkeys(TABLES, "compact"), "the processor's table topics"
        topics = _records(before.bootstrap_servers, TOPICS)

    retained: dict[str, list[Record]] = {}
    for table in TABLES:
        _assert_keyed_by_the_table_key(table, topics[table])
        retained[table] = _compacted(topics[table])
        assert len(retained[table]) < len(topics[table]), f"{table}: values were superseded"
    # The stream (and a table topic on cleanup.policy=delete) keeps only what follows the cut.
    cut = {t: [r for r in topics[t] if r[1] >= first_wave_ends[t].get(r[0], 0)]
           for t in TOPICS}
    assert 0 < len(cut[FLATTENED]) < len(topics[FLATTENED])
    retained[FLATTENED] = cut[FLATTENED]
    values = [v for wave in waves for _, v in wave]
    expected = expected_tables(values)
    lost = {t: len(expected[t]) - len({r[2] for r in cut[t]}) for t in TABLES}
    assert any(lost.values()), "a delete-policy table topic would have lost keys at this cut"

    with EmbeddedBroker(tmp_path / "broker-after") as after:
        api = _api(tmp_path / "after", after.bootstrap_servers, database_url)
        ensure_configured_topics(api.settings, after.bootstrap_servers, [FLATTENED],
                                 tables=TABLES)
        for topic, records in retained.items():
            _produce(after.bootstrap_servers, topic, records)
        report = api.warehouse_loader(group_id="started-after-retention", until_idle=True,
                                      idle_timeout_s=2.0).run()
        assert report.facts == sum(len(retained[t]) for t in TABLES)

    engine = sa.create_engine(database_url)
    try:
        for table, rows in expected.items():
            _, _key, columns = FACT_COLUMNS[table]
            want = {k: tuple(r[c] for c in columns) for k, r in rows.items()}
            assert_facts_equal(fact_rows(engine, table, "live"), want)
        assert_foreign_keys_hold(engine)
        with engine.connect() as conn:
            inferred = conn.execute(sa.text(
                "SELECT count(*) FROM dim_users WHERE last_event_time IS NULL")).scalar_one()
    finally:
        engine.dispose()
    # Dimension attributes come from the stream: users seen only before the cut are
    # inferred members (key only) until they show up again (docs/warehouse.md).
    assert inferred > 0
