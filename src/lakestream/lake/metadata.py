"""``_metadata.json`` of a dataset, rebuilt from its ledger after every commit.

It is a derived, human-readable summary (SPEC §5): the ledger stays the truth.
Two consumers of one group may rewrite it concurrently; each rewrite reads
every partition's newest manifest, so the last write is complete up to the
batches committed before it started, and the next flush catches up.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from lakestream.lake.deletions import read_removed
from lakestream.lake.layout import METADATA
from lakestream.lake.ledger import OffsetLedger
from lakestream.lake.storage import Storage

if TYPE_CHECKING:
    from lakestream.feeds import Feed


def rebuild_metadata(storage: Storage, feed: Feed) -> dict[str, Any]:
    """Aggregate the ledger (or Delta log) of ``feed`` into ``<dataset>/_metadata.json``."""
    from lakestream.lake.delta import is_delta_table
    from lakestream.lake.delta_metadata import delta_metadata

    if is_delta_table(storage, feed.dataset):
        return delta_metadata(storage, feed)
    manifests = OffsetLedger(storage, feed.dataset).all_latest()
    dates: dict[str, int] = {}
    offsets: dict[str, dict[str, int | None]] = {}
    records = rejected = size = files = 0
    schema: list[dict[str, str]] = []
    for m in manifests:
        t = m.totals
        records, rejected = records + t.records, rejected + t.rejected
        size, files = size + t.bytes, files + t.files
        for day, n in t.dates.items():
            dates[day] = dates.get(day, 0) + n
        offsets[f"{m.topic}:{m.partition}"] = {"first": t.first_offset, "last": m.end_offset}
        schema = _merge_schema(schema, m.schema)
    removed = read_removed(storage, feed.dataset)  # what retention deleted (lake/deletions.py)
    left = removed.subtract({"records": records, "rejected": rejected, "bytes": size,
                             "files": files}, dates)
    records, rejected, size, files = left["records"], left["rejected"], left["bytes"], left["files"]
    previous = read_metadata(storage, feed.dataset)
    meta = {
        "dataset": feed.name,
        "kind": feed.kind,
        "layer": feed.layer,
        "path": storage.url(feed.dataset),
        "source": {"type": "kafka", "topic": feed.topic},
        "format": "parquet",
        "compression": "snappy",
        "partitioning": ["year", "month", "day"],
        "partition_field": feed.partition_field,
        "last_export": max((m.committed_at for m in manifests), default=None),
        "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "records": records,
        "rejected_records": rejected,
        "bytes": size,
        "files": files,
        "partitions": [{"date": d, "records": dates[d]} for d in sorted(dates)],
        "schema": _merge_schema(previous.get("schema", []) if previous else [], schema),
        "kafka_offsets": offsets,
    }
    if removed.runs:
        meta["retention"] = removed.summary()
    storage.write_atomic(f"{feed.dataset}/{METADATA}", json.dumps(meta, indent=2).encode())
    return meta


def read_metadata(storage: Storage, dataset: str) -> dict[str, Any] | None:
    """The dataset's ``_metadata.json``, or ``None`` if there is none yet."""
    try:
        data = json.loads(storage.read(f"{dataset}/{METADATA}"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _merge_schema(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    merged = {f["name"]: f for f in old}
    for f in new:
        merged[f["name"]] = f
    return list(merged.values())
