"""Freshness and small files under steady load: produce → visible in a fresh query (issue #16).

A ``lakestream ingest`` process (its own process, the default flush interval
unless ``--flush-interval`` says otherwise) lands a topic fed at a steady
rate. Once a second a *probe* event with a unique transaction id is produced;
a checker opens a fresh lake reader (a new snapshot of the Delta log, what a
fresh ``lakestream query`` sees) in a loop and notes when each probe becomes
visible. The figure is produce → visible, p50/p99, against SPEC §9 (p99 ≤
flush interval + 2 s). The checker's own loop adds up to one reader round
(printed) to every sample.

At the end it counts the live files of the day partition the load went to
(in-band compaction on, as by default), then runs ``lakestream compact`` and
counts again: small files are the field's top complaint.

    python -m benchmarks.bench_freshness [--minutes 10] [--rate 2000] [--partitions 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from confluent_kafka import Producer

from benchmarks.common import (
    banner,
    cpu_seconds,
    embedded_broker,
    generator,
    percentile,
    run_main,
    settings_dict,
    write_feed,
)
from lakestream.config import S3Settings
from lakestream.errors import LakestreamError
from lakestream.kafka.client import ensure_topics
from lakestream.lake.reader import LakeReader
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import open_storage

TOPIC = "bench_fresh"
FEED = "fresh"


class Load(threading.Thread):
    """Produces ``rate`` events a second in 20 slices, plus one probe a second."""

    def __init__(self, bootstrap: str, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.rate, self.seconds = rate, seconds
        self.probes: dict[str, float] = {}
        self.produced = 0

    def run(self) -> None:
        events = generator().messages(10**9)
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < self.seconds:
            for _ in range(self.rate // 20):
                key, value = next(events)
                self.producer.produce(TOPIC, value, key)
                self.produced += 1
            if tick % 20 == 0:
                key, value = next(events)
                event = json.loads(value)
                event["transaction_id"] = f"probe-{tick // 20}"
                self.probes[event["transaction_id"]] = time.time()
                self.producer.produce(TOPIC, json.dumps(event).encode(), key)
            self.producer.poll(0)
            tick += 1
            time.sleep(max(0.0, start + tick / 20 - time.monotonic()))
        self.producer.flush(30)


def watch(lake: Path, load: Load, until: float) -> tuple[dict[str, float], list[float]]:
    """When each probe became visible to a fresh reader; and each reader round's length."""
    storage = open_storage(str(lake), S3Settings())
    seen: dict[str, float] = {}
    rounds: list[float] = []
    while time.time() < until and (load.is_alive() or len(seen) < len(load.probes)):
        began = time.time()
        try:
            reader = LakeReader(storage)
            try:
                _, rows = reader.query(f"SELECT transaction_id FROM {FEED} "
                                       "WHERE transaction_id LIKE 'probe-%'")
            finally:
                reader.close()
        except LakestreamError:  # no view before the first commit
            rows = []
        now = time.time()
        for (probe,) in rows:
            seen.setdefault(probe, now)
        rounds.append(now - began)
        time.sleep(0.05)
    return seen, rounds


def files_per_day(lake: Path) -> dict[str, int]:
    """Live files per day partition of the feed's dataset."""
    storage = open_storage(str(lake), S3Settings())
    counts: dict[str, int] = {}
    for f in live_files(storage, f"streams/{FEED}"):
        day = f.path.split("/")[2:5]
        counts["/".join(day)] = counts.get("/".join(day), 0) + 1
    return counts


def run(args: argparse.Namespace) -> list[str]:
    """Run the load, the ingest and the checker; return the figures."""
    banner("Freshness under steady load (issue #16)",
           f"{args.rate} events/s for {args.minutes} min into {args.partitions} partitions; "
           "produce → visible in a fresh reader, p50/p99; files per day partition")
    with tempfile.TemporaryDirectory(prefix="lakestream-bench-fresh-") as folder, \
            embedded_broker() as broker:
        work = Path(folder)
        ensure_topics(broker.bootstrap_servers, [TOPIC], args.partitions)
        config = settings_dict(broker.bootstrap_servers, work, flush_interval_s=args.flush_interval)
        (work / "lakestream.yaml").write_text(yaml.safe_dump(config))
        write_feed(work / "feeds", FEED, TOPIC)
        cli = [sys.executable, "-m", "lakestream", "--config", str(work / "lakestream.yaml")]
        ingest = subprocess.Popen([*cli, "ingest", "--feed", FEED], stdout=subprocess.DEVNULL,
                                  stderr=open(work / "ingest.log", "wb"),  # noqa: SIM115
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            load = Load(broker.bootstrap_servers, args.rate, args.minutes * 60)
            load.start()
            seen, rounds = watch(work / "lake", load, time.time() + args.minutes * 60 + 60)
            load.join()
            cpu = cpu_seconds(ingest.pid)
        finally:
            ingest.terminate()
            ingest.wait(60)
        delays = sorted(seen[p] - load.probes[p] for p in seen)
        missing = len(load.probes) - len(seen)
        before = files_per_day(work / "lake")
        subprocess.run([*cli, "compact", "--feed", FEED], check=True,
                       stdout=subprocess.DEVNULL)
        after = files_per_day(work / "lake")
    busiest = max(before, key=lambda d: before[d]) if before else "-"
    target = args.flush_interval + 2
    lines = [
        f"events produced: {load.produced:,} + {len(load.probes)} probes; probes never seen: "
        f"{missing}",
        f"ingest process CPU: {cpu:.0f} s for {load.produced:,} events = "
        f"{load.produced / max(cpu, 1e-9):,.0f} events per CPU-second (at {args.rate}/s)",
        f"produce → visible: p50 {percentile(delays, 0.5):.2f} s, p99 "
        f"{percentile(delays, 0.99):.2f} s (target p99 ≤ {target:.1f} s; reader round "
        f"median {statistics.median(rounds):.2f} s)" if delays else "no probe became visible",
        f"files in the busiest day partition ({busiest}): {before.get(busiest, 0)} with "
        f"in-band compaction, {after.get(busiest, 0)} after `lakestream compact`",
        "files per day partition with in-band compaction → after `lakestream compact`: "
        + ", ".join(f"{d}: {before[d]} → {after.get(d, 0)}" for d in sorted(before)),
    ]
    return lines


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=2000, help="events per second")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--flush-interval", type=float, default=5.0, help="lake.flush_interval_s")
    return p


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the figure lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
