"""Message bytes → committed, partitioned Parquet with the broker taken out, per core.

SPEC §9: ≥ 150,000 transaction events/s per core from message bytes to
committed, date-partitioned Parquet. The records are already in memory, so
this isolates what Lakestream itself costs: ``DeltaLakeSink.write`` (decode JSON
into Arrow, check required fields, add the Kafka columns, split by event day,
write snappy Parquet through delta-rs and commit one Delta log entry carrying
the partition's offsets) on batches of the size the engine flushes, on a local lake.

Three runs on the same events:

- Lakestream with pyarrow's default thread pools (events per wall second and
  per CPU-second of the whole process, every thread counted);
- Lakestream with pyarrow limited to one CPU and one I/O thread (one core);
- the baseline: DuckDB's own JSON → Parquet copy of the same events from an
  NDJSON file, ``SET threads=1``.

One batch is written first and not counted (allocator and page-cache warm-up;
a long-running ingest is always warm).

    python -m benchmarks.bench_decode_write --events 600000 --batch-size 200000
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyarrow import fs as pafs

from benchmarks.common import (
    Clock,
    banner,
    delta_sink,
    generate,
    per_second,
    row,
    run_main,
    timed,
    verdict,
    write_batch,
)
from lakestream.feeds import BUILTIN_FEEDS, Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.lake.storage import Storage

TARGET_PER_CORE = 150_000
TOPIC = "transactions"
PARTITIONS = 4


@dataclass
class Events:
    """In-memory columns of a partition's buffer, as the engine hands them to the sink."""

    values: list[bytes | None]
    keys: list[bytes | None]

    @property
    def json_bytes(self) -> int:
        """Total bytes of the JSON messages."""
        return sum(len(v) for v in self.values if v)


@dataclass
class Result:
    """One measured configuration."""

    events: int
    json_bytes: int
    clock: Clock

    @property
    def wall_rate(self) -> float:
        """Events per second of wall time."""
        return per_second(self.events, self.clock.wall)

    @property
    def cpu_rate(self) -> float:
        """Events per CPU-second (all threads of the process)."""
        return per_second(self.events, self.clock.cpu)

    @property
    def mb_per_s(self) -> float:
        """JSON megabytes per second of wall time."""
        return per_second(self.json_bytes / 1e6, self.clock.wall)


def make_events(distinct: int) -> Events:
    """``distinct`` generator events (the batches cycle through them)."""
    pool = generate(distinct)
    return Events([v for _, v in pool], [k for k, _ in pool])


def batches(events: Events, total: int, size: int) -> Iterator[tuple[Events, int]]:
    """``(batch, first offset)`` covering ``total`` events drawn round-robin from ``events``."""
    n = len(events.values)
    offset = 0
    while offset < total:
        take = min(size, total - offset)
        idx = [(offset + i) % n for i in range(take)]
        yield Events([events.values[i] for i in idx], [events.keys[i] for i in idx]), offset
        offset += take


def lakestream_write(events: Events, total: int, size: int, feed: Feed, lake: Path) -> Result:
    """Write ``total`` events through ``DeltaLakeSink.write`` in batches of ``size``; time it."""
    storage = Storage(pafs.LocalFileSystem(), str(lake), str(lake))
    sink = delta_sink(storage, feed, TOPIC, PARTITIONS)
    prepared = [(i % PARTITIONS, b, start)
                for i, (b, start) in enumerate(batches(events, total + size, size))]
    warm_partition, warm, warm_start = prepared.pop(0)
    _write(sink, warm_partition, warm, warm_start)  # not counted
    clock, json_bytes, written = Clock(), 0, 0
    for partition, batch, start in prepared:
        with timed() as one:
            written += _write(sink, partition, batch, start)
        clock += one
        json_bytes += batch.json_bytes
    return Result(written, json_bytes, clock)


def _write(sink: DeltaLakeSink, partition: int, batch: Events, start: int) -> int:
    stats = write_batch(sink, TOPIC, partition, batch.values, batch.keys, start)
    if stats.records != len(batch.values):
        raise RuntimeError(f"{len(batch.values) - stats.records} records were rejected")
    return stats.records


@contextmanager
def single_core() -> Iterator[None]:
    """Limit pyarrow to one CPU thread and one I/O thread for the block."""
    cpu, io = pa.cpu_count(), pa.io_thread_count()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    try:
        yield
    finally:
        pa.set_cpu_count(cpu)
        pa.set_io_thread_count(io)


def duckdb_copy(events: Events, total: int, folder: Path) -> Result:
    """DuckDB's JSON → snappy Parquet copy of the same events on one thread (the baseline)."""
    import duckdb

    source, target = folder / "events.ndjson", folder / "events.parquet"
    with source.open("wb") as out:
        for batch, _ in batches(events, total, 100_000):
            out.write(b"\n".join(v for v in batch.values if v) + b"\n")
    con = duckdb.connect()
    con.execute("SET threads=1")
    with timed() as clock:
        con.execute(
            f"COPY (SELECT * FROM read_json('{source}')) TO '{target}' "
            "(FORMAT parquet, COMPRESSION snappy)"
        )
    con.close()
    return Result(total, source.stat().st_size, clock)


def print_result(name: str, result: Result) -> None:
    """The rates of one configuration."""
    row(f"{name}: events/s (wall)", f"{result.wall_rate:,.0f}", f"{result.mb_per_s:,.0f} MB/s")
    row(f"{name}: events per CPU-second", f"{result.cpu_rate:,.0f}")


def run(args: argparse.Namespace) -> list[str]:
    """Measure the three configurations on the same events; return the verdicts."""
    banner(
        "Message bytes → committed partitioned Parquet (broker taken out)",
        f"{args.events:,} events in batches of {args.batch_size:,} "
        f"({args.distinct:,} distinct), local lake, built-in transaction_stream feed",
    )
    events = make_events(args.distinct)
    feed = BUILTIN_FEEDS[0]
    with tempfile.TemporaryDirectory(prefix="lakestream-bench-") as tmp:
        threaded = lakestream_write(events, args.events, args.batch_size, feed, Path(tmp) / "a")
        with single_core():
            one = lakestream_write(events, args.events, args.batch_size, feed, Path(tmp) / "b")
        duck = duckdb_copy(events, args.events, Path(tmp))
    row("JSON per event", f"{threaded.json_bytes / threaded.events:,.0f} B")
    print_result("Lakestream, pyarrow default threads", threaded)
    print_result("Lakestream, pyarrow 1 thread", one)
    print_result("DuckDB COPY read_json → Parquet, 1 thread", duck)
    row("ratio Lakestream 1 thread / DuckDB 1 thread", f"{one.wall_rate / duck.wall_rate:.2f} ×")
    return [
        verdict("decode+write events per CPU-second, 1 thread", one.cpu_rate, TARGET_PER_CORE),
        verdict("decode+write events/s of wall time, 1 thread", one.wall_rate, TARGET_PER_CORE),
        verdict("decode+write events per CPU-second, threads", threaded.cpu_rate, TARGET_PER_CORE),
    ]


def parser() -> argparse.ArgumentParser:
    """Command-line options (sizes) of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=600_000, help="events written per run")
    p.add_argument("--batch-size", type=int, default=200_000, help="events per sink.write")
    p.add_argument("--distinct", type=int, default=200_000, help="distinct generated events")
    return p


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the verdict lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
