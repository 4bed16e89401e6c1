"""Kafka → lake throughput against a bare confluent-kafka consumer on the same topic.

SPEC §9: in steady state, Lakestream's ingest lands a topic at ≥ 0.5 × the rate
at which a bare consumer with the same settings drains it from the same broker.
Start-up and the group join (seconds on Tansu) are measured and printed, but
excluded: both rates run from the first record received to the last record
received (bare consumer) or the last batch committed to the lake (Lakestream,
read from the Delta log's last commit). A first bare drain warms the
broker up (Tansu serves a topic's first read markedly slower) and is not
counted; then bare and Lakestream drains alternate (``--repeat`` each, and a
last bare one), so both meet the same load of a shared machine. The verdict is
the median Lakestream drain over the median bare drain: single drains of Tansu
vary by ±50 % here (the best-over-best ratio is printed too).

    python -m benchmarks.bench_ingest_vs_bare --events 500000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from statistics import median

from benchmarks.common import (
    banner,
    bench_settings,
    cpu_seconds,
    embedded_broker,
    per_second,
    produce_events,
    row,
    run_main,
    verdict,
    write_feed,
)
from lakestream.config import Settings
from lakestream.ingest.engine import IngestEngine, IngestReport
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import consumer_config
from lakestream.lake.delta import DeltaDataset

TARGET_RATIO = 0.5
BATCH = 20_000  # the engine's consume() batch
FEED = "bench_ingest"


@dataclass
class DrainRun:
    """One drain of the topic: when the group was joined and the steady-state window."""

    records: int
    started: float  # wall-clock epoch seconds of subscribe / engine start
    assigned: float | None
    first: float  # first record received
    first_batch: int  # records of the first consume() (received at ``first``)
    last: float  # last record received, or last batch committed
    cpu: float  # process CPU seconds (all threads) from the first record to the end

    @property
    def cpu_per_record_us(self) -> float:
        """Microseconds of CPU (this process, every thread) per record in the window."""
        return 1e6 * self.cpu / max(self.records - self.first_batch, 1)

    @property
    def steady_rate(self) -> float:
        """Records per second after the first batch, up to the end of the window."""
        return per_second(self.records - self.first_batch, self.last - self.first)


@dataclass
class Drain:
    """A named drain and the broker CPU per record it caused."""

    name: str
    run: DrainRun
    broker_us: float


def bare_drain(settings: Settings, bootstrap: str, topic: str, expected: int) -> DrainRun:
    """Drain ``topic`` with a bare consumer configured exactly like the ingest's."""
    from confluent_kafka import Consumer

    consumer = Consumer(consumer_config(settings, bootstrap, f"bare-{uuid.uuid4().hex[:8]}"))
    assigned: list[float] = []
    started = time.time()
    consumer.subscribe([topic], on_assign=lambda *_: assigned.append(time.time()))
    count, first, first_batch, cpu = 0, 0.0, 0, 0.0
    try:
        while count < expected:
            messages = consumer.consume(num_messages=BATCH, timeout=0.25)
            good = sum(1 for m in messages if m.error() is None)
            if good and not first:
                first, first_batch, cpu = time.time(), good, time.process_time()
            count += good
        last, cpu = time.time(), time.process_time() - cpu
    finally:
        consumer.close()
    joined = assigned[0] if assigned else None
    return DrainRun(count, started, joined, first, first_batch, last, cpu)


def lakestream_drain(bootstrap: str, topic: str, expected: int, workdir: Path) -> DrainRun:
    """Land ``topic`` in a fresh local lake with the ingest engine built by the facade."""
    from lakestream.api import Lakestream

    settings = bench_settings(bootstrap, workdir)
    write_feed(Path(settings.feeds_dir), FEED, topic)
    api = Lakestream(settings)
    seen: dict[str, float] = {}

    def watch(report: IngestReport, _lag: dict[str, int]) -> None:
        if report.consumed and "first" not in seen:
            seen.update(first=time.time(), first_batch=report.consumed, cpu=time.process_time())
        if report.consumed >= expected:
            engine.stop()  # flush and commit now rather than after the idle timeout

    engine = api.ingest_engine(
        api.select_feeds(None, FEED), until_idle=True, idle_timeout_s=5.0,
        group_id=f"lake-{uuid.uuid4().hex[:8]}", progress=watch,
    )  # fmt: skip
    engine.options.progress_every_s = 0.0  # call ``watch`` after every consume()
    started = time.time()
    report = engine.run()
    cpu = time.process_time() - seen["cpu"]
    if report.written != expected:
        raise RuntimeError(f"Lakestream wrote {report.written} of {expected} records")
    return DrainRun(
        report.written, started, _epoch(report), seen["first"],
        int(seen["first_batch"]), _last_commit(engine), cpu,
    )  # fmt: skip


