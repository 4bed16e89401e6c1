"""Consumer lag: the arithmetic, checked with the watermarks a correct broker would report.

Tansu (the embedded broker) reports wrong high watermarks (SPEC §2), so the
arithmetic is tested with given numbers; one integration test only checks
that a real Tansu is asked and recognised (and its lag flagged approximate).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from lakestream.config import S3Settings
from lakestream.errors import BrokerError
from lakestream.feeds import BUILTIN_FEEDS, Feed
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from lakestream.kafka.lag import BrokerWatermarks, compute_lag, fetch_watermarks, partition_lag
from lakestream.lake.storage import Storage, open_storage
from lakestream.observe.lag import TANSU_NOTE, LagMonitor, sink_positions

STREAM = next(f for f in BUILTIN_FEEDS if f.name == "transaction_stream")
TABLE = next(f for f in BUILTIN_FEEDS if f.name == "payment_method_totals")


def test_lag_is_high_watermark_minus_committed_position() -> None:
    # a correct broker: 1000 records in partition 0; the lake committed offsets 0..899
    lag = partition_lag("sink", "t", 0, 900, (0, 1000))
    assert (lag.position, lag.high, lag.lag) == (900, 1000, 100)


def test_a_caught_up_sink_has_no_lag_and_never_a_negative_one() -> None:
    assert partition_lag("s", "t", 0, 1000, (0, 1000)).lag == 0
    assert partition_lag("s", "t", 0, 1200, (0, 1000)).lag == 0  # stale watermark


def test_records_deleted_by_retention_are_not_lag() -> None:
    # retention removed offsets < 700; a sink that never committed can only read 700..999
    assert partition_lag("s", "t", 0, None, (700, 1000)).lag == 300
    assert partition_lag("s", "t", 0, 650, (700, 1000)).lag == 300
    assert partition_lag("s", "t", 0, 800, (700, 1000)).lag == 200


def test_an_unknown_watermark_gives_an_unknown_lag() -> None:
    assert partition_lag("s", "t", 1, 5, None).lag is None
    assert partition_lag("s", "t", 1, 5, (-1, -1)).lag is None  # librdkafka's "invalid"


def test_compute_lag_pairs_each_sink_partition_with_its_watermarks() -> None:
    positions = {("a", "t", 0): 10, ("a", "t", 1): 0, ("b", "u", 0): 3}
    lags = compute_lag(positions, {("t", 0): (0, 15), ("t", 1): (0, 4)})
    assert [(x.sink, x.partition, x.lag) for x in lags] == [("a", 0, 5), ("a", 1, 4),
                                                            ("b", 0, None)]


def write_metadata(storage: Storage, feed: Feed, meta: dict[str, object]) -> None:
    storage.write_atomic(f"{feed.dataset}/_metadata.json", json.dumps(meta).encode())


@pytest.fixture
def lake(tmp_path: Path) -> Storage:
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    # a stream committed up to offset 899 of partition 0 and 49 of partition 1
    write_metadata(storage, STREAM, {"kafka_offsets": {
        "transactions:0": {"first": 0, "last": 899}, "transactions:1": {"first": 0, "last": 49}}})
    # a table covers offsets before 12 in partition 0 ("partition": next offset)
    write_metadata(storage, TABLE, {"kafka_offsets": {"0": 12}})
    return storage


def test_sink_positions_come_from_the_lake_metadata(lake: Storage) -> None:
    assert sink_positions(lake, [STREAM, TABLE]) == {
        ("transaction_stream", "transactions", 0): 900,
        ("transaction_stream", "transactions", 1): 50,
        ("payment_method_totals", "payment_method_totals", 0): 12,
    }


def correct_broker(_topics: list[str]) -> BrokerWatermarks:
    return BrokerWatermarks("kafka-prod", {
        ("transactions", 0): (0, 1000), ("transactions", 1): (0, 50),
        ("transactions", 2): (0, 30),  # nothing committed yet: all of it is lag
        ("payment_method_totals", 0): (0, 20)})


def test_the_report_adds_up_a_correct_brokers_numbers(lake: Storage) -> None:
    report = LagMonitor(lake, correct_broker, "kafka:9092").report([STREAM, TABLE])
    got = {(p.sink, p.partition): p.lag for p in report.partitions}
    assert got == {("transaction_stream", 0): 100, ("transaction_stream", 1): 0,
                   ("transaction_stream", 2): 30, ("payment_method_totals", 0): 8}
    assert report.total == 138 and not report.approximate and report.note is None


def test_lag_against_tansu_is_flagged_approximate(lake: Storage) -> None:
    tansu = lambda topics: BrokerWatermarks("tansu_cluster", correct_broker(topics).watermarks)  # noqa: E731
    report = LagMonitor(lake, tansu, "embedded broker").report([STREAM])
    assert report.approximate and report.note == TANSU_NOTE
    assert TANSU_NOTE == "lag is approximate: Tansu's watermarks are unreliable"


def test_a_broker_that_is_down_leaves_positions_and_says_why(lake: Storage) -> None:
    calls = []

    def down(topics: list[str]) -> BrokerWatermarks:
        calls.append(topics)
        raise BrokerError("cannot reach Kafka at 127.0.0.1:1")

    monitor = LagMonitor(lake, down, "127.0.0.1:1")
    report = monitor.report([STREAM])
    assert report.error is not None and "cannot reach Kafka" in report.error
    assert [p.position for p in report.partitions] == [900, 50] and report.total is None
    monitor.report([STREAM])
    assert len(calls) == 1  # a failed broker is not asked again at every poll


@pytest.mark.integration
def test_a_real_tansu_is_asked_and_recognised(broker: EmbeddedBroker) -> None:
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap_servers, [topic], 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(20):
        producer.produce(topic, b"x", partition=i % 2)
    producer.flush(10)
    answer = fetch_watermarks({"bootstrap.servers": broker.bootstrap_servers},
                              [topic, "no-such-topic"])
    assert answer.is_tansu
    assert set(answer.watermarks) == {(topic, 0), (topic, 1)}
    assert all(high >= 1 for _low, high in answer.watermarks.values())  # not exact on Tansu


@pytest.mark.integration
def test_no_broker_at_the_address_is_a_broker_error() -> None:
    with pytest.raises(BrokerError):
        fetch_watermarks({"bootstrap.servers": "127.0.0.1:9"}, ["t"], timeout_s=0.5)
