"""Turning one lake table version into fact rows: shape, reject, infer dimension members.

A fact row whose dimension is unknown (the user or payment method never
appeared in the exported stream) is **kept**, and its dimension gets an
*inferred member*: a row with the key (and the payment method's name, which the
fact carries) and NULL attributes, which the next dimension load fills in.
Rows that cannot be keyed at all (a NULL key column, or a key repeated within
the version) go to ``<lake>/_dlq/warehouse/`` with the reason.
See docs/warehouse.md for why.
"""

from __future__ import annotations

import datetime as dt

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lakestream.errors import WarehouseRefusedError
from lakestream.lake.dead_letters import dead_letter_table
from lakestream.lake.delta import writes_delta
from lakestream.lake.layout import date_partition, dlq_path
from lakestream.lake.storage import Storage
from lakestream.lake.writer import parquet_bytes
from lakestream.warehouse.lake_source import TableVersion
from lakestream.warehouse.loaders import Target
from lakestream.warehouse.schema import FactSpec

DLQ_FEED = "warehouse"
_ROW = "__row"


def shape(spec: FactSpec, data: pa.Table, version: TableVersion) -> pa.Table:
    """The fact's columns from a lake table version, with its snapshot columns added."""
    needed = (*spec.natural_key, *spec.measures)
    missing = [c for c in needed if c not in data.column_names]
    if missing:
        raise WarehouseRefusedError(
            f"lake table {version.path} has no column {', '.join(missing)}",
            f"{spec.lake_table} must have the columns `lakestream process` writes: "
            f"{', '.join(needed)}",
        )
    n = data.num_rows
    return pa.Table.from_arrays(
        [
            *(data.column(c) for c in needed),
            pa.array([version.snapshot_date] * n, pa.date32()),
            pa.array([version.version] * n, pa.string()),
        ],
        names=[*needed, "snapshot_date", "snapshot_version"],
    )


def split_rejects(spec: FactSpec, rows: pa.Table) -> tuple[pa.Table, pa.Table, list[str]]:
    """Separate rows that cannot be loaded.

    Returns:
        ``(good, rejected, reasons)``: ``rejected`` rows have a NULL key column or repeat
        the key of an earlier row of the version (the first one is kept).
    """
    null_key = pc.is_null(rows.column(spec.natural_key[0]))
    for column in spec.natural_key[1:]:
        null_key = pc.or_(null_key, pc.is_null(rows.column(column)))
    indexed = rows.append_column(_ROW, pa.array(range(rows.num_rows), pa.int64()))
    keyed = indexed.filter(pc.invert(null_key))
    first = keyed.group_by(list(spec.natural_key), use_threads=False).aggregate([(_ROW, "min")])
    keep = pc.is_in(indexed.column(_ROW), value_set=first.column(f"{_ROW}_min"))
    if pc.all(keep).as_py() is not False:
        return rows, rows.slice(0, 0), []
    rejected = indexed.filter(pc.invert(keep))
    nulls = pc.take(null_key, rejected.column(_ROW)).to_pylist()
    key = ", ".join(spec.natural_key)
    reasons = [
        f"NULL in key column(s) {key}" if is_null else f"duplicate key ({key}) in the version"
        for is_null in nulls
    ]
    return rows.filter(keep), rejected.drop_columns([_ROW]), reasons


def write_rejects(
    storage: Storage, spec: FactSpec, version: TableVersion, rejected: pa.Table, reasons: list[str]
) -> str:
    """Store the rejected rows of one table version in ``_dlq/warehouse``; the folder.

    On a Delta dead-letter table this is one commit replacing the rows of the
    same table version on that date, so a re-sync of the version stores them
    once; before the move to Delta, one file per table version.
    """
    now = dt.datetime.now(dt.UTC)
    raw = [orjson.dumps(row, default=str) for row in rejected.to_pylist()]
    table = pa.table(
        {
            "raw": pa.array(raw, pa.binary()),
            "reason": pa.array(reasons, pa.string()),
            "source": pa.array([version.path] * len(raw), pa.string()),
            "target_table": pa.array([spec.table.name] * len(raw), pa.string()),
            "snapshot_version": pa.array([version.version] * len(raw), pa.string()),
            "rejected_at": pa.array([now] * len(raw), pa.timestamp("ms", tz="UTC")),
        }
    )
    folder = f"{dlq_path(DLQ_FEED)}/{date_partition(version.snapshot_date)}"
    if writes_delta(storage, dlq_path(DLQ_FEED)):
        day = version.snapshot_date
        parts = {"year": f"{day.year:04d}", "month": f"{day.month:02d}", "day": f"{day.day:02d}"}
        for name, value in parts.items():
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        same = {**parts, "target_table": spec.table.name, "snapshot_version": version.version}
        predicate = " AND ".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'"
                                 for k, v in same.items())
        dead_letter_table(storage, DLQ_FEED).overwrite(table, predicate)
        return folder
    path = f"{folder}/{spec.lake_table}-{version.version}.parquet"
    storage.write_atomic(path, parquet_bytes(table).to_pybytes())
    return path


def inferred_members(spec: FactSpec, rows: pa.Table) -> tuple[Target, pa.Table] | None:
    """Dimension rows (key, plus what the fact knows) for every key the facts use."""
    if spec.dimension is None:
        return None
    key, *known = spec.dimension.fact_columns
    distinct = rows.select(list(spec.dimension.fact_columns)).group_by(key, use_threads=False)
    members = distinct.aggregate([(c, "min") for c in known])
    members = members.rename_columns([c.removesuffix("_min") for c in members.column_names])
    target = Target(spec.dimension.table, (key,), tuple(spec.dimension.fact_columns), update=False)
    return target, members
