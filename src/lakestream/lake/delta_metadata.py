"""``_metadata.json`` of a Delta dataset: a human-readable summary read from its log.

Nothing here is a second source of truth (docs/lake.md): records, files, bytes and
partitions come from the snapshot's add actions (their ``numRecords``
statistics), the dead letters from the feed's dead-letter table, the Kafka
offsets from the tables' application transactions, and the time of the last
commit from the log's history.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakestream.decode.schemas import schema_as_json
from lakestream.lake.dead_letters import dead_letter_table
from lakestream.lake.delta import DeltaDataset, app_id, delta_errors
from lakestream.lake.layout import METADATA
from lakestream.lake.storage import Storage

if TYPE_CHECKING:
    from lakestream.feeds import Feed


def snapshot_files(dataset: DeltaDataset) -> pa.Table:
    """The snapshot's live files: ``path``, ``size_bytes``, ``num_records`` and the
    ``partition.*`` and ``min.*``/``max.*`` statistics (empty before the first commit)."""
    table = dataset.table()
    if table is None:
        return pa.table({"path": pa.array([], pa.string()),
                         "size_bytes": pa.array([], pa.int64()),
                         "num_records": pa.array([], pa.int64())})
    return pa.table(table.get_add_actions(flatten=True))


def partitions_seen(files: pa.Table) -> range:
    """Kafka partitions ``0..max`` the files' statistics mention."""
    if "max._kafka_partition" not in files.column_names or files.num_rows == 0:
        return range(0)
    top = pc.max(files.column("max._kafka_partition")).as_py()
    return range(0 if top is None else int(top) + 1)


def kafka_offsets(data: DeltaDataset, dlq: DeltaDataset | None, topic: str,
                  files: pa.Table, dlq_files: pa.Table | None) -> dict[str, dict[str, int | None]]:
    """``"topic:p"`` → ``first`` (lowest offset a live file holds) and ``last`` (the
    partition's application transaction: the last offset landed, rows or dead letters)."""
    seen = max(partitions_seen(files), partitions_seen(dlq_files) if dlq_files is not None
               else range(0), key=len)
    ids = [app_id(topic, p) for p in seen]
    landed = data.transaction_versions(ids)
    if dlq is not None:
        for key, version in dlq.transaction_versions(ids).items():
            if landed.get(key) is None:
                landed[key] = version
    offsets: dict[str, dict[str, int | None]] = {}
    for p in seen:
        last = landed.get(app_id(topic, p))
        if last is None:
            continue
        offsets[f"{topic}:{p}"] = {"first": first_offset(files, p, dlq_files), "last": last}
    return offsets


def first_offset(files: pa.Table, partition: int, dlq_files: pa.Table | None) -> int | None:
    """The lowest offset of Kafka ``partition`` that a live file (rows or dead letters) holds,
    from the files' statistics (``None``: none holds one)."""
    lows = []
    for f in (files, dlq_files):
        if f is None or "min._kafka_offset" not in f.column_names:
            continue
        for lo_p, hi_p, lo in zip(f.column("min._kafka_partition").to_pylist(),
                                  f.column("max._kafka_partition").to_pylist(),
                                  f.column("min._kafka_offset").to_pylist(), strict=True):
            if lo_p is not None and lo is not None and lo_p <= partition <= hi_p:
                lows.append(lo)
    return min(lows) if lows else None


def _dates(files: pa.Table) -> dict[str, int]:
    if "partition.year" not in files.column_names:
        return {}
    days = files.column("partition.day").to_pylist() if "partition.day" in files.column_names \
        else ["01"] * files.num_rows
    dates: dict[str, int] = {}
    for y, m, d, n in zip(files.column("partition.year").to_pylist(),
                          files.column("partition.month").to_pylist(), days,
                          files.column("num_records").to_pylist(), strict=True):
        key = f"{y}-{m}-{d}"
        dates[key] = dates.get(key, 0) + int(n or 0)
    return dates


def _last_commit(dataset: DeltaDataset) -> str | None:
    table = dataset.table(refresh=False)
    if table is None:
        return None
    history = table.history(1)
    if not history:
        return None
    stamp = dt.datetime.fromtimestamp(int(history[0]["timestamp"]) / 1000, dt.UTC)
    return stamp.isoformat(timespec="milliseconds")


def _total(files: pa.Table, column: str) -> int:
    if files.num_rows == 0:
        return 0
    return int(pc.sum(files.column(column)).as_py() or 0)


def delta_metadata(storage: Storage, feed: Feed) -> dict[str, Any]:
    """Summarize the log of ``feed``'s dataset and dead letters into ``_metadata.json``
    (a table feed's: its versions, :func:`~lakestream.lake.table_versions.write_delta_metadata`).

    Raises:
        StorageUnavailableError: The log could not be read (transient: retry).
    """
    with delta_errors(f"read the log of {storage.url(feed.dataset)}"):
        return _delta_metadata(storage, feed)


def _delta_metadata(storage: Storage, feed: Feed) -> dict[str, Any]:
    if feed.kind == "table":
        from lakestream.lake.table_versions import write_delta_metadata

        return write_delta_metadata(storage, feed.name, feed.dataset, feed.topic, feed.layer,
                                    feed.key)
    data = DeltaDataset(storage, feed.dataset)
    dlq = dead_letter_table(storage, feed.name)
    files, dlq_files = snapshot_files(data), snapshot_files(dlq)
    table = data.table(refresh=False)
    schema = [] if table is None else schema_as_json(pa.schema(
        [f for f in pa.schema(table.schema().to_arrow()) if f.name not in data.partition_by
         and f.name not in ("year", "month", "day")]))
    dates = _dates(files)
    meta: dict[str, Any] = {
        "dataset": feed.name,
        "kind": feed.kind,
        "layer": feed.layer,
        "path": storage.url(feed.dataset),
        "source": {"type": "kafka", "topic": feed.topic},
        "format": "delta",
        "compression": "snappy",
        "partitioning": ["year", "month", "day"],
        "partition_field": feed.partition_field,
        "last_export": _last_commit(data),
        "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "records": _total(files, "num_records"),
        "rejected_records": _total(dlq_files, "num_records"),
        "bytes": _total(files, "size_bytes") + _total(dlq_files, "size_bytes"),
        "files": files.num_rows + dlq_files.num_rows,
        "partitions": [{"date": d, "records": dates[d]} for d in sorted(dates)],
        "schema": schema,
        "kafka_offsets": kafka_offsets(data, dlq, feed.topic, files, dlq_files),
        "delta": {"version": None if table is None else table.version()},
    }
    storage.write_atomic(f"{feed.dataset}/{METADATA}", json.dumps(meta, indent=2).encode())
    return meta
