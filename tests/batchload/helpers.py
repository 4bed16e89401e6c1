"""Helpers of the export tests: a configured facade, and what a day of the lake holds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lakestream.api import Lakestream
from lakestream.lake.delta import storage_options
from lakestream.lake.storage import Storage
from tests.conftest import settings_for

T = TypeVar("T")


def api_for(workdir: Path, lake: dict[str, Any] | None = None, /, **env: str) -> Lakestream:
    """A facade on ``workdir``'s configuration (lake settings and environment overridden).

    ``lake`` is positional only, so that no environment variable can stand for it.
    """
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


def delta_count(storage: Storage, year: int, month: int, day: int,
                rel: str = "streams/feed") -> tuple[int, int]:
    """(rows, distinct transaction ids) of one day, read by deltalake from a fresh log read
    (an independent Delta reader: pyarrow over the snapshot's files)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    from deltalake import DeltaTable

    table = DeltaTable(storage.url(rel), storage_options=storage_options(storage))
    where = ((pads.field("year") == f"{year:04d}") & (pads.field("month") == f"{month:02d}")
             & (pads.field("day") == f"{day:02d}"))
    ids = table.to_pyarrow_dataset().to_table(columns=["transaction_id"], filter=where)
    return ids.num_rows, len(pc.unique(ids.column("transaction_id")))


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
