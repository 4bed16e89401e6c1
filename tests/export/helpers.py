"""Helpers of the export tests: a configured facade, and what a day of the lake holds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import yaml

from lakestream.api import Lakestream
from lakestream.ingest.delta_sink import DATE_COLUMNS
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import Storage
from tests.conftest import settings_for

T = TypeVar("T")


def api_for(workdir: Path, lake: dict[str, Any] | None = None, **env: str) -> Lakestream:
    """A facade on ``workdir``'s configuration (lake settings and environment overridden)."""
    if lake:
        config = yaml.safe_load((workdir / "lakestream.yaml").read_text())
        config["lake"].update(lake)
        (workdir / "lakestream.yaml").write_text(yaml.safe_dump(config))
    api = Lakestream(settings_for(workdir, **env))
    api.batch.exports.idle_timeout_s = 1.0  # the session broker is local: drained fast
    return api


def bootstrap(workdir: Path) -> str:
    """The session broker of ``workdir``."""
    servers = settings_for(workdir).kafka.bootstrap_servers
    assert servers
    return servers


def day_rows(api: Lakestream, year: int, month: int, day: int,
             columns: str = "transaction_id, event_time, amount, _kafka_partition, _kafka_offset"
             ) -> list[tuple[Any, ...]]:
    """The rows of one day of dataset ``feed`` through Lakestream's reader, sorted."""
    _, rows = api.query(f"SELECT {columns} FROM feed WHERE year = {year} AND month = {month} "
                        f"AND day = {day} ORDER BY ALL")
    return rows


def glob_count(lake: Path, year: int, month: int, day: int) -> tuple[int, int]:
    """(rows, distinct transaction ids) of one local day, read by a plain DuckDB glob."""
    folder = lake / f"streams/feed/year={year:04d}/month={month:02d}/day={day:02d}"
    sql = (f"SELECT count(*), count(DISTINCT transaction_id) FROM "
           f"read_parquet('{folder}/*.parquet', union_by_name = true)")
    for _ in range(20):
        try:
            count, distinct = duckdb.sql(sql).fetchall()[0]
            return int(count), int(distinct)
        except duckdb.IOException:  # listed one folder, opened after the swap: read again
            continue
    raise AssertionError("the day stayed unreadable")


def make_delta(storage: Storage, *datasets: str) -> None:
    """Make ``datasets`` empty Delta tables (what the ingest creates for a new dataset once
    new datasets are Delta): from then on every writer and reader takes their Delta path."""
    for rel in datasets:
        empty = pa.table({c: pa.array([], pa.string()) for c in DATE_COLUMNS})
        DeltaDataset(storage, rel, DATE_COLUMNS).append(empty)


def scan_while(work: Callable[[], Any], scan: Callable[[], T]) -> list[T]:
    """Run ``scan`` in a loop on another thread while ``work`` runs; every result."""
    seen: list[T] = []
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            seen.append(scan())

    reader = threading.Thread(target=loop)
    reader.start()
    try:
        work()
    finally:
        done.set()
        reader.join()
    assert len(seen) >= 3
    return seen
