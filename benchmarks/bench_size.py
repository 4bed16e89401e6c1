"""Parquet bytes of the landed stream against the JSON bytes of the messages.

SPEC §9: the lake's Parquet is ≥ 85 % smaller than the JSON messages it holds.
The ratio depends on the batch a file is written from (dictionaries and
compression work per file), so it is measured for the batch sizes the ingest
really writes. The engine writes one batch per Kafka partition per flush:

- ``steady``: the default 5 s flush at 20,000 events/s over 4 partitions
  → 25,000 events per partition batch;
- ``busy``: 100,000 events per partition batch;
- ``max``: the 200,000-record maximum batch (``lake.max_batch_records``).

Each batch also splits by event day (late events land in their own day), as in
the lake. Sizes count every data file of the dataset after commit, including
the Kafka columns the ingest adds; the baseline is the sum of the message
values' bytes (keys excluded), measured on the same events.

    python -m benchmarks.bench_size --events 400000
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs as pafs

from benchmarks.bench_decode_write import PARTITIONS, TOPIC, Events, batches, make_events
from benchmarks.common import banner, delta_sink, row, run_main, verdict, write_batch
from lakestream.feeds import BUILTIN_FEEDS
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import Storage

TARGET_SAVING = 0.85
SCENARIOS = {"steady": 25_000, "busy": 100_000, "max": 200_000}


@dataclass
class Landed:
    """What one scenario landed."""

    batch: int
    events: int
    json_bytes: int
    parquet_bytes: int
    files: int

    @property
    def saving(self) -> float:
        """Share of the JSON bytes the Parquet files save (0.9 = 90 % smaller)."""
        return 1 - self.parquet_bytes / self.json_bytes


def land(events: Events, total: int, batch: int, lake: Path) -> Landed:
    """Write ``total`` events in batches of ``batch`` through the sink; measure the dataset."""
    storage = Storage(pafs.LocalFileSystem(), str(lake), str(lake))
    feed = BUILTIN_FEEDS[0]
    sink = delta_sink(storage, feed, TOPIC, PARTITIONS)
    json_bytes = 0
    for i, (part, start) in enumerate(batches(events, total, batch)):
        write_batch(sink, TOPIC, i % PARTITIONS, part.values, part.keys, start)
        json_bytes += part.json_bytes
    files = live_files(storage, feed.dataset)  # the snapshot's data files (not the log)
    return Landed(batch, total, json_bytes, sum(f.size for f in files), len(files))


def print_landed(name: str, landed: Landed) -> None:
    """The sizes of one scenario."""
    label = f"{name} ({landed.batch:,}/batch)"
    row(f"{label}: JSON → Parquet", f"{landed.json_bytes / 1e6:,.1f} → "
        f"{landed.parquet_bytes / 1e6:,.1f} MB", f"{landed.files} files")  # fmt: skip
    per_event = landed.parquet_bytes / landed.events
    row(f"{label}: Parquet smaller by", f"{landed.saving:.1%}", f"{per_event:,.0f} B/event")


def run(args: argparse.Namespace) -> list[str]:
    """Land the same events once per scenario; print the sizes; return the verdicts."""
    banner(
        "Parquet size vs the JSON messages",
        f"{args.events:,} distinct generator events per scenario, snappy Parquet, local lake",
    )
    events = make_events(args.events)
    chosen = {name: SCENARIOS[name] for name in args.scenarios}
    results: dict[str, Landed] = {}
    with tempfile.TemporaryDirectory(prefix="lakestream-bench-") as tmp:
        for name, batch in chosen.items():
            results[name] = land(events, args.events, batch, Path(tmp) / name)
    row("JSON per event (baseline)", f"{events.json_bytes / args.events:,.0f} B")
    for name, landed in results.items():
        print_landed(name, landed)
    return [
        verdict(f"Parquet saving, {name} batches", 100 * r.saving, 100 * TARGET_SAVING, unit=" %")
        for name, r in results.items()
    ]


def parser() -> argparse.ArgumentParser:
    """Command-line options (sizes) of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=400_000, help="events landed per scenario")
    p.add_argument(
        "--scenarios", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS),
        help="batch-size scenarios to measure",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the verdict lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
