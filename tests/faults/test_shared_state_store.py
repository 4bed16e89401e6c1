"""Several `process` hosts, one state store (issue #17 item 1).

Two `process` instances, each with a data directory of its own (two hosts), in
one consumer group, share one state store on PostgreSQL, then on MariaDB
(``state_url``). Events keep arriving; host B is SIGKILLed and restarted at
random moments, and host A once, so partitions move both ways, each time with
the dead member still in the group until its session expires. Then host B stops
(SIGTERM) and host A takes every partition over, resuming from the offsets
host B left in the shared store, until the store holds every event. Each of the four table
topics, read independently (the latest value of each key), must equal the
recomputation of ``tests/derive/expected.py`` from the input topic: a batch
counted twice (a zombie's, a replay's) or lost (a partition's state left
behind on the other host) changes a total.
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
from tests.faults.chaos import (
    Child,
    Children,
    SteadyProducer,
    topic_records,
    wait_until,
    write_config,
)
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.support.databases import require_server, server_status  # noqa: F401 (fixture)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4




@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_two_hosts_sharing_a_state_store_publish_exact_tables_across_kills(
        tmp_path: Path, children: Children, counts: FaultCounts,
        server_status: dict[str, str | None], backend: str) -> None:  # noqa: F811
    server = require_server(backend, server_status)
    rng = random.Random(f"{SEED}-shared-state-{backend}")
    with server.database("ls_state") as database, \
            EmbeddedBroker(tmp_path / "broker") as broker:
        bootstrap = broker.bootstrap_servers
        ensure_topics(bootstrap, ["transactions"], PARTITIONS)
        hosts: dict[str, tuple[Path, Path]] = {}
        for name in ("a", "b"):
            folder = tmp_path / f"host-{name}"
            folder.mkdir()
            config = write_config(folder, kafka={"bootstrap_servers": bootstrap,
                                                 "partitions": PARTITIONS},
                                  lake={"root": str(tmp_path / "lake")},
                                  state_url=server.url(database))
            hosts[name] = (folder, config)

        def start(name: str) -> Child:
            folder, config = hosts[name]
            return children.spawn(f"process-{name}", ["--config", str(config), "process"],
                                  folder, LAKESTREAM_ANON_KEY=ANON_KEY)

        producer = SteadyProducer(bootstrap, "transactions", rate=300, seed=SEED + 17)
        producer.start()
        running = {"a": start("a"), "b": start("b")}
        kills = 0
        for victim in ("b", "b", "a", "b"):
            time.sleep(rng.uniform(2.0, 5.0))  # mid-batch: batches commit every 0.3 s
            running[victim].kill()
            kills += 1
            time.sleep(rng.uniform(0.5, 3.0))  # its member stays in the group meanwhile
            running[victim] = start(victim)
        time.sleep(rng.uniform(2.0, 4.0))
        producer.stop()
        assert running["b"].terminate() == 0, f"host b:\n{running['b'].output()[-3000:]}"
        # host A takes every partition over and must finish what host B left in the store
        ends: dict[int, int] = {}
        for partition, offset, _ in topic_records(bootstrap, "transactions"):
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        store = StateStore(server.url(database))
        try:
            wait_until(lambda: all((store.next_offset("transactions", p) or 0) >= end
                                   for p, end in ends.items()),
                       120, "host A to process every event into the shared store",
                       children=[running["a"]])
        finally:
            store.close()
        assert running["a"].terminate() == 0, f"host a:\n{running['a'].output()[-3000:]}"

        topics = {t: topic_records(bootstrap, t) for t in ["transactions", *TABLES]}
        inputs = sorted(topics["transactions"])
        assert len(inputs) == producer.sent
        assert_tables_exact(topics, inputs, f"{backend}: ")
        for name, child in running.items():
            assert "Traceback" not in child.output(), f"host {name}:\n{child.output()[-3000:]}"
    counts.kills[f"process host sharing a {backend} state store"] += kills
    counts.records[f"shared state store ({backend})"] += len(inputs)
