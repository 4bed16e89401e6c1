"""Events/s per core through `lakestream process`, against a bare Kafka loop and DuckDB.

Four figures on the same events:

1. broker excluded — the processor's per-batch work on in-memory batches:
   decode, the declarative SQL (flatten, anonymize, blacklist, aggregate
   deltas), JSON serialization of every output record, the SQLite state
   transaction; publishing is replaced by counting the messages;
2. broker included — `process --until-idle` against the embedded broker,
   steady state (from the first committed batch to the last);
3. bare loop — a confluent-kafka consumer and producer on a broker of their
   own: consume the same events, produce as many messages of the same mean
   size as `process` publishes (from the first message to the last ack);
4. baseline — one DuckDB query computing the four aggregates over the same
   events at once, from the same JSON (NDJSON file), on one thread.

Targets: the processor's per-core rate ≥ 0.5 × the DuckDB baseline's (issue 3);
≥ 100,000 events per CPU-second broker excluded, and broker included ≥ 0.5 ×
the bare loop (issue 17).

    python -m benchmarks.bench_process [--events 300000] [--batch-size 50000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
from pydantic import SecretStr

from benchmarks.common import (
    KAFKA_TS_MS,
    banner,
    embedded_broker,
    generate,
    per_second,
    produce_events,
    row,
    run_main,
    timed,
    verdict,
)
from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.derive.processor import Processor
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.client import ensure_topics
from lakestream.kafka.consumer import ConsumeOptions
from lakestream.lake.storage import open_storage

BASELINE_SQL = """
WITH e AS (
  SELECT t.*, round(amount * r.to_usd, 6) AS usd FROM read_json('{path}') t
  JOIN (VALUES ('USD', 1.0), ('EUR', 1.08), ('GBP', 1.27), ('CHF', 1.13), ('JPY', 0.0067),
               ('CAD', 0.74)) r(currency, to_usd) USING (currency)
  WHERE status = 'completed')
SELECT
  (SELECT count(*) FROM (SELECT "user".user_id, transaction_type, sum(usd), count(*), avg(usd),
                                sum(usd * 0.925926) FROM e GROUP BY ALL)),
  (SELECT count(*) FROM (SELECT payment_method.payment_method_id, sum(usd), count(*), avg(usd)
                         FROM e GROUP BY ALL)),
  (SELECT count(*) FROM (SELECT product.product_id, count(*), sum(usd),
                                avg(product.unit_price), count(DISTINCT "user".user_id)
                         FROM e WHERE transaction_type = 'purchase' GROUP BY ALL))
"""


class CountingPublisher:
    """Stands in for the broker: counts what would be published, and its bytes."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def publish(self, partition: int, streams: dict[str, Any], tables: dict[str, Any]) -> int:
        sent = sum(len(v) for _, v in streams.values()) + sum(len(m) for m in tables.values())
        self.messages += sent
        self.bytes += sum(len(value) for _, values in streams.values() for value in values)
        self.bytes += sum(len(v or b"") + len(k or b"") for m in tables.values() for k, v in m)
        return sent


def broker_excluded(events: list[tuple[bytes, bytes]], batch: int, workdir: Path) -> tuple:
    settings = load_settings(environ={"LAKESTREAM_DATA_DIR": str(workdir / "data"),
                                      "LAKESTREAM_LAKE_ROOT": str(workdir / "lake")}, cwd=workdir)
    publisher = CountingPublisher()
    proc = Processor(settings, "unused:9092", open_storage(settings.lake.root, settings.s3),
                     b"bench-key", ConsumeOptions(group_id="bench"), publisher)  # type: ignore[arg-type]
    buffers = []
    for start in range(0, len(events), batch):
        buf = PartitionBuffer("transactions", 0)
        for i, (key, value) in enumerate(events[start:start + batch], start):
            buf.add(value, key, i, KAFKA_TS_MS)
        buffers.append(buf)
    with timed() as clock:
        for buf in buffers:
            proc._process(buf)
    return clock, publisher


