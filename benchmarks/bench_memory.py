"""Peak RSS of ``lakestream ingest`` while it lands 5 million events.

SPEC §9: ingesting 5 million events holds peak RSS under 1 GiB. The ingest
runs as users run it, ``lakestream --config FILE ingest --feed F --until-idle``
in a child process, and its resident set size is sampled every 50 ms with
psutil. The broker's RSS is sampled too and reported separately (not counted:
in production Kafka runs elsewhere).

The baseline, in the same run: a bare confluent-kafka consumer with the same
settings (``consumer_config``) draining the same topic in a child process;
most of its memory is librdkafka's pre-fetch queue, which the ingest has too.

    python -m benchmarks.bench_memory --events 5000000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from benchmarks.common import (
    banner,
    embedded_broker,
    produce_events,
    row,
    run_main,
    settings_dict,
    verdict,
)
from benchmarks.common import write_feed as declare_feed

TARGET_BYTES = 1 << 30
FEED = "bench_memory"
REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


@dataclass
class Sampled:
    """Peak memory of a child process (and of the broker meanwhile)."""

    peak_rss: int
    broker_peak_rss: int
    seconds: float
    returncode: int


def rss(process: psutil.Process) -> int:
    """Resident set size of a process and its children; 0 once it is gone."""
    try:
        procs = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs)
    except psutil.Error:
        return 0


def sample(cmd: list[str], broker_pid: int, log: Path, interval: float = 0.05) -> Sampled:
    """Run ``cmd`` to completion, sampling its RSS and the broker's; output goes to ``log``."""
    broker = psutil.Process(broker_pid)
    peak = broker_peak = 0
    started = time.monotonic()
    with log.open("wb") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            peak = max(peak, rss(watched))
            broker_peak = max(broker_peak, rss(broker))
            time.sleep(interval)
    return Sampled(peak, broker_peak, time.monotonic() - started, child.returncode)


def ingest_command(config: Path) -> list[str]:
    """``lakestream --config FILE ingest --feed F --until-idle`` with this interpreter."""
    script = Path(sys.executable).with_name("lakestream")
    entry = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from lakestream.cli import main; sys.exit(main())"]
    )
    return [*entry, "--config", str(config), "ingest", "--feed", FEED, "--until-idle",
            "--idle-timeout", "5"]  # fmt: skip


def bare_command(config: Path, topic: str, events: int) -> list[str]:
    """This module in bare-consumer mode (the baseline child)."""
    return [sys.executable, "-m", "benchmarks.bench_memory", "--bare-child", str(config), topic,
            str(events)]  # fmt: skip


def bare_child(config: str, topic: str, events: int) -> None:
    """Drain ``events`` records of ``topic`` with a bare consumer (runs in the child)."""
    from benchmarks.bench_ingest_vs_bare import bare_drain
    from lakestream.config import load_settings

    settings = load_settings(config)
    bootstrap = settings.kafka.bootstrap_servers or ""
    drained = bare_drain(settings, bootstrap, topic, events)
    print(f"bare consumer drained {drained.records} records")


def landed_records(config: Path) -> int:
    """Records the ingest committed to the lake (from the Delta log's statistics)."""
    from lakestream.api import Lakestream
    from lakestream.config import load_settings
    from lakestream.lake.snapshot import live_files

    api = Lakestream(load_settings(config))
    dataset = api.feeds.get(FEED).dataset
    return sum(f.records or 0 for f in live_files(api.storage, dataset))


def print_sampled(name: str, s: Sampled) -> None:
    """The peaks of one child."""
    row(f"{name}: peak RSS", f"{s.peak_rss / MIB:,.0f} MiB", f"{s.seconds:.0f} s")
    row(f"{name}: broker peak RSS (not counted)", f"{s.broker_peak_rss / MIB:,.0f} MiB")


def run(args: argparse.Namespace) -> list[str]:
    """Produce, drain with the bare consumer, ingest; print the peaks; return the verdict.

    With ``--bare-child`` this is the baseline's child process: it only drains.
    """
    if args.bare_child:
        config, topic, events = args.bare_child
        bare_child(config, topic, int(events))
        return []
    banner("Peak RSS of the ingest", f"{args.events:,} events, 4 partitions, child processes")
    topic = f"bench-memory-{uuid.uuid4().hex[:8]}"
    with embedded_broker() as broker, tempfile.TemporaryDirectory() as tmp:
        assert broker.pid is not None
        config = Path(tmp) / "lakestream.yaml"
        config.write_text(yaml.safe_dump(settings_dict(broker.bootstrap_servers, Path(tmp))))
        declare_feed(Path(tmp) / "feeds", FEED, topic)
        produced = produce_events(broker.bootstrap_servers, topic, args.events)
        row("produce (generate + send)", f"{produced.rate:,.0f} ev/s", f"{produced.seconds:.0f} s")
        bare = sample(bare_command(config, topic, args.events), broker.pid, Path(tmp) / "bare.log")
        lake = sample(ingest_command(config), broker.pid, Path(tmp) / "ingest.log")
        landed = landed_records(config) if lake.returncode == 0 else 0
        failure = _failure(Path(tmp), bare, lake, landed, args.events)
    print_sampled("bare consumer (baseline)", bare)
    print_sampled("lakestream ingest", lake)
    row("records landed in the lake", f"{landed:,}")
    row("ratio ingest / bare consumer peak RSS", f"{lake.peak_rss / max(bare.peak_rss, 1):.2f} ×")
    if failure:
        return [f"ingest peak RSS: NOT MEASURED ({failure})"]
    return [
        verdict("ingest peak RSS (MiB)", lake.peak_rss / MIB, TARGET_BYTES / MIB,
                higher_is_better=False),
    ]  # fmt: skip


def _failure(folder: Path, bare: Sampled, lake: Sampled, landed: int, events: int) -> str:
    """Why the run does not count (a child failed or the lake is incomplete), or ``""``."""
    for name, run in (("bare", bare), ("ingest", lake)):
        if run.returncode:
            print(f"--- {name} child output (tail) ---")
            print((folder / f"{name}.log").read_text(errors="replace")[-3000:])
            return f"the {name} child exited with status {run.returncode}"
    if landed != events:
        return f"the lake holds {landed:,} of {events:,} records"
    return ""


def parser() -> argparse.ArgumentParser:
    """Command-line options (sizes) of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5_000_000, help="events to ingest (default 5M)")
    p.add_argument("--bare-child", nargs=3, metavar=("CONFIG", "TOPIC", "EVENTS"),
                   help=argparse.SUPPRESS)  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the verdict lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