def _epoch(report: IngestReport) -> float | None:
    """``report.assigned_at`` (monotonic) as epoch seconds."""
    if report.assigned_at is None:
        return None
    return time.time() - (time.monotonic() - report.assigned_at)


def _last_commit(engine: IngestEngine) -> float:
    """Epoch seconds of the newest commit in any feed's Delta log."""
    stamps = []
    for sinks in engine.sinks.values():
        for sink in sinks:
            table = DeltaDataset(engine.storage, sink.feed.dataset).table()
            stamps += [int(c["timestamp"]) / 1000 for c in table.history(1)]
    return max(stamps)


def print_run(name: str, run: DrainRun, broker_us: float) -> None:
    """One drain: its steady-state rate and CPU, and its start-up (excluded)."""
    join = f"{run.assigned - run.started:.1f} s" if run.assigned else "n/a"
    row(f"{name}: steady-state rate", f"{run.steady_rate:,.0f} rec/s",
        f"{run.last - run.first:.2f} s window")  # fmt: skip
    row(
        f"{name}: CPU/record (process + broker)",
        f"{run.cpu_per_record_us:.2f} + {broker_us:.2f} µs",
        f"join {join}, first record at {run.first - run.started:.1f} s (excluded)",
    )


def drain_all(
    broker: EmbeddedBroker, topic: str, events: int, repeat: int, workdir: Path
) -> list[Drain]:
    """A warm-up drain, then ``repeat`` × (bare, Lakestream), then a last bare drain."""
    bootstrap, pid = broker.bootstrap_servers, broker.pid or 0
    settings = bench_settings(bootstrap, workdir)

    def bare() -> DrainRun:
        return bare_drain(settings, bootstrap, topic, events)

    steps: list[tuple[str, Callable[[], DrainRun]]] = [("warm-up", bare)]
    for i in range(1, repeat + 1):
        lake = partial(lakestream_drain, bootstrap, topic, events, workdir / f"run{i}")
        steps += [(f"bare consumer #{i}", bare), (f"Lakestream ingest #{i}", lake)]
    steps.append((f"bare consumer #{repeat + 1}", bare))
    drains = []
    for name, drain in steps:
        cpu = cpu_seconds(pid)
        result = drain()
        drains.append(Drain(name, result, 1e6 * (cpu_seconds(pid) - cpu) / events))
    return drains


def run(args: argparse.Namespace) -> list[str]:
    """Produce the events, drain them in turns, print the figures; return the verdict."""
    banner(
        "Kafka → lake vs a bare consumer",
        f"{args.events:,} transaction events, {args.partitions} partitions, Tansu memory engine, "
        f"{args.repeat} Lakestream and {args.repeat + 1} bare drains, alternating",
    )
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    with embedded_broker() as broker, tempfile.TemporaryDirectory() as tmp:
        produced = produce_events(broker.bootstrap_servers, topic, args.events, args.partitions)
        row("produce (generate + send)", f"{produced.rate:,.0f} ev/s", f"{produced.seconds:.1f} s")
        warmup, *drains = drain_all(broker, topic, args.events, args.repeat, Path(tmp))
    row("warm-up drain (not counted)", f"{warmup.run.steady_rate:,.0f} rec/s")
    for drain in drains:
        print_run(drain.name, drain.run, drain.broker_us)
    lake = [d.run.steady_rate for d in drains if d.name.startswith("Lakestream")]
    bare = [d.run.steady_rate for d in drains if d.name.startswith("bare")]
    row("median Lakestream drain", f"{median(lake):,.0f} rec/s")
    row("median bare drain", f"{median(bare):,.0f} rec/s")
    row("best Lakestream / best bare drain", f"{max(lake) / max(bare):.2f} ×")
    ratio = median(lake) / median(bare)
    row("median Lakestream / median bare drain (the verdict)", f"{ratio:.2f} ×")
    return [verdict("Kafka → lake / bare consumer", ratio, TARGET_RATIO, unit="×")]


def parser() -> argparse.ArgumentParser:
    """Command-line options (sizes) of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=500_000, help="events produced (default 500k)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the topic")
    p.add_argument("--repeat", type=int, default=3, help="Lakestream drains (bare: one more)")
    return p


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the verdict lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
