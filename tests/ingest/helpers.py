"""Helpers of the ingest tests: produce events, read the lake back independently."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from lakestream.kafka.client import ensure_topics
from lakestream.kafka.producer import produce
from lakestream.sources.generator import TransactionGenerator


def send(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]], partitions: int = 4
) -> None:
    """Produce ``messages`` and wait until the broker acknowledged all of them."""
    ensure_topics(bootstrap, [topic], partitions)
    report = produce({"bootstrap.servers": bootstrap, "linger.ms": 5}, topic, messages)
    assert report.delivered == len(messages), report


def generated(n: int, seed: int) -> list[tuple[bytes | None, bytes]]:
    """``n`` generator events as (key, value)."""
    clock = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
    gen = TransactionGenerator(seed=seed, now=lambda: clock)
    return list(gen.messages(n))


def event(transaction_id: str, event_time: str, **extra: Any) -> tuple[bytes, bytes]:
    """One minimal valid transaction-shaped event."""
    body = {
        "transaction_id": transaction_id,
        "event_time": event_time,
        "amount": 10.0,
        "user": {"user_id": "U1", "name": "A"},
        **extra,
    }
    return b"U1", json.dumps(body).encode()


def lake_rows(
    lake: Path | str, dataset: str = "streams/feed", columns: str = "*",
    storage_options: dict[str, str] | None = None,
) -> list[tuple[Any, ...]]:
    """All rows of a dataset as a Delta reader sees them: the files its log holds live.

    Read by delta-rs and DuckDB, not by Lakestream's own code. A plain folder glob
    would also count the files a compaction removed (until vacuum deletes them) and
    the data files of a fenced or failed commit that no log entry references: a
    Delta reader sees neither, and neither may count. ``[]`` before the table's
    first commit.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = f"{lake}/{dataset}"
    try:
        table = DeltaTable(uri, storage_options=storage_options)
    except TableNotFoundError:  # no commit yet (files without a log are not a Delta table)
        return []
    con = duckdb.connect()
    try:  # never to_pyarrow_table (it may abort the process at exit)
        con.register("live", table.to_pyarrow_dataset().to_table())
        return con.sql(f"SELECT {columns} FROM live").fetchall()
    finally:
        con.close()


def log_entries(lake: Path, dataset: str = "streams/feed") -> frozenset[str]:
    """The names of the dataset's Delta log entries: a new one with every commit."""
    folder = lake / dataset / "_delta_log"
    return frozenset(p.name for p in folder.glob("*.json") if p.stem.isdigit())


def transaction_ids(messages: Sequence[tuple[bytes | None, bytes]]) -> list[str]:
    """The transaction ids of produced messages."""
    return [json.loads(v)["transaction_id"] for _, v in messages]
