"""Helpers of the ingest tests: produce events, read the lake back independently."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb

from lakestream.kafka.client import ensure_topics
from lakestream.kafka.producer import produce
from lakestream.sources.generator import TransactionGenerator


def send(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], partitions: int = 4
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
    lake: Path, dataset: str = "streams/feed", columns: str = "*"
) -> list[tuple[Any, ...]]:
    """All rows of a local dataset, read by DuckDB straight from the files."""
    glob = f"{lake}/{dataset}/**/*.parquet"
    hive = "{'year': INTEGER, 'month': INTEGER, 'day': INTEGER}"
    return duckdb.sql(
        f"SELECT {columns} FROM read_parquet('{glob}', hive_partitioning=true, "
        f"hive_types={hive}, union_by_name=true)"
    ).fetchall()


def transaction_ids(messages: list[tuple[bytes | None, bytes]]) -> list[str]:
    """The transaction ids of produced messages."""
    return [json.loads(v)["transaction_id"] for _, v in messages]
