"""Scenario 2: the broker stops and starts again (same port) while `ingest` runs.

Tansu runs on its ``s3://`` storage engine over a private SeaweedFS, so the
topic and the committed offsets survive the restarts (SPEC §2). One restart is
a clean stop (SIGTERM), one a crash (SIGKILL). Events keep being produced the
whole time. The very same `process` and `ingest` processes must reconnect each
time, go on committing, and end with every record of the topic in the lake
exactly once, in the raw stream and in the derived one.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from lakestream.derive.processor import STREAMS
from lakestream.derive.shipped import TABLES
from lakestream.derive.state import AggregateState
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from tests.faults.chaos import (
    Children,
    SteadyProducer,
    commits,
    parquet_rows,
    settle,
    topic_records,
    wait_until,
    write_config,
)
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.support.seaweedfs import SeaweedFS

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

@pytest.fixture
def durable_broker(tmp_path: Path, own_seaweedfs: SeaweedFS) -> Iterator[EmbeddedBroker]:
    """Tansu on ``s3://tansu/`` (bucket created first), restartable on the same port."""
    own_seaweedfs.create_bucket("tansu")
    env = {"AWS_ENDPOINT": own_seaweedfs.endpoint_url,
           "AWS_ACCESS_KEY_ID": own_seaweedfs.access_key,
           "AWS_SECRET_ACCESS_KEY": own_seaweedfs.secret_key,
           "AWS_DEFAULT_REGION": own_seaweedfs.region, "AWS_ALLOW_HTTP": "true"}
    broker = EmbeddedBroker(tmp_path / "broker", storage_engine="s3://tansu/", env=env)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _crash(broker: EmbeddedBroker) -> None:
    """SIGKILL the broker by its PID; its port and storage are kept for the restart."""
    assert broker.process is not None
    broker.process.kill()
    broker.process.wait(15)
    broker.process = None


def test_consumers_reconnect_after_broker_restarts_and_lose_nothing(
        tmp_path: Path, durable_broker: EmbeddedBroker, children: Children,
        counts: FaultCounts) -> None:
    rng = random.Random(f"{SEED}-broker")
    bootstrap = durable_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap})
    ensure_topics(bootstrap, ["transactions", *STREAMS, *TABLES], 4)
    lake = tmp_path / "lake"
    base = ["--config", str(config)]

    def committed() -> tuple[frozenset[str], ...]:
        return commits(lake, "streams/transaction_stream", "streams/transaction_flattened")

    def both_committed_since(before: tuple[frozenset[str], ...]) -> bool:
        return all(x != y for x, y in zip(committed(), before, strict=True))

    # not idempotent: Tansu's s3 engine can lose acknowledged idempotent sends across a
    # restart (see README, "Fault tolerance"); a plain retry at worst duplicates a record
    producer = SteadyProducer(bootstrap, "transactions", rate=250, seed=SEED + 2,
                              idempotent=False)
    producer.start()
    process = children.spawn("process", [*base, "process"], tmp_path,
                             LAKESTREAM_ANON_KEY=ANON_KEY)
    ingest = children.spawn("ingest", [*base, "ingest", "--pipeline", "transactions",
                                       "--group", "faults-broker"], tmp_path)
    empty = committed()
    wait_until(lambda: all(a != b for a, b in zip(committed(), empty, strict=True)), 60,
               "the first commits of both consumers", children=[process, ingest])
    restarts = 0
    for how in ("stop", "crash"):
        time.sleep(rng.uniform(1.0, 3.0))  # mid-ingest: batches are committed every 0.3 s
        durable_broker.stop() if how == "stop" else _crash(durable_broker)
        time.sleep(rng.uniform(3.0, 6.0))
        assert process.alive and ingest.alive, ingest.output()[-2000:] + process.output()[-2000:]
        durable_broker.start()
        restarts += 1
        before = committed()
        wait_until(partial(both_committed_since, before),
                   90, f"both consumers to commit again after the broker's {how}",
                   children=[process, ingest])
    producer.stop()

    topic = topic_records(bootstrap, "transactions")
    coordinates = {(p, o) for p, o, _ in topic}
    finished = settle(lambda: len(_landed(lake)[1]) >= len(coordinates), 60)
    assert process.terminate() == 0, process.output()[-3000:]
    assert ingest.terminate() == 0, ingest.output()[-3000:]
    raw, flat = _landed(lake)
    assert Counter(raw).most_common(1)[0][1] == 1, "a record landed twice"
    assert set(raw) == coordinates, "transaction_stream ≠ the topic"
    acked = {json.loads(v)["transaction_id"] for v in producer.acked}
    assert acked <= {json.loads(v)["transaction_id"] for _, _, v in topic}, "the broker lost data"
    assert "Traceback" not in ingest.output() + process.output()
    assert Counter(flat).most_common(1)[0][1] == 1, "a derived record landed twice"
    assert set(flat) <= coordinates, "transaction_flattened holds events the topic does not"
    missing = coordinates - set(flat)
    lost = _lost_by_the_broker(bootstrap, tmp_path / "data", missing) if missing else set()
    assert lost == missing, (
        f"transaction_flattened holds {len(set(flat))} of {len(coordinates)} events "
        f"(missing: {sorted(missing)[:10]}); "
        + _where_lost(bootstrap, tmp_path / "data", missing - lost))
    counts.kills["broker: SIGKILL"] += 1
    counts.faults["broker: clean stop and restart"] += restarts - 1
    counts.records["broker restart"] += len(raw) + len(flat)
    if lost:
        counts.faults["broker: acknowledged derived records it lost"] += len(lost)
        pytest.xfail(
            f"the broker lost {len(lost)} acknowledged records of transaction_flattened across "
            "its restarts: the processor's state holds them, so their publish succeeded, and "
            "their twins from that same publish are in transaction_stream_anonymized "
            "(Tansu's s3 engine and idempotent producers: README, known limits)")
    assert finished


