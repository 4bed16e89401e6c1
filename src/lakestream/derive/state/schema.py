"""The state store's tables: input positions, the lock, and one table per aggregate table.

Store-wide tables (the same on SQLite, PostgreSQL and MariaDB):

- ``lakestream_store(name, value)``: what the store is (``format`` = :data:`STORE_FORMAT`);
- ``lakestream_positions(topic, part, next_offset, stream_time)``: per input partition, the
  first offset not yet in the state, and its stream time (the highest event time seen, epoch
  ms; windows close by it);
- ``lakestream_lock(id)``: one row, locked by every batch commit (see :mod:`.store`);
- ``lakestream_tables(name, sql_table, signature, layout)``: the aggregate tables whose
  state the store holds, each with the signature of its state's shape;
- ``lakestream_distinct(table_name, key_hash, aggregate, value_hash, part)``: the distinct
  values of every ``COUNT_DISTINCT``, per partition.

Per aggregate table, a table of ``(key_hash, part, key0…, window_start, window_end,
<state columns>)``: one row per input partition, key and window. ``key_hash`` is the
SHA-256 of the key's JSON as DuckDB writes it (:func:`key_hash_sql`), so keys of any type
and length fit a primary key on every database. Values are stored exactly: integers as
BIGINT, sums that may outgrow 64 bits as decimal text, DOUBLEs as DOUBLE, and decimals,
dates, timestamps and nested values as their canonical JSON text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from lakestream.derive.statements import SqlType, TablePlan, types

STORE_FORMAT = "2"  # 1: the hand-written tables of Lakestream before the statements executor

metadata = sa.MetaData()

store_info = sa.Table(
    "lakestream_store", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False))
positions = sa.Table(
    "lakestream_positions", metadata,
    sa.Column("topic", sa.String(249), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("stream_time", sa.BigInteger, nullable=True))
lock = sa.Table(
    "lakestream_lock", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
catalog = sa.Table(
    "lakestream_tables", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("sql_table", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(64), nullable=False),
    sa.Column("layout", sa.Text, nullable=False))
distinct_values = sa.Table(
    "lakestream_distinct", metadata,
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("aggregate", sa.String(32), primary_key=True),
    sa.Column("value_hash", sa.String(64), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True, autoincrement=False))
BASE_TABLES = (store_info, positions, lock, catalog, distinct_values)


# -- values -------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A value as JSON can hold it: decimals as text, dates and times in ISO-8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """The canonical JSON text of a value (compact; the same on every host)."""
    return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False)


def key_hash_sql(columns: Sequence[str]) -> str:
    """DuckDB SQL of a key's hash from the SQL of its values (GROUP BY values, then window
    bounds): the hex SHA-256 of their JSON, computed where the values are."""
    inner = ", ".join(f"k{i} := {sql}" for i, sql in enumerate(columns))
    return f"sha256(to_json(struct_pack({inner}))::VARCHAR)"


def value_hash_sql(value: str) -> str:
    """DuckDB SQL of a distinct value's hash (the hex SHA-256 of its JSON)."""
    return f"sha256(to_json(struct_pack(v := {value}))::VARCHAR)"


def restore(value: Any, kind: SqlType) -> Any:
    """A value read back from its JSON form, typed as ``kind`` says."""
    if value is None:
        return None
    base = kind.base
    if base == types.DECIMAL_T:
        return Decimal(value)
    if base == types.DATE_T:
        return dt.date.fromisoformat(value)
    if base == types.TIMESTAMP_T:
        return dt.datetime.fromisoformat(value)
    if base == types.ARRAY_T:
        return [restore(v, kind.items[0]) for v in value]
    if base == types.MAP_T:
        return {k: restore(v, kind.items[1]) for k, v in value.items()}
    if base == types.STRUCT_T:
        return {name: restore(value.get(name), field) for name, field in kind.fields}
    return value


