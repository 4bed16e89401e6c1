"""Lakes for governance tests, written by the real ingest sink and table sink (Delta tables).

A stream feed gets records on each of ``days`` days back from today, in
several Kafka batches (so several manifests carry running totals), plus dead
letters on some days; a table feed gets ``versions`` snapshot versions.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.ingest.tables import TableSink
from lakestream.lake.storage import Storage

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def feed_file(feeds_dir: Path, name: str, **spec: Any) -> None:
    """Declare a feed in ``<feeds_dir>/active/<name>.yaml``."""
    body = {"name": name, "topic": f"t-{name}", "pipeline": "test", **spec}
    path = feeds_dir / "active" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))


STREAM_SPEC: dict[str, Any] = {
    "schema": {"id": "string", "ts": "timestamp", "email": "string"},
    "time_field": "ts",
    "required": ["id", "ts"],
}
TABLE_SPEC: dict[str, Any] = {
    "kind": "table", "layer": "tables", "schema": {"k": "string", "n": "int"}, "key": ["k"],
}


def build_stream(storage: Storage, feed: Feed, today: dt.date, days: int,
                 batches: int = 2, per_day: int = 2, partitions: int = 1) -> dict[str, int]:
    """Commit records dated today, today-1, ... today-(days-1); returns records per date.

    Every 50th day also gets a dead letter (an unparsable record) stamped that day.
    """
    sink = DeltaLakeSink(storage, feed)
    counts: dict[str, int] = {}
    day_list = [today - dt.timedelta(days=i) for i in range(days)]
    for partition in range(partitions):
        sink.recover(feed.topic, partition)
        offset = 0
        for b in range(batches):
            chunk = day_list[b::batches]
            values, stamps = _records(chunk, per_day, partition, counts)
            offsets = list(range(offset, offset + len(values)))
            sink.write(feed.topic, partition, values, [b"k"] * len(values), offsets, stamps)
            offset += len(values)
    sink.publish_metadata()
    return counts


def _records(days: list[dt.date], per_day: int, partition: int,
             counts: dict[str, int]) -> tuple[list[bytes | None], list[int | None]]:
    values: list[bytes | None] = []
    stamps: list[int | None] = []
    for day in days:
        at = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
        millis = int((at - EPOCH).total_seconds() * 1000)
        for i in range(per_day):
            record = {"id": f"{day}-{partition}-{i}", "ts": at.isoformat(),
                      "email": f"u{i}@example.com"}
            values.append(json.dumps(record).encode())
            stamps.append(millis)
        counts[day.isoformat()] = counts.get(day.isoformat(), 0) + per_day
        if day.toordinal() % 50 == 0:
            values.append(b"{not json")
            stamps.append(millis)
    return values, stamps


def build_table(storage: Storage, feed: Feed, versions: int) -> None:
    """Write ``versions`` snapshot versions of a table feed (all kept): a Delta table
    partitioned by ``version``."""
    sink = TableSink(storage, feed, keep=versions + 10)
    sink.load()
    for v in range(versions):
        for k in range(3):
            value = json.dumps({"k": f"key{k}", "n": v * 10 + k}).encode()
            sink.apply(0, v * 3 + k, f"key{k}".encode(), value)
        sink.snapshot()


def build_silver(storage: Storage, today: dt.date, months: int) -> list[str]:
    """``silver/weather_cleaned``: a Delta table with one ``year=/month=`` partition for each
    of the last ``months`` months (as the medallion commits it)."""
    from lakestream.medallion.delta_tables import publish_files, staged_files, write_staged

    written, data = [], []
    first = today.replace(day=1)
    for m in range(months):
        year, month = divmod(first.year * 12 + first.month - 1 - m, 12)
        data.append(pa.table({"city": ["Paris", "Tokyo"], "temperature": [12.5, 20.0],
                              "year": [year] * 2, "month": [month + 1] * 2}))
        written.append(f"year={year:04d}/month={month + 1:02d}")
    schema = write_staged(storage, "_staging/silver/build", pa.concat_tables(data))
    publish_files(storage, "silver/weather_cleaned", staged_files(storage, "_staging/silver/build"),
                  schema, [(int(w[5:9]), int(w[-2:])) for w in written], "build")
    return written
