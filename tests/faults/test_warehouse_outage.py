"""Scenario 4: the streaming warehouse consumer loses its PostgreSQL connections, then the server.

`ingest --sink warehouse` runs while events keep flowing through `process`.
First its backends are terminated server-side again and again
(``pg_terminate_backend``, as a DBA or a failover does), each time while one of
them is in the middle of a statement or a transaction; then the server becomes
unreachable for longer than one load's retry budget (a proxy resets every
connection; the shared PostgreSQL server itself is never touched). The same
consumer must retry, wait and resume; at the end the `live` snapshot equals the
independent recomputation, with no duplicate and every foreign key held.

Loads that are killed mid-COPY are covered by tests/warehouse/test_outage.py
on MariaDB and PostgreSQL; this file adds the long-running consumer.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.derive.processor import STREAMS
from lakestream.derive.shipped import TABLES
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from tests.derive.expected import expected_tables
from tests.faults.backends import BackendKiller
from tests.faults.chaos import Children, SteadyProducer, wait_until, write_config
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.faults.proxy import TcpProxy
from tests.support.databases import SERVERS, Server
from tests.warehouse.checks import (
    FACT_COLUMNS,
    assert_facts_equal,
    assert_foreign_keys_hold,
    fact_rows,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

PG_PORT = 5432


def test_streaming_warehouse_consumer_survives_killed_connections_and_an_outage(
        tmp_path: Path, own_broker: EmbeddedBroker, pg_database: tuple[Server, str],
        children: Children, counts: FaultCounts) -> None:
    server, database = pg_database
    rng = random.Random(f"{SEED}-warehouse")
    bootstrap = own_broker.bootstrap_servers
    proxy = TcpProxy(PG_PORT)
    url = f"postgresql+psycopg://postgres@{proxy.address}/{database}"
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap}, warehouse_url=url)
    base = ["--config", str(config)]
    ensure_topics(bootstrap, ["transactions", *STREAMS, *TABLES], 4)
    engine = sa.create_engine(SERVERS["postgresql"].url(database))
    try:
        producer = SteadyProducer(bootstrap, "transactions", rate=200, seed=SEED + 4)
        producer.start()
        children.spawn("process", [*base, "process"], tmp_path, LAKESTREAM_ANON_KEY=ANON_KEY)
        loader = children.spawn("warehouse", [*base, "ingest", "--sink", "warehouse"], tmp_path)
        wait_until(lambda: _loaded(engine) > 0, 90, "the first warehouse loads", children=[loader])

        killer = BackendKiller(server, database, rng)
        killer.start()
        wait_until(lambda: len(killer.killed) >= 15 or not loader.alive, 120,
                   "15 backends terminated mid-work", children=[loader])
        killer.stop()
        assert loader.alive, loader.output()[-3000:]

        proxy.set_mode("down")  # longer than one load's retry budget (~15 s of backoff)
        outage = rng.uniform(20.0, 24.0)
        time.sleep(outage)
        assert loader.alive, f"gave up during a {outage:.0f}s outage:\n{loader.output()[-3000:]}"
        proxy.set_mode("forward")
        before = _loaded(engine)
        wait_until(lambda: _loaded(engine) > before, 90, "loads to resume after the outage",
                   children=[loader])
        producer.stop()
        assert loader.alive, loader.output()[-3000:]

        code, out = children.run("process-final", [*base, "process", "--until-idle"], tmp_path,
                                 env={"LAKESTREAM_ANON_KEY": ANON_KEY})
        assert code == 0, out[-3000:]
        assert loader.terminate() == 0, loader.output()[-3000:]
        code, out = children.run("warehouse-final", [*base, "ingest", "--sink", "warehouse",
                                                     "--until-idle"], tmp_path)
        assert code == 0, out[-3000:]
        assert "Traceback" not in loader.output()

        checked = _assert_live_exact(engine, producer.acked)
    finally:
        engine.dispose()
        proxy.close()
    counts.faults["warehouse: backend terminated mid-load"] += len(killer.killed)
    counts.faults["warehouse: unreachable past the retry budget"] += 1
    counts.records["warehouse outage"] += checked


def _loaded(engine: sa.Engine) -> int:
    """Sum of the stored next offsets: grows with every committed load."""
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(
                "SELECT coalesce(sum(next_offset), 0) FROM warehouse_offsets").scalar_one())
    except sa.exc.DBAPIError:
        return 0  # the schema is not there yet


def _assert_live_exact(engine: sa.Engine, values: list[bytes]) -> int:
    expected = expected_tables(values)
    checked = 0
    for table, rows in expected.items():
        fact, key, columns = FACT_COLUMNS[table]
        want = {k: tuple(r[c] for c in columns) for k, r in rows.items()}
        assert_facts_equal(fact_rows(engine, table, "live"), want)
        with engine.connect() as conn:
            total, distinct = conn.exec_driver_sql(
                f"SELECT count(*), count(DISTINCT ({', '.join(key)})) FROM {fact} "
                "WHERE snapshot_version = 'live'").one()
        assert total == distinct == len(want), f"{fact}: duplicates in the live snapshot"
        checked += total
    assert_foreign_keys_hold(engine)
    return checked
