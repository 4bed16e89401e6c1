"""Scenario 6b: bad input on a live topic, through real `process` and `ingest` processes.

About a thousand messages drawn by hypothesis (seeded) — good events, events
gone wrong, arbitrary bytes — go to `transactions` on a private broker. Both
consumers must run to the end (exit 0, no hang), and every Kafka record must
be accounted for exactly once: in the lake, or in the dead-letter dataset with
its reason, its raw bytes and its Kafka coordinates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestream.kafka.broker import EmbeddedBroker
from tests.faults.badinput import definitely_bad, draw_batches
from tests.faults.chaos import Children, parquet_rows, topic_records, write_config
from tests.faults.conftest import ANON_KEY, FaultCounts
from tests.ingest.helpers import send

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


def test_bad_records_on_a_live_topic_go_to_the_dlq_and_good_ones_to_the_lake(
        tmp_path: Path, own_broker: EmbeddedBroker, children: Children,
        counts: FaultCounts) -> None:
    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap})
    drawn = draw_batches(60)
    messages = [(f"k{i}".encode(), raw) for i, (_, raw) in enumerate(drawn)]
    send(bootstrap, "transactions", messages)
    base = ["--config", str(config)]

    for name, args, env in (("process", ["process"], {"LAKESTREAM_ANON_KEY": ANON_KEY}),
                            ("ingest", ["ingest", "--pipeline", "transactions"], {})):
        code, out = children.run(name, [*base, *args, "--until-idle", "--idle-timeout", "3"],
                                 tmp_path, timeout=180, env=env)
        assert code == 0, out[-3000:]
        assert "Traceback" not in out and "internal error" not in out, out[-3000:]

    topic = {(p, o): v for p, o, v in topic_records(bootstrap, "transactions")}
    assert len(topic) == len(messages)
    lake = tmp_path / "lake"

    landed = parquet_rows(lake, "streams/transaction_stream", "_kafka_partition, _kafka_offset")
    dead = parquet_rows(lake, "_dlq/transaction_stream",
                        "_kafka_partition, _kafka_offset, reason, raw")
    _assert_partition(topic, [(p, o) for p, o in landed], dead, "ingest")
    flat = parquet_rows(lake, "streams/transaction_flattened", "_source_partition, _source_offset")
    processor_dead = parquet_rows(lake, "_dlq/processor",
                                  "_kafka_partition, _kafka_offset, reason, raw")
    _assert_partition(topic, [(p, o) for p, o in flat], processor_dead, "process")
    ingest_rejects = {(p, o) for p, o, _, _ in dead}
    assert ingest_rejects <= {(p, o) for p, o, _, _ in processor_dead}, (
        "process kept a record that ingest rejected with the same schema")

    good = {raw for k, raw in drawn if k == "good"}
    accepted = {topic[c] for c in {(p, o) for p, o in landed}}
    derived = {topic[c] for c in {(p, o) for p, o in flat}}
    assert good <= accepted and good <= derived, "a good event went to a DLQ"
    bad = {raw for _, raw in drawn if definitely_bad(raw)}
    assert not bad & accepted and not bad & derived, "a bad record reached the lake"
    counts.fuzz["live topic: messages"] += len(messages)
    counts.records["bad input, live topic"] += len(landed) + len(dead) + len(flat) + len(
        processor_dead)


def _assert_partition(topic: dict[tuple[int, int], bytes], kept: list[tuple[int, int]],
                      dead: list[tuple[int, int, str, bytes]], who: str) -> None:
    """Every record once: kept, or dead-lettered with a reason and its raw bytes."""
    rejected = [(p, o) for p, o, _, _ in dead]
    assert len(kept) == len(set(kept)) and len(rejected) == len(set(rejected)), who
    assert not set(kept) & set(rejected), f"{who}: a record both kept and dead-lettered"
    assert set(kept) | set(rejected) == set(topic), f"{who}: records neither kept nor rejected"
    for p, o, reason, raw in dead:
        assert reason and reason.strip(), f"{who}: no reason for {(p, o)}"
        assert raw == topic[(p, o)], f"{who}: the DLQ altered the raw bytes of {(p, o)}"
