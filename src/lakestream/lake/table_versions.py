"""Aggregate tables on Delta: one table partitioned by ``version``, one commit per snapshot.

A table feed's dataset ``tables/<t>`` is one Delta table partitioned by the
string column ``version`` (``v1``, ``v2``, …), so its files stay in the lake's
``tables/<t>/version=vN/`` folders (docs/lake.md). Writing snapshot ``vN`` is one
predicate overwrite (``version IN ('vN', <versions past the kept ones>)``):
the same log entry adds ``vN``'s files and removes the oldest version's, so
every Delta reader sees the kept versions before or after, never a table
with one version too many or too few.

**Offsets.** The commit carries one application transaction per Kafka
partition (``lakestream/<topic>/<partition>``, version = the last offset the
snapshot applied): the table resumes every partition at version + 1 from its
newest version's rows.

**Which version is current.** The newest ``version`` partition of the
snapshot, and also the table's own application transaction
``lakestream/snapshot:version/0`` (version = N), which every snapshot commit
carries: delta-rs writes no file for a snapshot without rows, so an empty
``vN`` has no partition and only that transaction names it.
:func:`current_delta_version` takes the higher of the two. The commit's
custom metadata (``lakestream.version``) and ``_metadata.json`` repeat it for
people.

**Fencing.** Two writers of one table (a restart while the old process still
runs) must never both commit a snapshot: each expects the snapshot
transaction it loaded (``N - 1``) and commits ``N`` through
:meth:`~lakestream.lake.delta.DeltaDataset.overwrite`, a compare-and-swap on
the log (check, then create the next log entry only if absent). The loser is
fenced (:class:`~lakestream.errors.FencedError`), reloads the winner's
version and reads again what it does not cover.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakestream.decode.schemas import schema_as_json
from lakestream.lake.delta import DeltaDataset, OffsetRange, app_id, delta_errors
from lakestream.lake.layout import METADATA
from lakestream.lake.snapshot import snapshot_dataset
from lakestream.lake.storage import Storage

VERSION = "version"
# not a legal Kafka topic name ([a-zA-Z0-9._-]): its app id never clashes with a partition's
SNAPSHOT_TOPIC = "snapshot:version"
SNAPSHOT_APP = app_id(SNAPSHOT_TOPIC, 0)
META_VERSION = "lakestream.version"
META_OFFSETS = "lakestream.offsets"
META_REJECTED = "lakestream.rejected"
HISTORY_SCAN = 200  # log entries searched back for the newest snapshot's commit
_NAME = re.compile(r"^v(\d+)$")


def version_name(number: int) -> str:
    """``v<N>``."""
    return f"v{number}"


def version_number(name: str) -> int | None:
    """``N`` of ``v<N>`` (``None`` for anything else)."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class VersionStats:
    """One kept version as the log sees it."""

    name: str
    rows: int
    bytes: int
    files: int
    created_at: str | None


@dataclass(frozen=True)
class LoadedSnapshot:
    """The newest version of a table: its rows and what it covers."""

    number: int
    rows: pa.Table
    offsets: dict[int, int]  # partition -> last offset applied (the log's transactions)
    rejected: int


