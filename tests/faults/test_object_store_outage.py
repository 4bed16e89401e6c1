"""Scenario 3: the S3 object store under the lake crashes, then hangs, while `ingest` runs.

The lake is ``s3://lake/lake`` on a private SeaweedFS, reached through a TCP
proxy. First SeaweedFS is SIGKILLed in the middle of the flushes and started
again on the same ports a few seconds later; then the network path hangs (the
proxy accepts connections and answers nothing, open ones freeze), which only
the S3 client's own timeouts can end. The same `ingest` process must wait,
retry and resume; meanwhile a Delta reader follows the dataset's log and reads
every file it references in full (no partial file and no partial log entry may
ever be visible; a read the store itself fails while it restarts is tried
again, see ``visibility.py``); at the end every record of the topic is in the
lake exactly once, read through the log (files of a commit cut off before its
log entry never count).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from tests.conftest import unique_topic, write_feed
from tests.faults.chaos import (
    Children,
    SteadyProducer,
    parquet_rows,
    settle,
    topic_records,
    wait_until,
    write_config,
)
from tests.faults.conftest import SEED, FaultCounts
from tests.faults.proxy import TcpProxy
from tests.faults.visibility import VisibilityChecker, log_entries
from tests.support.seaweedfs import SeaweedFS

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

BUCKET, PREFIX = "lake", "lake"
DATASET = f"{BUCKET}/{PREFIX}/streams/feed"


def commits(fs: pafs.S3FileSystem) -> frozenset[str]:
    """The dataset's Delta log entries: a new one with every commit."""
    try:
        return frozenset(log_entries(fs, DATASET))
    except OSError:
        return frozenset()


def coordinates(store: SeaweedFS) -> list[tuple[int, int]]:
    """(partition, offset) of every row in the lake, read through its Delta log (delta-rs)."""
    options = {"AWS_ENDPOINT_URL": store.endpoint_url, "AWS_ALLOW_HTTP": "true",
               "AWS_REGION": store.region, "AWS_ACCESS_KEY_ID": store.access_key,
               "AWS_SECRET_ACCESS_KEY": store.secret_key}
    rows = parquet_rows(f"s3://{BUCKET}/{PREFIX}", "streams/feed",
                        "_kafka_partition, _kafka_offset", storage_options=options)
    return [(p, o) for p, o in rows]


@pytest.fixture
def proxied_store(own_seaweedfs: SeaweedFS) -> Iterator[tuple[SeaweedFS, TcpProxy]]:
    """The private SeaweedFS with the lake's bucket, and a proxy in front of its S3 port."""
    own_seaweedfs.create_bucket(BUCKET)
    proxy = TcpProxy(own_seaweedfs.port)
    try:
        yield own_seaweedfs, proxy
    finally:
        proxy.close()


def test_ingest_waits_out_a_crashed_then_hung_object_store(
        tmp_path: Path, broker: EmbeddedBroker, proxied_store: tuple[SeaweedFS, TcpProxy],
        children: Children, counts: FaultCounts) -> None:
    store, proxy = proxied_store
    rng = random.Random(f"{SEED}-s3")
    topic = unique_topic("faults-s3")
    write_feed(tmp_path / "feeds", "feed", topic)
    config = write_config(tmp_path, kafka={"bootstrap_servers": broker.bootstrap_servers},
                          lake={"root": f"s3://{BUCKET}/{PREFIX}"},
                          s3={"endpoint": f"http://{proxy.address}"})
    ensure_topics(broker.bootstrap_servers, [topic], 4)
    fs = store.filesystem(connect_timeout=1, request_timeout=5)
    keys = {"LAKESTREAM_S3_ACCESS_KEY": store.access_key,
            "LAKESTREAM_S3_SECRET_KEY": store.secret_key}

    producer = SteadyProducer(broker.bootstrap_servers, topic, rate=300, seed=SEED + 3)
    producer.start()
    ingest = children.spawn("ingest", ["--config", str(config), "ingest", "--feed", "feed",
                                       "--group", "faults-s3"], tmp_path, **keys)
    wait_until(lambda: bool(commits(fs)), 60, "the first commits", children=[ingest])
    checker = VisibilityChecker(fs, DATASET)
    checker.start()

    # 1. crash in the middle of the flushes (they run every 0.3 s), back on the same ports
    time.sleep(rng.uniform(0.5, 2.0))
    store.kill()
    time.sleep(rng.uniform(5.0, 8.0))
    assert ingest.alive, ingest.output()[-3000:]
    store.start()
    before = commits(fs)
    wait_until(lambda: commits(fs) not in (before, frozenset()), 60,
               "ingest to commit again after the object store came back", children=[ingest])

    # 2. a hung network path: requests are accepted and never answered
    time.sleep(rng.uniform(0.5, 2.0))
    proxy.set_mode("hang")
    time.sleep(rng.uniform(5.0, 8.0))
    assert ingest.alive, ingest.output()[-3000:]
    before = commits(fs)
    proxy.set_mode("forward")
    resumed_at = time.monotonic()
    # bounded (a request hung for good fails the test), not timed: delta-rs gives a hung
    # request up to its client timeout (30 s) and retries; 84-118 s measured under load
    wait_until(lambda: commits(fs) != before, 240,
               "ingest to give up its hung requests (S3 client timeouts) and commit again",
               children=[ingest])
    stall = time.monotonic() - resumed_at
    producer.stop()

    expected = {(p, o) for p, o, _ in topic_records(broker.bootstrap_servers, topic)}
    settle(lambda: len(coordinates(store)) >= len(expected), 60, interval=1.0)
    assert ingest.terminate() == 0, ingest.output()[-3000:]
    output = ingest.output()
    code, final = children.run("ingest-final", ["--config", str(config), "ingest", "--feed",
                                                "feed", "--group", "faults-s3", "--until-idle"],
                               tmp_path, env=keys)
    assert code == 0, final[-3000:]
    checker.finish()  # every file the store could not serve yet, now that nothing moves

    landed = Counter(coordinates(store))
    assert landed and landed.most_common(1)[0][1] == 1, "a record landed twice"
    assert set(landed) == expected, f"{len(expected - set(landed))} records lost"
    assert not checker.broken, f"partial files were visible: {checker.broken[:3]}"
    assert checker.logged() and checker.logged() <= checker.read, "files never judged"
    assert "retrying" in output, "ingest should have said it waits and retries"
    assert "Traceback" not in output
    counts.kills["object store: SIGKILL"] += 1
    counts.faults["object store: network path hung"] += 1
    counts.notes["S3 hang: ingest committed again after"] = f"{stall:.0f}s"
    counts.records["object store outage"] += sum(landed.values()) + len(checker.read)
    counts.notes["S3 outage: reads the store failed, retried"] = str(checker.store_errors)
