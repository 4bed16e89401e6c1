"""Where things live in the lake (docs/lake.md). Every path is relative to the lake root."""

from __future__ import annotations

import datetime as dt

STREAMS = "streams"
TABLES = "tables"
DLQ = "_dlq"
STAGING = "_staging"  # files in flight (a Spark silver run; a lake before Delta)
LEDGER = "_ledger"  # the offset ledger of a lake before Delta (`lake upgrade` reads it)
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
