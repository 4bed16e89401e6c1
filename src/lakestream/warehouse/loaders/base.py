"""The one loader interface: upsert an Arrow table into a warehouse table.

Every dialect's loader has upsert semantics on the target's unique key: rows
whose key is new are inserted, rows whose key exists are updated (or kept,
for insert-only targets), so loading the same data twice changes nothing.
``expect_new`` is only a hint that picks the fastest path (the database's own
bulk loader straight into the table); a wrong hint costs time, never
correctness.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from lakestream.errors import WarehouseRefusedError


@dataclass(frozen=True)
class Target:
    """Where and how rows land.

    Attributes:
        table: The destination table.
        key: Columns of its unique key (the upsert's conflict target).
        columns: Columns written, key included, in the order of the data.
        update: Whether existing keys get the new values (``False``: kept as they are).
    """

    table: sa.Table
    key: tuple[str, ...]
    columns: tuple[str, ...]
    update: bool = True

    @property
    def update_columns(self) -> tuple[str, ...]:
        """Columns an upsert overwrites: every written column outside the key."""
        return tuple(c for c in self.columns if c not in self.key) if self.update else ()


class BulkLoader(ABC):
    """Loads Arrow tables into one kind of database, inside the caller's transaction."""

    dialect: str = ""

    def load(
        self, conn: sa.Connection, target: Target, data: pa.Table, expect_new: bool = False
    ) -> int:
        """Upsert ``data`` into ``target`` within ``conn``'s transaction.

        Args:
            conn: A connection with an open transaction (the caller commits).
            target: Destination table, key and columns.
            data: Rows; it must have every column of ``target.columns``.
            expect_new: Hint that no key of ``data`` is in the table yet.

        Returns:
            The number of rows given.
        """
        rows = conform(target, data)
        if rows.num_rows:
            self._load(conn, target, rows, expect_new)
        return int(rows.num_rows)

    @abstractmethod
    def _load(self, conn: sa.Connection, target: Target, rows: pa.Table, expect_new: bool) -> None:
        """Write conformed, non-empty ``rows``."""


def conform(target: Target, data: pa.Table) -> pa.Table:
    """``data``'s target columns, cast to the Arrow types matching the column types.

    Numerics are rounded (half away from zero) to their column's scale and become
    Arrow decimals, so every database receives, and stores, the same digits.
    """
    missing = [c for c in target.columns if c not in data.column_names]
    if missing:
        raise WarehouseRefusedError(
            f"cannot load {target.table.name}: the data has no column {', '.join(missing)}"
        )
    arrays = [_conform(data.column(c), target.table.c[c].type, c) for c in target.columns]
    return pa.Table.from_arrays(arrays, names=list(target.columns))


def _conform(column: pa.ChunkedArray, kind: sa.types.TypeEngine[Any], name: str) -> Any:
    try:
        if isinstance(kind, sa.Boolean):
            return column.cast(pa.bool_())
        if isinstance(kind, sa.Integer):
            return column.cast(pa.int64())
        if isinstance(kind, sa.Numeric):
            values = column.cast(pa.float64())
            if kind.scale is None:
                return values
            rounded = pc.round(values, ndigits=kind.scale, round_mode="half_towards_infinity")
            return rounded.cast(pa.decimal128(kind.precision or 18, kind.scale))
        if isinstance(kind, sa.DateTime):
            return _timestamp(column)
        if isinstance(kind, sa.Date):
            return column.cast(pa.date32())
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WarehouseRefusedError(
            f"column {name}: cannot convert {column.type} to {kind}: {exc}"
        ) from None


def _timestamp(column: pa.ChunkedArray) -> Any:
    """UTC wall-clock time without zone, microseconds."""
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = column.cast(pa.timestamp("us", tz="UTC"))
    return column.cast(pa.timestamp("us"))


def python_rows(
    rows: pa.Table, batch_size: int, decimals_as_float: bool = False
) -> Iterator[list[tuple[Any, ...]]]:
    """``rows`` as lists of tuples of DB-API values, ``batch_size`` rows at a time.

    Dates and times become ISO text, which every driver and SQLAlchemy's SQLite
    types read back (``YYYY-MM-DD`` / ``YYYY-MM-DD HH:MM:SS.ffffff``); decimals
    become floats when the driver cannot bind ``Decimal`` (sqlite3).
    """
    text = pa.Table.from_arrays(
        [_python_friendly(rows.column(i), decimals_as_float) for i in range(rows.num_columns)],
        names=rows.column_names,
    )
    for batch in text.to_batches(max_chunksize=batch_size):
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        yield list(zip(*columns, strict=True))


def _python_friendly(column: pa.ChunkedArray, decimals_as_float: bool) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        return column.cast(pa.string())
    if decimals_as_float and pa.types.is_decimal(column.type):
        return column.cast(pa.float64())
    return column


def quoted(conn: sa.Connection, names: Sequence[str]) -> list[str]:
    """Identifiers quoted for ``conn``'s dialect where needed."""
    preparer = conn.dialect.identifier_preparer
    return [preparer.quote(n) for n in names]