class VersionedTable:
    """The Delta table of one table feed's versions.

    Args:
        storage: The lake.
        rel: The table's folder (``tables/<t>``).
        topic: The changelog topic whose offsets the versions cover.
    """

    def __init__(self, storage: Storage, rel: str, topic: str) -> None:
        self.storage = storage
        self.rel = rel
        self.topic = topic
        self.dataset = DeltaDataset(storage, rel, [VERSION])

    def load(self, partitions: Iterable[int] = ()) -> LoadedSnapshot | None:
        """The newest version (``None`` before the first snapshot).

        Offsets are read from the log for ``partitions`` and for every
        partition the newest snapshot's commit named.
        """
        table = self.dataset.table()
        if table is None:
            return None
        current = _current(table)
        if current is None:
            return None
        info = _snapshot_commit(table)
        named = [int(p) for p in json.loads(info.get(META_OFFSETS, "{}"))] if info else []
        wanted = sorted({*partitions, *named})
        with delta_errors(f"read the log of {self.dataset.uri}"):
            txns = {p: table.transaction_version(app_id(self.topic, p)) for p in wanted}
        offsets = {p: v for p, v in txns.items() if v is not None}
        rows = _rows_of(self.storage, table, version_name(current)).drop_columns([VERSION])
        rejected = int(info.get(META_REJECTED, 0)) if info else 0
        return LoadedSnapshot(current, rows, offsets, rejected)

    def commit(self, rows: pa.Table, number: int, offsets: Mapping[int, int],
               expected: Mapping[int, int | None], keep: int, rejected: int = 0) -> int:
        """Commit ``rows`` as version ``number`` and drop the versions past ``keep``, at once.

        Args:
            rows: The snapshot (without the ``version`` column).
            number: ``N``: the table must hold ``N - 1`` (or nothing, for 1).
            offsets: Partition -> last offset the snapshot applied.
            expected: Partition -> the offset the table held when this writer loaded it.
            keep: Versions kept, this one included.
            rejected: Records skipped so far (carried in the commit's metadata).

        Returns:
            The log version of the commit.

        Raises:
            FencedError: Another writer committed a version (or an offset) since.
        """
        table = self.dataset.table()
        kept = _partition_versions(table) if table is not None else []
        if table is not None:
            rows = _conform(rows, pa.schema(table.schema().to_arrow()))
        else:
            rows = _conform(rows, pa.schema([]))
        dropped = [n for n in kept if n <= number - keep and n != number]
        names = ", ".join(f"'{version_name(n)}'" for n in [number, *dropped])
        data = rows.append_column(VERSION, pa.array([version_name(number)] * rows.num_rows,
                                                    pa.string()))
        ranges = [OffsetRange(SNAPSHOT_TOPIC, 0, number - 1 if number > 1 else None, number)]
        ranges += [OffsetRange(self.topic, p, expected.get(p), last)
                   for p, last in sorted(offsets.items())]
        metadata = {META_VERSION: version_name(number), META_REJECTED: str(rejected),
                    META_OFFSETS: json.dumps({str(p): o for p, o in sorted(offsets.items())})}
        return self.dataset.overwrite(data, f"{VERSION} IN ({names})", ranges, metadata)

    def versions(self) -> list[VersionStats]:
        """The kept versions, oldest first."""
        table = self.dataset.table()
        return [] if table is None else _stats(table)


# -- reading (the lake's readers use these) ---------------------------------------------------

def delta_table_versions(storage: Storage, path: str) -> list[str]:
    """The versions a Delta table keeps, oldest first (``v1``, ``v2``, …)."""
    table = DeltaDataset(storage, path, [VERSION]).table()
    return [] if table is None else [v.name for v in _stats(table)]


def current_delta_version(storage: Storage, path: str) -> str | None:
    """The version a table's view shows: its newest (``None`` before the first snapshot)."""
    table = DeltaDataset(storage, path, [VERSION]).table()
    current = None if table is None else _current(table)
    return None if current is None else version_name(current)


def read_delta_version(storage: Storage, path: str, version: str | None = None) -> pa.Table:
    """The rows of ``version`` (default: the current one), read from one snapshot of the log."""
    table = DeltaDataset(storage, path, [VERSION]).table()
    if table is None:
        return pa.table({})
    current = _current(table)
    name = version or (None if current is None else version_name(current))
    return _rows_of(storage, table, name)


def write_delta_metadata(storage: Storage, feed_name: str, rel: str, topic: str, layer: str,
                         key: Iterable[str]) -> dict[str, Any]:
    """Rewrite ``_metadata.json`` of a Delta table feed from its log (a summary only)."""
    vt = VersionedTable(storage, rel, topic)
    table = vt.dataset.table()
    stats = [] if table is None else _stats(table)
    current = None if table is None else _current(table)
    info = None if table is None else _snapshot_commit(table)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    name = None if current is None else version_name(current)
    cur = next((v for v in stats if v.name == name), None)
    offsets = {} if info is None else json.loads(info.get(META_OFFSETS, "{}"))
    schema = [] if table is None else schema_as_json(pa.schema(
        [f for f in pa.schema(table.schema().to_arrow()) if f.name != VERSION]))
    meta: dict[str, Any] = {
        "dataset": feed_name, "kind": "table", "layer": layer, "path": storage.url(rel),
        "source": {"type": "kafka", "topic": topic}, "format": "delta",
        "compression": "snappy", "partitioning": [VERSION], "key": list(key),
        "current_version": name,
        "last_export": _stamp(info) if info else None, "updated_at": now,
        "records": cur.rows if cur else 0, "bytes": sum(v.bytes for v in stats),
        "files": sum(v.files for v in stats),
        "rejected_records": int(info.get(META_REJECTED, 0)) if info else 0,
        "versions": [{"version": v.name, "rows": v.rows, "bytes": v.bytes,
                      "created_at": v.created_at} for v in stats],
        "schema": schema,
        # next offset per partition, as the table feed resumes (the log holds the last one)
        "kafka_offsets": {p: o + 1 for p, o in offsets.items()},
        "delta": {"version": None if table is None else table.version()},
    }
    storage.write_atomic(f"{rel}/{METADATA}", json.dumps(meta, indent=2).encode())
    return meta