def _landed(lake: Path) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Kafka coordinates of the raw stream's rows, and source coordinates of the flattened."""
    raw = parquet_rows(lake, "streams/transaction_stream", "_kafka_partition, _kafka_offset")
    flat = parquet_rows(lake, "streams/transaction_flattened", "_source_partition, _source_offset")
    return [(p, o) for p, o in raw], [(p, o) for p, o in flat]


def _held_by_state(data_dir: Path, events: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The ``events`` (partition, offset) below the processor's stored next offsets."""
    state = AggregateState(data_dir / "state" / "processor.sqlite")
    try:
        held = {p: state.next_offset("transactions", p) or 0 for p, _ in events}
    finally:
        state.close()
    return {(p, o) for p, o in events if o < held[p]}


def _lost_by_the_broker(bootstrap: str, data_dir: Path,
                        missing: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The missing flattened records the broker provably acknowledged, then lost.

    Two independent witnesses: the processor's state holds the event (its state
    commits only after every message of the batch's publish was acknowledged), and
    the event's anonymized twin, sent in that same publish, is in its topic.
    """
    twins = {(v["_source_partition"], v["_source_offset"]) for v in (
        json.loads(value) for _, _, value in topic_records(
            bootstrap, "transaction_stream_anonymized"))}
    in_topic = {(v["_source_partition"], v["_source_offset"]) for v in (
        json.loads(value) for _, _, value in topic_records(bootstrap, "transaction_flattened"))}
    return _held_by_state(data_dir, missing - in_topic) & twins


def _where_lost(bootstrap: str, data_dir: Path, missing: set[tuple[int, int]]) -> str:
    """Where missing flattened records were lost: by ingest, by the broker, or never published.

    A record that is not in the derived topic although the processor's state holds its
    source offset was acknowledged by the broker and then lost by it (Tansu's ``s3://``
    engine can lose acknowledged idempotent sends across a restart: README, known limits).
    """
    if not missing:
        return "none missing"
    in_topic = {(v["_source_partition"], v["_source_offset"]) for v in (
        json.loads(value) for _, _, value in topic_records(bootstrap, "transaction_flattened"))}
    not_in_topic = missing - in_topic
    acknowledged = _held_by_state(data_dir, not_in_topic)
    return (f"{len(missing) - len(not_in_topic)} of them are in the transaction_flattened "
            f"topic (lost by ingest); {len(acknowledged)} are not although the processor's "
            f"state holds them (their publish succeeded; no twin in the anonymized stream); "
            f"{len(not_in_topic) - len(acknowledged)} were never published")
