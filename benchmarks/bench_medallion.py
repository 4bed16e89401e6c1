"""Silver and gold throughput of the weather medallion on DuckDB and on Spark (issue 6).

Builds a bronze lake of N weather records (default 1,000,000: 500 cities × 2,000
hours, 1 % re-fetched duplicates, a few bad records) through the real ingest
sink, then times, per engine, on identical copies of it:

* silver: ``SilverBuilder.run()`` (clean, dedup, aggregates, one Delta commit per dataset);
* gold: reading silver with the engine and upserting it into the gold store
  (PostgreSQL on 127.0.0.1:5432 when it answers, else SQLite), a fresh database each.

Prints rows/s for both and the ratio Spark / DuckDB (DuckDB is the baseline).
Spark's session start-up is measured apart and left out of its throughput.

    python -m benchmarks.bench_medallion [--rows 1000000] [--no-spark] [--gold-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import delta_sink, run_main, write_batch
from lakestream.config import S3Settings, Settings
from lakestream.feeds import BUILTIN_FEEDS
from lakestream.lake.storage import Storage, open_storage
from lakestream.medallion.engines import open_engine
from lakestream.medallion.gold import GoldStore, load_gold
from lakestream.medallion.silver import SilverBuilder
from lakestream.sources.openweather import iso_ms
from lakestream.sources.weather_sim import SimulatedWeather

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
BATCH = 100_000


def records(n: int, seed: int = 7) -> Iterator[bytes]:
    """``n`` weather records: simulated documents for 500 cities, hour after hour."""
    sim = SimulatedWeather(seed=seed, missing_rate=0.03, bad_rate=0.004)
    rng = random.Random(seed)
    cities = [f"City{i:03d}" for i in range(500)]
    templates = {c: sim.current(c, START) for c in cities}
    made = 0
    hour = 0
    while made < n:
        at = START + dt.timedelta(hours=hour)
        for city in cities:
            doc = dict(templates[city])
            doc["main"] = {**doc["main"], "temp": round(rng.gauss(12, 8), 2),
                           "humidity": rng.randint(20, 100)}
            doc.update(dt=int(at.timestamp()), city=city, fetched_at=iso_ms(at))
            yield orjson.dumps(doc)
            made += 1
            if rng.random() < 0.01 and made < n:  # a later re-fetch of the same observation
                doc["fetched_at"] = iso_ms(at + dt.timedelta(minutes=7))
                yield orjson.dumps(doc)
                made += 1
            if made >= n:
                return
        hour += 1


def build_bronze(root: Path, n: int) -> Storage:
    """A local lake whose bronze holds ``n`` records, landed by the real ingest sink."""
    storage = open_storage(str(root), S3Settings())
    feed = next(f for f in BUILTIN_FEEDS if f.name == "weather")
    sink = delta_sink(storage, feed, feed.topic)
    batch: list[bytes | None] = []
    offset = 0
    for value in records(n):
        batch.append(value)
        if len(batch) == BATCH:
            write_batch(sink, feed.topic, 0, batch, [None] * len(batch), offset)
            offset, batch = offset + len(batch), []
    if batch:
        write_batch(sink, feed.topic, 0, batch, [None] * len(batch), offset)
    return storage


@contextmanager
def gold_database(explicit: str | None, folder: Path, name: str) -> Iterator[str]:
    """The gold URL for one measurement: ``explicit``, a fresh PostgreSQL database, or SQLite."""
    if explicit:
        yield explicit
        return
    from tests.support.databases import SERVERS

    server = SERVERS["postgresql"]
    if server.problem() is not None:
        yield f"sqlite:///{folder / f'gold-{name}.db'}"
        return
    with server.database("bench_gold") as database:
        yield server.url(database)


def measure(engine_name: str, storage: Storage, gold_url: str, folder: Path) -> dict[str, Any]:
    """Silver and gold timings of one engine on one lake."""
    started = time.monotonic()
    engine = open_engine(engine_name, storage)
    startup = time.monotonic() - started
    try:
        t = time.monotonic()
        silver = SilverBuilder(storage, engine).run()
        silver_s = time.monotonic() - t
        store = GoldStore(Settings.model_validate({"data_dir": str(folder),
                                                   "gold_url": gold_url}))
        store.ensure_schema()
        t = time.monotonic()
        gold = load_gold(store, engine, storage)
        gold_s = time.monotonic() - t
        store.close()
    finally:
        engine.close()
    return {"startup_s": startup, "silver_rows": silver.rows_in, "silver_s": silver_s,
            "silver_out": silver.rows_out, "gold_rows": gold.total, "gold_s": gold_s,
            "gold_url": store.dialect}


def parser() -> argparse.ArgumentParser:
    """Command-line options (sizes) of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--no-spark", action="store_true")
    p.add_argument("--gold-url", default=None)
    return p


def run(args: argparse.Namespace) -> list[str]:
    """Land the bronze, time silver and gold per engine; print the figures; return the summary."""
    folder = Path(tempfile.mkdtemp(prefix="lakestream-bench-medallion-"))
    try:
        t = time.monotonic()
        build_bronze(folder / "duckdb", args.rows)
        print(f"bronze: {args.rows:,} records landed in {time.monotonic() - t:.1f}s")
        engines = ["duckdb"] if args.no_spark else ["duckdb", "spark"]
        results = {}
        for name in engines:
            if name != "duckdb":
                shutil.copytree(folder / "duckdb" / "bronze", folder / name / "bronze")
            lake = open_storage(str(folder / name), S3Settings())
            with gold_database(args.gold_url, folder, name) as url:
                results[name] = measure(name, lake, url, folder)
            _print(name, results[name])
        return _summary(results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _print(name: str, r: dict[str, Any]) -> None:
    print(f"{name:>6}: start-up {r['startup_s']:.1f}s; silver {r['silver_rows']:,} bronze rows "
          f"in {r['silver_s']:.1f}s = {r['silver_rows'] / r['silver_s']:,.0f} rows/s "
          f"({r['silver_out']:,} cleaned rows out); gold {r['gold_rows']:,} rows into "
          f"{r['gold_url']} in {r['gold_s']:.1f}s = {r['gold_rows'] / r['gold_s']:,.0f} rows/s")


def _summary(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    duck = results["duckdb"]
    for step in ("silver", "gold"):
        base = duck[f"{step}_rows"] / duck[f"{step}_s"]
        line = f"medallion {step}: duckdb {base:,.0f} rows/s"
        if "spark" in results:
            spark = results["spark"][f"{step}_rows"] / results["spark"][f"{step}_s"]
            line += f", spark {spark:,.0f} rows/s, spark/duckdb = {spark / base:.2f}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    """Run with command-line options; print and return the summary lines."""
    return run_main(run, parser(), argv)


if __name__ == "__main__":
    main()