def broker_included(events: list[tuple[bytes, bytes]], workdir: Path) -> tuple[float, int]:
    with embedded_broker() as broker:
        produce_events(broker.bootstrap_servers, "transactions", len(events), partitions=4)
        env = {"LAKESTREAM_DATA_DIR": str(workdir / "data2"),
               "LAKESTREAM_LAKE_ROOT": str(workdir / "lake2"),
               "LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
        settings = load_settings(environ=env, cwd=workdir)
        settings = settings.model_copy(update={"anon_key": SecretStr("bench-key")})
        proc = Lakestream(settings).processor(until_idle=True, idle_timeout_s=2.0)
        first: list[float] = []
        original = proc.flush_partition

        def flush(buffer: PartitionBuffer) -> None:
            if not first:
                first.append(time.perf_counter())
            original(buffer)

        proc.flush_partition = flush
        report = proc.run()
        end = time.perf_counter() - 2.0  # minus the idle wait
        return end - first[0], report.processed


def bare_loop(events: list[tuple[bytes, bytes]], messages: int, size: int) -> float:
    """Seconds a bare confluent-kafka loop takes to consume the events from the broker and
    produce ``messages`` messages of ``size`` bytes (as many per event as `process` publishes),
    from its first message to the last acknowledgement (the issue's broker-included baseline)."""
    from confluent_kafka import Consumer, Producer

    with embedded_broker() as broker:
        produce_events(broker.bootstrap_servers, "transactions", len(events), partitions=4)
        ensure_topics(broker.bootstrap_servers, ["bare_out"], 4)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers,
                             "group.id": "bare-process", "auto.offset.reset": "earliest",
                             "enable.auto.commit": False, "log_level": 3})
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers,
                             "enable.idempotence": True, "linger.ms": 5, "log_level": 3})
        payload = b"x" * size
        consumer.subscribe(["transactions"])
        consumed, owed, first = 0, 0.0, 0.0
        per_event = messages / len(events)
        try:
            while consumed < len(events):
                batch = [m for m in consumer.consume(5000, 0.25) if m.error() is None]
                if batch and not first:
                    first = time.perf_counter()
                consumed += len(batch)
                owed += per_event * len(batch)
                while owed >= 1:
                    while True:
                        try:
                            producer.produce("bare_out", payload, partition=int(owed) % 4)
                            break
                        except BufferError:
                            producer.poll(0.05)
                    owed -= 1
                producer.poll(0)
            producer.flush(120)
            return time.perf_counter() - first
        finally:
            consumer.close()


def baseline(events: list[tuple[bytes, bytes]], workdir: Path) -> float:
    path = workdir / "events.ndjson"
    path.write_bytes(b"\n".join(v for _, v in events) + b"\n")
    con = duckdb.connect()
    con.execute("SET threads = 1")
    with timed() as clock:
        con.execute(BASELINE_SQL.format(path=path)).fetchall()
    return clock.wall


def parser() -> argparse.ArgumentParser:
    """Command-line options (sizes) of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--batch-size", type=int, default=50_000)
    return p


def run(args: argparse.Namespace) -> list[str]:
    """Run the three measurements; print the figures; return the verdict."""
    banner("process: events/s per core", __doc__.split("\n\n")[1])
    events = generate(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clock, published = broker_excluded(events, args.batch_size, work)
        messages = published.messages
        included_s, processed = broker_included(events, work)
        bare_s = bare_loop(events, messages, max(1, published.bytes // max(1, messages)))
        base_s = baseline(events, work)
    excluded = per_second(len(events), clock.cpu)
    base = per_second(len(events), base_s)
    row("broker excluded, events per CPU-second", f"{excluded:,.0f}",
        f"wall {per_second(len(events), clock.wall):,.0f}/s, {messages:,} messages built")
    row("broker included, events/s (steady state, wall)",
        f"{per_second(processed, included_s):,.0f}", f"{processed:,} events")
    bare = per_second(len(events), bare_s)
    row("baseline: bare confluent-kafka loop, events/s (wall)", f"{bare:,.0f}",
        f"consumes them, produces {messages:,} messages of "
        f"{published.bytes // max(1, messages):,} bytes")
    row("baseline: DuckDB 4 aggregates from JSON, 1 thread", f"{base:,.0f}")
    included = per_second(processed, included_s)
    return [verdict("process per core / DuckDB batch query", excluded / base, 0.5),
            verdict("process broker excluded, events per CPU-second", excluded, 100_000),
            verdict("process broker included / bare confluent-kafka loop", included / bare,
                    0.5)]


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the verdict lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
