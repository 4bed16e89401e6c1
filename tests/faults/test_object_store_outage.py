"""Scenario 3: the S3 object store under the lake crashes, then hangs, while `ingest` runs.

The lake is ``s3://lake/lake`` on a private SeaweedFS, reached through a TCP
proxy. First SeaweedFS is SIGKILLed in the middle of the flushes and started
again on the same ports a few seconds later; then the network path hangs (the
proxy accepts connections and answers nothing, open ones freeze), which only
the S3 client's own timeouts can end. The same `ingest` process must wait,
retry and resume; meanwhile a plain reader lists the dataset and reads every
file it sees in full (no partial file may ever be visible; a read the store
itself fails while it restarts is tried again, see ``visibility.py``); at the
end every record of the topic is in the lake exactly once and no staged file
is left.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from lakestream.testing.seaweedfs import SeaweedFS
from tests.conftest import unique_topic, write_feed
from tests.faults.chaos import (
    Children,
    SteadyProducer,
    settle,
    topic_records,
    wait_until,
    write_config,
)
from tests.faults.conftest import SEED, FaultCounts
from tests.faults.proxy import TcpProxy
from tests.faults.visibility import VisibilityChecker, parquet_files

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

BUCKET, PREFIX = "lake", "lake"
DATASET = f"{BUCKET}/{PREFIX}/streams/feed"


def manifests(fs: pafs.S3FileSystem) -> frozenset[str]:
    """The dataset's ledger manifests: they change on every commit."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(f"{DATASET}/_ledger", recursive=True,
                                                   allow_not_found=True))
    except OSError:
        return frozenset()
    return frozenset(i.path for i in infos if i.path.endswith(".json"))


def coordinates(fs: pafs.S3FileSystem) -> list[tuple[int, int]]:
    """(partition, offset) of every row in the lake, read straight from the files."""
    files = parquet_files(fs, DATASET)
    if not files:
        return []
    table = pads.dataset(files, filesystem=fs, format="parquet").to_table(
        columns=["_kafka_partition", "_kafka_offset"])
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


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
    wait_until(lambda: bool(manifests(fs)), 60, "the first commits", children=[ingest])
    checker = VisibilityChecker(fs, DATASET)
    checker.start()

    # 1. crash in the middle of the flushes (they run every 0.3 s), back on the same ports
    time.sleep(rng.uniform(0.5, 2.0))
    store.kill()
    time.sleep(rng.uniform(5.0, 8.0))
    assert ingest.alive, ingest.output()[-3000:]
    store.start()
    before = manifests(fs)
    wait_until(lambda: manifests(fs) not in (before, frozenset()), 60,
               "ingest to commit again after the object store came back", children=[ingest])

    # 2. a hung network path: requests are accepted and never answered
    time.sleep(rng.uniform(0.5, 2.0))
    proxy.set_mode("hang")
    time.sleep(rng.uniform(5.0, 8.0))
    assert ingest.alive, ingest.output()[-3000:]
    before = manifests(fs)
    proxy.set_mode("forward")
    resumed_at = time.monotonic()
    wait_until(lambda: manifests(fs) != before, 90,
               "ingest to give up its hung requests (S3 client timeouts) and commit again",
               children=[ingest])
    stall = time.monotonic() - resumed_at
    producer.stop()

    expected = {(p, o) for p, o, _ in topic_records(broker.bootstrap_servers, topic)}
    settle(lambda: len(coordinates(fs)) >= len(expected), 60, interval=1.0)
    assert ingest.terminate() == 0, ingest.output()[-3000:]
    output = ingest.output()
    code, final = children.run("ingest-final", ["--config", str(config), "ingest", "--feed",
                                                "feed", "--group", "faults-s3", "--until-idle"],
                               tmp_path, **keys)
    assert code == 0, final[-3000:]
    checker.finish()  # every file the store could not serve yet, now that nothing moves

    landed = Counter(coordinates(fs))
    assert landed and landed.most_common(1)[0][1] == 1, "a record landed twice"
    assert set(landed) == expected, f"{len(expected - set(landed))} records lost"
    assert not checker.broken, f"partial files were visible: {checker.broken[:3]}"
    assert set(parquet_files(fs, DATASET)) <= checker.read, "files the checker never judged"
    staged = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{PREFIX}/_staging", recursive=True,
                                                allow_not_found=True))
    assert not [i.path for i in staged if i.type == pafs.FileType.File], "staged orphans left"
    assert "retrying" in output, "ingest should have said it waits and retries"
    assert "Traceback" not in output
    assert stall < 75, f"hung S3 requests held the ingest for {stall:.0f}s"
    counts.kills["object store: SIGKILL"] += 1
    counts.faults["object store: network path hung"] += 1
    counts.notes["S3 hang: ingest committed again after"] = f"{stall:.0f}s"
    counts.records["object store outage"] += sum(landed.values()) + len(checker.read)
    counts.notes["S3 outage: reads the store failed, retried"] = str(checker.store_errors)
