"""`process --until-idle` and `ingest --sink warehouse --until-idle` after kills (issue #14).

Each round is a fresh project with its own broker (the topic names are fixed),
another partition count, session timeout and kill pattern: `process` members
are killed -9 at random moments (one or two at once), then `process
--until-idle` must leave all four table topics exact; the same for the
warehouse consumer and the `live` snapshot. The seed is printed; replay a
failure with LAKESTREAM_TEST_SEED.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from lakestream.derive.shipped import TABLES
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics, topic_partitions
from lakestream.kafka.producer import produce
from tests.conftest import subprocess_env
from tests.derive.conftest import ANON_KEY
from tests.derive.expected import expected_tables, latest_per_key
from tests.ingest.helpers import generated
from tests.warehouse.checks import FACT_COLUMNS, assert_facts_equal, fact_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 10


def _lakestream(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lakestream", "--config", str(project / "lakestream.yaml"),
            *args]


def _kill_members(project: Path, args: list[str], rng: random.Random) -> None:
    """Start one or two members of the group, kill -9 them at a random moment; 1-3 times."""
    env = subprocess_env(LAKESTREAM_ANON_KEY=ANON_KEY)
    for _ in range(rng.randint(1, 3)):
        members = [subprocess.Popen(_lakestream(project, *args), cwd=project, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(rng.choice([1, 1, 2]))]
        time.sleep(rng.uniform(0.5, 4.5))
        for member in members:
            member.kill()
            member.wait()


def _until_idle(project: Path, idle: str, *args: str) -> float:
    started = time.monotonic()
    done = subprocess.run(_lakestream(project, *args, "--until-idle", "--idle-timeout", idle),
                          cwd=project, env=subprocess_env(LAKESTREAM_ANON_KEY=ANON_KEY),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    assert "per partition:" in done.stdout, done.stdout
    return time.monotonic() - started


def _topic_records(bootstrap: str, topics: list[str]) -> dict[str, list[tuple[int, int, bytes]]]:
    """Every record of ``topics`` as (partition, offset, value), read independently."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, -2) for t in topics
                     for p in topic_partitions(bootstrap, t)])
    out: dict[str, list[tuple[int, int, bytes]]] = {t: [] for t in topics}
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 3:
        for m in consumer.consume(5000, 0.5):
            if m.error() is None:
                topic, partition, offset, value = m.topic(), m.partition(), m.offset(), m.value()
                assert topic is not None and partition is not None and offset is not None
                assert value is not None
                out[topic].append((partition, offset, value))
                quiet_since = time.monotonic()
    consumer.close()
    return out




def _round(tmp: Path, rng: random.Random, round_no: int) -> tuple[float, float]:
    partitions = rng.randint(1, 6)
    session_ms = rng.choice([2000, 6000])
    idle = rng.choice(["1", "2", "3"])
    where = f"round {round_no}: {partitions} partitions, session {session_ms} ms, idle {idle} s"
    project = tmp / f"round{round_no}"
    with EmbeddedBroker(project / "broker") as broker:
        bootstrap = broker.bootstrap_servers
        config = {
            "data_dir": str(project / "data"),
            "kafka": {"bootstrap_servers": bootstrap, "session_timeout_ms": session_ms,
                      "partitions": partitions},
            "lake": {"root": str(project / "lake"), "flush_interval_s": 0.3,
                     "max_batch_records": 300},
            "warehouse_url": f"sqlite:///{project / 'warehouse.sqlite'}",
        }
        (project / "lakestream.yaml").write_text(yaml.safe_dump(config))
        ensure_topics(bootstrap, ["transactions"], partitions)
        messages = generated(rng.randint(1_500, 4_000), seed=100 + round_no)
        producer = threading.Thread(target=produce, args=(
            {"bootstrap.servers": bootstrap, "linger.ms": 5}, "transactions", messages,
            rng.choice([0.0, 1500.0])))
        producer.start()
        _kill_members(project, ["process"], rng)
        producer.join()
        process_s = _until_idle(project, idle, "process")

        topics = _topic_records(bootstrap, ["transactions", *TABLES])
        inputs = sorted(topics["transactions"])
        assert len(inputs) == len(messages), where
        expected = expected_tables([v for _, _, v in inputs], [(p, o) for p, o, _ in inputs])
        for table, rows in expected.items():
            got = latest_per_key(topics[table], list(TABLES[table][0]))
            assert got == rows, f"{where}: topic {table} is not exact"

        _kill_members(project, ["ingest", "--sink", "warehouse"], rng)
        warehouse_s = _until_idle(project, idle, "ingest", "--sink", "warehouse")
        import sqlalchemy as sa

        engine = sa.create_engine(str(config["warehouse_url"]))
        try:
            for table, rows in expected.items():
                _, _key, columns = FACT_COLUMNS[table]
                want = {k: tuple(r[c] for c in columns) for k, r in rows.items()}
                assert_facts_equal(fact_rows(engine, table, "live"), want)
        finally:
            engine.dispose()
    return process_s, warehouse_s


def test_process_and_warehouse_until_idle_after_kills_are_exact(tmp_path: Path) -> None:
    seed = int(os.environ.get("LAKESTREAM_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    times: list[tuple[float, float]] = []
    for round_no in range(ROUNDS):
        try:
            times.append(_round(tmp_path, rng, round_no))
        except AssertionError as exc:
            raise AssertionError(f"LAKESTREAM_TEST_SEED={seed}: {exc}") from None
    for name, column in (("process", 0), ("ingest --sink warehouse", 1)):
        values = [t[column] for t in times]
        print(f"{name} --until-idle after kills: median {statistics.median(values):.1f}s, "
              f"worst {max(values):.1f}s over {len(values)} rounds (seed {seed})")
