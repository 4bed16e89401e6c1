"""Where things live in the lake (SPEC §5). Every path is relative to the lake root."""

from __future__ import annotations

import datetime as dt

STREAMS = "streams"
TABLES = "tables"
DLQ = "_dlq"
STAGING = "_staging"
LEDGER = "_ledger"
METADATA = "_metadata.json"


def date_partition(day: dt.date) -> str:
    """``year=YYYY/month=MM/day=DD`` for ``day``."""
    return f"year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"


def parse_date_partition(path: str) -> dt.date | None:
    """The date of a ``.../year=/month=/day=/...`` path, or ``None``."""
    parts = dict(p.split("=", 1) for p in path.split("/") if "=" in p)
    try:
        return dt.date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except (KeyError, ValueError):
        return None


def dlq_path(feed: str) -> str:
    """Folder of a feed's dead letters."""
    return f"{DLQ}/{feed}"


def ledger_path(dataset: str, topic: str, partition: int) -> str:
    """Folder of the commit manifests of one Kafka partition of a dataset."""
    return f"{dataset}/{LEDGER}/{topic}/{partition}"


def staging_path(dataset: str, topic: str, partition: int) -> str:
    """Where files of a not-yet-committed batch wait (outside the dataset's glob)."""
    return f"{STAGING}/{dataset.replace('/', '__')}/{topic}-{partition}"


def manifest_name(end_offset: int) -> str:
    """Manifest file name: sorts by the last offset it covers."""
    return f"{end_offset:020d}.json"
