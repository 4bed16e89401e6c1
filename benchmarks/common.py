"""What every benchmark shares: reproducible events, a broker, the lake's sink, timing,
statistics, printing, and the ``main`` every ``bench_*`` module ends with.

Benchmarks are measurements, not tests: they print figures and a ratio against
a baseline measured in the same run on the same machine, and never fail on a
number. Each figure says which SPEC §9 target it is compared with.

A benchmark module has ``parser()`` (its options), ``run(args)`` (measure,
print the figures, return the verdict lines) and
``main(argv) = run_main(run, parser(), argv)``, which ``run_all`` calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from lakestream.config import Settings
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.ingest.sink import FlushStats
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics, producer_config
from lakestream.kafka.producer import ProduceReport, produce
from lakestream.lake.storage import Storage
from lakestream.sources.generator import TransactionGenerator

# A fixed clock makes the events (and so the Parquet sizes) identical from run to run;
# the generator still spreads 2 % of them over the previous three days (late events).
FIXED_CLOCK = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
DEFAULT_SEED = 7
KAFKA_TS_MS = int(FIXED_CLOCK.timestamp() * 1000)


def generator(seed: int = DEFAULT_SEED) -> TransactionGenerator:
    """The transaction generator on the fixed clock."""
    return TransactionGenerator(seed=seed, now=lambda: FIXED_CLOCK)


def generate(n: int, seed: int = DEFAULT_SEED) -> list[tuple[bytes, bytes]]:
    """``n`` distinct ``(key, JSON value)`` transaction messages."""
    return list(generator(seed).messages(n))


@contextmanager
def embedded_broker() -> Iterator[EmbeddedBroker]:
    """A Tansu broker (memory engine) on a free loopback port, stopped by PID afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="lakestream-bench-broker-") as folder,
        EmbeddedBroker(Path(folder)) as broker,
    ):
        yield broker


def produce_events(
    bootstrap: str, topic: str, n: int, partitions: int = 4, seed: int = DEFAULT_SEED
) -> ProduceReport:
    """Create ``topic`` and produce ``n`` fresh generator events into it (keyed by user)."""
    ensure_topics(bootstrap, [topic], partitions)
    settings = bench_settings(bootstrap, Path(tempfile.gettempdir()))
    report = produce(producer_config(settings, bootstrap), topic, generator(seed).messages(n))
    if report.delivered != n:
        raise RuntimeError(f"only {report.delivered} of {n} events were acknowledged")
    return report


def bench_settings(bootstrap: str, workdir: Path, **lake: Any) -> Settings:
    """Settings for a run: the given broker, a lake and feeds folder under ``workdir``."""
    return Settings.model_validate(settings_dict(bootstrap, workdir, **lake))


def settings_dict(bootstrap: str, workdir: Path, **lake: Any) -> dict[str, Any]:
    """The ``lakestream.yaml`` content of :func:`bench_settings`."""
    return {
        "data_dir": str(workdir / "data"),
        "feeds_dir": str(workdir / "feeds"),
        "kafka": {"bootstrap_servers": bootstrap, "session_timeout_ms": 2000, "partitions": 4},
        "lake": {"root": str(workdir / "lake"), **lake},
    }


def write_feed(feeds_dir: Path, name: str, topic: str) -> Path:
    """Declare a transactions-shaped feed on ``topic`` (the built-in schema and checks)."""
    from lakestream.decode.schemas import TRANSACTION_REQUIRED

    spec = {
        "name": name,
        "topic": topic,
        "pipeline": "bench",
        "schema": "transactions",
        "time_field": "event_time",
        "required": list(TRANSACTION_REQUIRED),
    }
    path = feeds_dir / "active" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def delta_sink(storage: Storage, feed: Feed, topic: str, partitions: int = 1) -> DeltaLakeSink:
    """The ingest's Delta sink of ``feed``, ready to land ``partitions`` partitions of ``topic``."""
    sink = DeltaLakeSink(storage, feed)
    for partition in range(partitions):
        sink.recover(topic, partition)
    return sink


def write_batch(sink: DeltaLakeSink, topic: str, partition: int, values: Sequence[bytes | None],
                keys: Sequence[bytes | None], first_offset: int) -> FlushStats:
    """Land one batch through ``sink`` as the ingest does, at offsets from ``first_offset``.

    The Kafka timestamps follow the fixed clock (one millisecond per offset).
    """
    offsets = list(range(first_offset, first_offset + len(values)))
    timestamps: list[int | None] = [KAFKA_TS_MS + o for o in offsets]
    return sink.write(topic, partition, list(values), list(keys), offsets, timestamps)


@dataclass
class Clock:
    """Wall and process-CPU seconds of a block (CPU time counts every thread)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __iadd__(self, other: Clock) -> Clock:
        self.wall += other.wall
        self.cpu += other.cpu
        return self


@contextmanager
def timed() -> Iterator[Clock]:
    """Measure the wall and CPU time of the ``with`` block into the yielded :class:`Clock`."""
    clock = Clock()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield clock
    finally:
        clock.wall = time.perf_counter() - wall
        clock.cpu = time.process_time() - cpu


def per_second(count: float, seconds: float) -> float:
    """``count / seconds``, 0 when no time passed."""
    return count / seconds if seconds > 0 else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds another process (every thread) has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def banner(title: str, what: str) -> None:
    """Print a benchmark's title, what it measures and the machine it runs on."""
    cores, load = os.cpu_count(), os.getloadavg()[0]
    print(f"\n=== {title} ===")
    print(what)
    print(
        f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at start (other work on the machine skews wall-time figures)"
    )


def row(label: str, value: str, note: str = "") -> None:
    """Print one aligned figure."""
    print(f"  {label:<56} {value:>12}  {note}".rstrip())


def verdict(
    name: str, value: float, target: float, unit: str = "", higher_is_better: bool = True
) -> str:
    """One line comparing a figure with its SPEC §9 target."""
    met = value >= target if higher_is_better else value < target
    sign = "≥" if higher_is_better else "<"
    shown = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    wanted = f"{target:,.2f}" if abs(target) < 100 else f"{target:,.0f}"
    return f"{name}: {shown}{unit} (target {sign} {wanted}{unit}) {'MET' if met else 'MISSED'}"


def run_main(run: Callable[[argparse.Namespace], list[str]], options: argparse.ArgumentParser,
             argv: list[str] | None) -> list[str]:
    """A benchmark's ``main``: parse ``argv`` (``None``: the command line) with ``options``,
    run, then print the verdict lines and return them (``run_all`` sums them up)."""
    lines = run(options.parse_args(argv))
    if lines:
        print("\n".join(lines))
    return lines
