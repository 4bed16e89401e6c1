"""Commit latency of one Delta append (with Kafka offsets) vs writing the same Parquet file alone.

Issue #16 asks for the p50/p99 latency of one Delta commit, locally and on
SeaweedFS. Each sample lands one batch of transaction events through
:class:`lakestream.lake.delta.DeltaDataset` (data file + log entry carrying the
partition's offsets, compare-and-swap); the baseline, measured alternately in
the same run on the same store, writes the same batch as one Parquet file
with pyarrow and nothing else. The ratio is what the transaction log costs.
There is no SPEC §9 target for it; the freshness target (p99 ≤ flush
interval + 2 s) is what it feeds.

    python -m benchmarks.bench_delta_commit [--batches 60] [--batch-size 2000] [--stores local s3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import banner, generate, percentile, row, run_main
from lakestream.config import S3Settings
from lakestream.decode.json_batch import JsonDecoder
from lakestream.decode.schemas import TRANSACTION_REQUIRED, arrow_schema
from lakestream.lake.delta import DeltaDataset, OffsetRange
from lakestream.lake.storage import Storage, open_storage


def decoded_batch(size: int) -> pa.Table:
    """``size`` generator events decoded as the ingest decodes them, with day partitions."""
    values = [v for _, v in generate(size)]
    table = JsonDecoder(arrow_schema("transactions", "event_time"),
                        TRANSACTION_REQUIRED).decode(values).table
    assert table is not None
    days = table.column("event_time").cast(pa.timestamp("us", "UTC"))
    import pyarrow.compute as pc

    return (table.append_column("year", pc.strftime(days, "%Y"))
            .append_column("month", pc.strftime(days, "%m"))
            .append_column("day", pc.strftime(days, "%d")))


def measure(storage: Storage, batch: pa.Table, batches: int) -> tuple[list[float], list[float]]:
    """Seconds per Delta commit and per bare Parquet write, alternating."""
    dataset = DeltaDataset(storage, f"streams/bench-{uuid.uuid4().hex[:8]}",
                           ["year", "month", "day"])
    bare_dir = f"bare-{uuid.uuid4().hex[:8]}"
    if storage.is_local:
        storage.fs.create_dir(storage.full(bare_dir))
    delta_s, bare_s = [], []
    expected = None
    for i in range(batches):
        last = (i + 1) * batch.num_rows - 1
        start = time.perf_counter()
        dataset.append(batch, [OffsetRange("transactions", 0, expected, last)])
        delta_s.append(time.perf_counter() - start)
        expected = last
        start = time.perf_counter()
        with storage.fs.open_output_stream(storage.full(f"{bare_dir}/{i}.parquet")) as out:
            pq.write_table(batch, out, compression="snappy")
        bare_s.append(time.perf_counter() - start)
    return delta_s[1:], bare_s[1:]  # the first commit creates the table


def run(args: argparse.Namespace) -> list[str]:
    """Measure each store; print the latencies; return one line per store."""
    banner("Delta commit latency",
           f"{args.batches} commits of {args.batch_size:,} events each (one Kafka partition), "
           "alternating with bare Parquet writes of the same batch")
    batch = decoded_batch(args.batch_size)
    lines = []
    with tempfile.TemporaryDirectory(prefix="lakestream-bench-delta-") as tmp:
        for store in args.stores:
            if store == "local":
                storage = open_storage(str(Path(tmp) / "lake"), S3Settings())
                lines.append(report("local disk", *measure(storage, batch, args.batches)))
            else:
                from tests.support.seaweedfs import SeaweedFS

                with SeaweedFS(Path(tmp) / "seaweedfs") as server:
                    server.create_bucket("bench")
                    s3 = S3Settings.model_validate({
                        "endpoint": server.endpoint_url, "access_key": server.access_key,
                        "secret_key": server.secret_key, "region": server.region})
                    storage = open_storage("s3://bench/lake", s3)
                    lines.append(report("SeaweedFS (S3)", *measure(storage, batch,
                                                                   args.batches)))
    return lines


def report(store: str, delta_s: list[float], bare_s: list[float]) -> str:
    """Print p50/p99 of both and return the summary line."""
    for name, values in (("Delta append + offsets", delta_s), ("bare Parquet write", bare_s)):
        row(f"{store}: {name} p50 / p99",
            f"{1000 * percentile(values, 0.5):,.0f} / {1000 * percentile(values, 0.99):,.0f} ms")
    ratio = statistics.median(delta_s) / statistics.median(bare_s)
    return (f"Delta commit latency on {store}: p50 {1000 * percentile(delta_s, 0.5):,.0f} ms, "
            f"p99 {1000 * percentile(delta_s, 0.99):,.0f} ms ({ratio:.1f} × a bare Parquet "
            "write of the batch, median over median)")


def parser() -> argparse.ArgumentParser:
    """Command-line options (sizes) of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=60, help="commits per store")
    p.add_argument("--batch-size", type=int, default=2000, help="events per commit")
    p.add_argument("--stores", nargs="+", choices=["local", "s3"], default=["local", "s3"])
    return p


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the summary lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