class ExactInteger(TypeDecorator[int]):
    """An integer of any size, stored as its decimal text (a HUGEINT sum)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: sa.Dialect) -> str | None:
        """The integer as text."""
        return None if value is None else str(int(value))

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> int | None:
        """The text as an integer."""
        return None if value is None else int(value)


class EncodedValue(TypeDecorator[Any]):
    """A value of a ksqlDB type with no exact column type everywhere, as canonical JSON."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, kind: SqlType) -> None:
        super().__init__()
        self.kind = kind

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        """The value as JSON text."""
        return None if value is None else canonical(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        """The JSON text as the value."""
        return None if value is None else restore(json.loads(value), self.kind)


def column_type(kind: SqlType) -> sa.types.TypeEngine[Any]:
    """The column type holding values of ``kind`` exactly."""
    base = kind.base
    if base == types.BOOLEAN_T:
        return sa.Boolean()
    if base in (types.INTEGER_T, types.BIGINT_T):
        return sa.BigInteger()
    if base == types.DOUBLE_T:
        return sa.Double()
    if base in (types.STRING_T, types.NULL_T):
        return sa.Text()
    return EncodedValue(kind)


# -- one aggregate table's state ------------------------------------------------------------


@dataclass(frozen=True)
class StatePart:
    """One state column: its name, merge rule and stored type."""

    name: str
    merge: str
    kind: str  # "integer", "exact" (may outgrow 64 bits) or "value" (the argument's type)
    value_type: SqlType | None = None


@dataclass(frozen=True)
class TableLayout:
    """The shape of one aggregate table's state, and its SQL table.

    Attributes:
        name: The aggregate table (statement) name.
        key_columns: The GROUP BY output columns, in order.
        key_types: Their types.
        windowed: Whether keys also hold a window's bounds.
        parts: The state columns of every aggregate but ``COUNT_DISTINCT``.
        distinct: The aggregates (``_aggN``) keeping distinct values.
        sql_table: The SQL table of its rows.
        calls: ``(aggregate name, the call as written)`` of each aggregate.
    """

    name: str
    key_columns: tuple[str, ...]
    key_types: tuple[SqlType, ...]
    windowed: bool
    parts: tuple[StatePart, ...]
    distinct: tuple[str, ...]
    sql_table: sa.Table
    calls: tuple[tuple[str, str], ...] = ()

    @property
    def aggregate_texts(self) -> dict[str, str]:
        """The aggregate name of each call, by the call's text (``COUNT(*)`` → ``_agg1``)."""
        return {text: name for name, text in self.calls}

    @property
    def description(self) -> dict[str, Any]:
        """The layout as JSON (stored in the catalog, compared by :attr:`signature`)."""
        return {"keys": [[n, str(t)] for n, t in zip(self.key_columns, self.key_types,
                                                     strict=True)],
                "windowed": self.windowed,
                "state": [[p.name, p.merge, p.kind, str(p.value_type or "")]
                          for p in self.parts],
                "distinct": list(self.distinct)}

    @property
    def signature(self) -> str:
        """A digest of :attr:`description`: a different one means an incompatible state."""
        return hashlib.sha256(canonical(self.description).encode()).hexdigest()

    @property
    def key_names(self) -> tuple[str, ...]:
        """The SQL columns of the key values: ``key0``…, then the window bounds."""
        names = tuple(f"key{i}" for i in range(len(self.key_columns)))
        return names + (("window_start", "window_end") if self.windowed else ())


def sql_table_name(name: str) -> str:
    """The SQL table of an aggregate table's state (64 characters at most, lower case)."""
    base = "".join(c if c.isalnum() else "_" for c in name.lower())
    if len(base) <= 40:
        return f"lakestream_state_{base}"
    return f"lakestream_state_{base[:30]}_{hashlib.sha256(name.encode()).hexdigest()[:10]}"


_EXACT_STATES = {"sum", "units"}
_VALUE_STATES = {"min", "max", "value"}


def layout_of(plan: TablePlan, meta: sa.MetaData) -> TableLayout:
    """The state layout of an aggregate table (its SQL table is defined on ``meta``)."""
    types_by_name = {c.name: c.type for c in plan.columns}
    key_types = tuple(types_by_name[k] for k in plan.group_columns)
    parts: list[StatePart] = []
    distinct: list[str] = []
    for spec in plan.aggregates:
        if spec.state == "distinct":
            distinct.append(spec.name)
        for column in spec.state_columns():
            suffix = column.name[len(spec.name) + 1:]
            kind = ("exact" if suffix in _EXACT_STATES
                    else "value" if suffix in _VALUE_STATES else "integer")
            parts.append(StatePart(column.name, column.merge, kind,
                                   spec.argument_type if kind == "value" else None))
    columns: list[sa.Column[Any]] = [
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True, autoincrement=False)]
    columns += [sa.Column(f"key{i}", column_type(t)) for i, t in enumerate(key_types)]
    if plan.window is not None:
        columns += [sa.Column("window_start", sa.BigInteger), sa.Column("window_end",
                                                                        sa.BigInteger)]
    for part in parts:
        stored: sa.types.TypeEngine[Any] = (
            ExactInteger() if part.kind == "exact" else sa.BigInteger() if part.kind == "integer"
            else column_type(part.value_type or types.STRING))
        columns.append(sa.Column(part.name, stored))
    table = sa.Table(sql_table_name(plan.name), meta, *columns)
    return TableLayout(plan.name, plan.group_columns, key_types, plan.window is not None,
                       tuple(parts), tuple(distinct), table,
                       tuple((s.name, s.text) for s in plan.aggregates))