# -- the log ------------------------------------------------------------------------------------

def _add_actions(table: Any) -> pa.Table:
    return pa.table(table.get_add_actions(flatten=True))


def _partition_versions(table: Any) -> list[int]:
    """Version numbers with live files, ascending."""
    actions = _add_actions(table)
    if actions.num_rows == 0 or f"partition.{VERSION}" not in actions.column_names:
        return []
    names = pc.unique(actions.column(f"partition.{VERSION}")).to_pylist()
    return sorted(n for n in (version_number(str(v)) for v in names if v) if n is not None)


def _current(table: Any) -> int | None:
    with delta_errors("read the log of a table"):
        counter = table.transaction_version(SNAPSHOT_APP)
    numbers = [*_partition_versions(table), *([] if counter is None else [int(counter)])]
    return max(numbers) if numbers else None


def _stats(table: Any) -> list[VersionStats]:
    actions = _add_actions(table)
    by: dict[int, list[tuple[int, int, float]]] = {}
    if actions.num_rows and f"partition.{VERSION}" in actions.column_names:
        for name, size, records, mtime in zip(
                actions.column(f"partition.{VERSION}").to_pylist(),
                actions.column("size_bytes").to_pylist(),
                actions.column("num_records").to_pylist(),
                actions.column("modification_time").to_pylist(), strict=True):
            number = version_number(str(name))
            if number is not None:
                by.setdefault(number, []).append((int(size or 0), int(records or 0),
                                                  _millis(mtime)))
    current = _current(table)
    if current is not None:
        by.setdefault(current, [])  # an empty snapshot: no file, still the current version
    return [VersionStats(version_name(n), sum(r for _, r, _ in files),
                         sum(s for s, _, _ in files), len(files),
                         _iso(min(m for _, _, m in files)) if files else None)
            for n, files in sorted(by.items())]


def _conform(rows: pa.Table, existing: pa.Schema) -> pa.Table:
    """``rows`` typed as the table's columns already are; a column of nulls only becomes a
    string column (Delta has no null type other readers accept)."""
    columns, fields = [], []
    for f, column in zip(rows.schema, rows.columns, strict=True):
        target = existing.field(f.name).type if f.name in existing.names else f.type
        if pa.types.is_null(target):
            target = pa.string()
        columns.append(column if column.type == target else pc.cast(column, target))
        fields.append(pa.field(f.name, target))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _rows_of(storage: Storage, table: Any, name: str | None) -> pa.Table:
    schema = pa.schema(table.schema().to_arrow())
    if name is None:
        return schema.empty_table()
    with delta_errors("read a table version"):
        return snapshot_dataset(storage, table).to_table(filter=pads.field(VERSION) == name)


def _snapshot_commit(table: Any) -> dict[str, Any] | None:
    """The commit info of the newest snapshot commit (maintenance commits skipped)."""
    limit = 1
    while True:  # usually the newest commit: read more of the log only when it is not
        with delta_errors("read the log's history"):
            history = table.history(limit)
        found = next((h for h in history if META_VERSION in h), None)
        if found is not None or limit >= HISTORY_SCAN or len(history) < limit:
            return found
        limit = min(limit * 10, HISTORY_SCAN)


def _stamp(info: Mapping[str, Any]) -> str | None:
    stamp = info.get("timestamp")
    return None if stamp is None else _iso(float(stamp))


def _millis(mtime: Any) -> float:
    if hasattr(mtime, "timestamp"):
        return float(mtime.timestamp()) * 1000
    return float(mtime or 0)


def _iso(millis: float) -> str:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat(timespec="milliseconds")
