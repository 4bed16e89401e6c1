"""`process` loses its shared state store: backends terminated mid-batch, then the server.

`process` runs with its state and input offsets on PostgreSQL (``state_url``, as
several hosts share it) while events keep arriving. Its backends are terminated
server-side again and again, each time while one of them is in the middle of a
batch's transaction (its lock held, its publish waiting for acknowledgements, or
its commit); then the server becomes unreachable for longer than a batch's retry
budget (a proxy resets every connection; the shared PostgreSQL server itself is
never touched). The same process must retry, wait and resume, and at the end
each of the four table topics (the latest value of each key) must equal the
recomputation from the input topic: a batch whose transaction died after its
records were published is published again, never counted twice.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from lakestream.derive.shipped import TABLES
from lakestream.derive.state import StateStore
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from tests.derive.expected import assert_tables_exact
from tests.faults.backends import BackendKiller
from tests.faults.chaos import Children, SteadyProducer, topic_records, wait_until, write_config
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.faults.proxy import TcpProxy
from tests.support.databases import Server

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

PG_PORT = 5432
PARTITIONS = 3


def test_process_survives_a_state_store_losing_connections_and_going_away(
        tmp_path: Path, pg_database: tuple[Server, str], children: Children,
        counts: FaultCounts) -> None:
    server, database = pg_database
    rng = random.Random(f"{SEED}-state-store-outage")
    proxy = TcpProxy(PG_PORT)
    url = f"postgresql+psycopg://postgres@{proxy.address}/{database}"
    store = StateStore(server.url(database))  # the test's own view, not through the proxy
    try:
        with EmbeddedBroker(tmp_path / "broker") as broker:
            bootstrap = broker.bootstrap_servers
            ensure_topics(bootstrap, ["transactions"], PARTITIONS)
            config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap,
                                                   "partitions": PARTITIONS}, state_url=url)
            producer = SteadyProducer(bootstrap, "transactions", rate=250, seed=SEED + 23)
            producer.start()
            proc = children.spawn("process", ["--config", str(config), "process"], tmp_path,
                                  LAKESTREAM_ANON_KEY=ANON_KEY)

            def position() -> int:
                try:
                    return sum(store.next_offset("transactions", p) or 0
                               for p in range(PARTITIONS))
                except Exception:
                    return 0

            wait_until(lambda: position() > 0, 90, "the first committed batch", children=[proc])
            # between kills, time for the retried batch and a few more to commit
            killer = BackendKiller(server, database, rng, pause=(2.0, 4.0))
            killer.start()
            wait_until(lambda: len(killer.killed) >= 10 or not proc.alive, 120,
                       "10 backends terminated mid-batch", children=[proc])
            killer.stop()
            assert proc.alive, proc.output()[-3000:]

            proxy.set_mode("down")
            outage = rng.uniform(20.0, 24.0)
            time.sleep(outage)
            assert proc.alive, f"gave up during a {outage:.0f}s outage:\n{proc.output()[-3000:]}"
            proxy.set_mode("forward")
            before = position()
            wait_until(lambda: position() > before, 90, "batches to commit after the outage",
                       children=[proc])
            producer.stop()
            ends: dict[int, int] = {}
            for partition, offset, _ in topic_records(bootstrap, "transactions"):
                ends[partition] = max(ends.get(partition, 0), offset + 1)
            wait_until(lambda: all((store.next_offset("transactions", p) or 0) >= end
                                   for p, end in ends.items()),
                       120, "the store to hold every event", children=[proc])
            assert proc.terminate() == 0, proc.output()[-3000:]
            assert "Traceback" not in proc.output(), proc.output()[-3000:]
            topics = {t: topic_records(bootstrap, t) for t in ["transactions", *TABLES]}
    finally:
        store.close()
        proxy.close()

    inputs = sorted(topics["transactions"])
    assert len(inputs) == producer.sent
    assert_tables_exact(topics, inputs)
    counts.faults["state store: backend terminated mid-batch"] += len(killer.killed)
    counts.faults["state store: unreachable past the retry budget"] += 1
    counts.records["state store outage"] += len(inputs)
