"""What ``sync`` reads from the lake: latest dimension attributes and current table versions.

Everything goes through :class:`~lakestream.lake.storage.Storage`, so a local
folder and an S3 lake read the same way: files are listed by the storage,
opened as one pyarrow dataset (schemas of older files unified, missing columns
read as NULL) and, for the dimensions, aggregated by DuckDB.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from lakestream.errors import WarehouseRefusedError
from lakestream.lake.delta import is_delta_table
from lakestream.lake.layout import STREAMS, TABLES
from lakestream.lake.metadata import read_metadata
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import FileInfo, Storage
from lakestream.lake.table_versions import current_delta_version, delta_table_versions

FLATTENED_STREAM = f"{STREAMS}/transaction_flattened"

_VERSION = re.compile(r"^version=v(\d+)$")
_DATE_KEYS = ("created_at", "created", "exported_at", "committed_at", "timestamp", "date")

USER_ATTRIBUTES = ("user_name", "user_email", "user_country", "user_city")
METHOD_ATTRIBUTES = ("payment_method_name", "payment_method_category", "payment_method_is_active")


@dataclass(frozen=True)
class TableVersion:
    """The version of a lake table that ``sync`` loads."""

    table: str
    version: str
    snapshot_date: dt.date
    files: tuple[FileInfo, ...]

    @property
    def path(self) -> str:
        """Its folder below the lake root."""
        return f"{TABLES}/{self.table}/version={self.version}"


def parquet_dataset(storage: Storage, files: list[FileInfo]) -> pads.Dataset | None:
    """One dataset over ``files`` with their schemas unified (``None`` if there are none)."""
    paths = [storage.full(f.path) for f in files]
    if not paths:
        return None
    first = pads.dataset(paths, filesystem=storage.fs, format="parquet")
    schema = pa.unify_schemas(
        [frag.physical_schema for frag in first.get_fragments()], promote_options="permissive"
    )
    return pads.dataset(paths, schema=schema, filesystem=storage.fs, format="parquet")


def data_files(storage: Storage, prefix: str) -> list[FileInfo]:
    """Committed Parquet files below ``prefix``: a Delta table's snapshot files, else the
    folder's (ledgers, staging and DLQ excluded)."""
    return [
        f
        for f in live_files(storage, prefix)
        if f.path.endswith(".parquet") and not any(p.startswith("_") for p in f.path.split("/"))
    ]


def latest_dimensions(storage: Storage) -> tuple[pa.Table, pa.Table] | None:
    """Latest attributes per user and per payment method (by ``event_time``).

    Returns:
        ``(users, payment_methods)`` shaped like ``dim_users`` / ``dim_payment_methods``,
        or ``None`` when the lake has no flattened stream yet.
    """
    dataset = parquet_dataset(storage, data_files(storage, FLATTENED_STREAM))
    if dataset is None:
        return None
    names = set(dataset.schema.names)
    missing = {"event_time", "user_id", "payment_method_id"} - names
    if missing:
        raise WarehouseRefusedError(
            f"{storage.url(FLATTENED_STREAM)} has no column {', '.join(sorted(missing))}",
            "the flattened stream must have the columns `lakestream process` writes",
        )
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("flattened", dataset)
        users = _latest(con, "user_id", USER_ATTRIBUTES, names, {})
        methods = _latest(
            con,
            "payment_method_id",
            METHOD_ATTRIBUTES,
            names,
            {"payment_method_is_active": ("BOOLEAN", "is_active")},
        )
    finally:
        con.close()
    return users, methods


def _latest(
    con: duckdb.DuckDBPyConnection,
    key: str,
    attributes: tuple[str, ...],
    present: set[str],
    casts: dict[str, tuple[str, str]],
) -> pa.Table:
    """One row per ``key``: the attributes of its latest event (ties: highest transaction id)."""
    columns = [f'"{key}"']
    for name in attributes:
        sql_type, alias = casts.get(name, ("VARCHAR", name))
        value = f'TRY_CAST("{name}" AS {sql_type})' if name in present else "NULL"
        columns.append(f'CAST({value} AS {sql_type}) AS "{alias}"')
    event_time = "CAST(CAST(event_time AS TIMESTAMPTZ) AS TIMESTAMP)"
    tiebreak = ', "transaction_id" DESC' if "transaction_id" in present else ""
    sql = (
        f"SELECT {', '.join(columns)}, {event_time} AS last_event_time FROM flattened "
        f'WHERE "{key}" IS NOT NULL QUALIFY row_number() OVER (PARTITION BY "{key}" '
        f"ORDER BY {event_time} DESC NULLS LAST{tiebreak}) = 1"
    )
    return _arrow(con.sql(sql))


def _arrow(relation: Any) -> pa.Table:
    """A DuckDB relation as an Arrow table (DuckDB 1.x and 2.x spell it differently)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    table: pa.Table = fetch()
    return table


def current_version(storage: Storage, table: str) -> TableVersion | None:
    """The version ``sync`` loads: a Delta table's current one (from its log); else
    ``current_version`` of the metadata, else the highest.

    Returns:
        ``None`` when the table has no version with Parquet files.
    """
    meta = read_metadata(storage, f"{TABLES}/{table}") or {}
    delta = is_delta_table(storage, f"{TABLES}/{table}")
    folders = ([f"version={v}" for v in delta_table_versions(storage, f"{TABLES}/{table}")]
               if delta else storage.list_dirs(f"{TABLES}/{table}"))
    versions = {int(m.group(1)): name for name in folders if (m := _VERSION.match(name))}
    current = (current_delta_version(storage, f"{TABLES}/{table}") if delta
               else meta.get("current_version"))
    if isinstance(current, str) and f"version={current}" in versions.values():
        version = current
    elif versions:
        version = "v" + str(max(versions))
    else:
        return None
    files = tuple(data_files(storage, f"{TABLES}/{table}/version={version}"))
    if not files:
        return None
    return TableVersion(table, version, _snapshot_date(meta, version, files), files)


def read_version(storage: Storage, version: TableVersion) -> pa.Table:
    """All rows of one table version."""
    dataset = parquet_dataset(storage, list(version.files))
    assert dataset is not None
    return dataset.to_table()


def _snapshot_date(meta: dict[str, Any], version: str, files: tuple[FileInfo, ...]) -> dt.date:
    """When the version was made: from the metadata, else its oldest file, else today.

    The file time keeps re-syncs of a version stable when the metadata says nothing.
    """
    stamp = _metadata_stamp(meta.get("versions"), version)
    parsed = _parse_date(stamp) if stamp else None
    if parsed is not None:
        return parsed
    mtimes = [f.mtime for f in files if f.mtime > 0]
    if mtimes:
        return dt.datetime.fromtimestamp(min(mtimes), dt.UTC).date()
    return dt.datetime.now(dt.UTC).date()


def _metadata_stamp(versions: Any, version: str) -> str | None:
    entry: Any = None
    if isinstance(versions, dict):
        entry = versions.get(version)
    elif isinstance(versions, list):
        entry = next(
            (v for v in versions if isinstance(v, dict) and v.get("version") == version), None
        )
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        return next((str(entry[k]) for k in _DATE_KEYS if entry.get(k)), None)
    return None


def _parse_date(stamp: str) -> dt.date | None:
    try:
        moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return (moment.astimezone(dt.UTC) if moment.tzinfo else moment).date()
    except ValueError:
        try:
            return dt.date.fromisoformat(stamp[:10])
        except ValueError:
            return None
