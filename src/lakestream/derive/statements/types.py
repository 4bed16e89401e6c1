"""ksqlDB column types, their DuckDB and Arrow equivalents, and numeric promotion.

Supported: ``BOOLEAN``, ``INT``/``INTEGER``, ``BIGINT``, ``DOUBLE``,
``DECIMAL(p, s)``, ``VARCHAR``/``STRING``, ``TIMESTAMP``, ``DATE``,
``ARRAY<T>``, ``MAP<STRING, T>``, ``STRUCT<name T, …>``. A ksqlDB
``TIMESTAMP`` is a UTC instant with millisecond precision: Arrow
``timestamp('ms')``, DuckDB ``TIMESTAMP`` (no time zone; UTC by convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

BOOLEAN_T = "BOOLEAN"
INTEGER_T = "INTEGER"
BIGINT_T = "BIGINT"
DOUBLE_T = "DOUBLE"
DECIMAL_T = "DECIMAL"
STRING_T = "STRING"
TIMESTAMP_T = "TIMESTAMP"
DATE_T = "DATE"
ARRAY_T = "ARRAY"
MAP_T = "MAP"
STRUCT_T = "STRUCT"
NULL_T = "NULL"  # the type of the literal NULL, compatible with every type

_NUMERIC_RANK = {INTEGER_T: 0, BIGINT_T: 1, DECIMAL_T: 2, DOUBLE_T: 3}
_DUCKDB = {BOOLEAN_T: "BOOLEAN", INTEGER_T: "INTEGER", BIGINT_T: "BIGINT", DOUBLE_T: "DOUBLE",
           STRING_T: "VARCHAR", TIMESTAMP_T: "TIMESTAMP", DATE_T: "DATE", NULL_T: "VARCHAR"}
_ARROW = {BOOLEAN_T: pa.bool_(), INTEGER_T: pa.int32(), BIGINT_T: pa.int64(),
          DOUBLE_T: pa.float64(), STRING_T: pa.string(), TIMESTAMP_T: pa.timestamp("ms"),
          DATE_T: pa.date32(), NULL_T: pa.null()}
MAX_PRECISION = 38


@dataclass(frozen=True)
class SqlType:
    """A ksqlDB type.

    Attributes:
        base: One of the ``*_T`` names of this module.
        precision: ``DECIMAL`` precision.
        scale: ``DECIMAL`` scale.
        items: ``(item,)`` of an ``ARRAY``, ``(key, value)`` of a ``MAP``.
        fields: ``(name, type)`` of a ``STRUCT``, names as declared.
    """

    base: str
    precision: int = 0
    scale: int = 0
    items: tuple[SqlType, ...] = ()
    fields: tuple[tuple[str, SqlType], ...] = ()

    def __str__(self) -> str:
        return self.ksql()

    def ksql(self) -> str:
        """The type as ksqlDB writes it."""
        if self.base == DECIMAL_T:
            return f"DECIMAL({self.precision}, {self.scale})"
        if self.base == ARRAY_T:
            return f"ARRAY<{self.items[0].ksql()}>"
        if self.base == MAP_T:
            return f"MAP<{self.items[0].ksql()}, {self.items[1].ksql()}>"
        if self.base == STRUCT_T:
            return "STRUCT<" + ", ".join(f"{n} {t.ksql()}" for n, t in self.fields) + ">"
        return self.base

    def duckdb(self) -> str:
        """The DuckDB type of the same values."""
        if self.base == DECIMAL_T:
            return f"DECIMAL({self.precision}, {self.scale})"
        if self.base == ARRAY_T:
            return f"{self.items[0].duckdb()}[]"
        if self.base == MAP_T:
            return f"MAP({self.items[0].duckdb()}, {self.items[1].duckdb()})"
        if self.base == STRUCT_T:
            inner = ", ".join(f"{quote(n)} {t.duckdb()}" for n, t in self.fields)
            return f"STRUCT({inner})"
        return _DUCKDB[self.base]

    def arrow(self) -> pa.DataType:
        """The Arrow type a decoder gives this column."""
        if self.base == DECIMAL_T:
            return pa.decimal128(self.precision, self.scale)
        if self.base == ARRAY_T:
            return pa.list_(self.items[0].arrow())
        if self.base == MAP_T:
            return pa.map_(self.items[0].arrow(), self.items[1].arrow())
        if self.base == STRUCT_T:
            return pa.struct([pa.field(n, t.arrow()) for n, t in self.fields])
        return _ARROW[self.base]

    @property
    def numeric(self) -> bool:
        """Whether arithmetic applies."""
        return self.base in _NUMERIC_RANK or self.base == NULL_T

    @property
    def integral(self) -> bool:
        """``INTEGER`` or ``BIGINT``."""
        return self.base in (INTEGER_T, BIGINT_T)

    def field(self, name: str) -> tuple[str, SqlType] | None:
        """The struct field ``name`` (case-insensitive) as declared, or ``None``."""
        matches = [(n, t) for n, t in self.fields if n.lower() == name.lower()]
        exact = [(n, t) for n, t in matches if n == name]
        found = exact or matches
        return found[0] if found else None


BOOLEAN = SqlType(BOOLEAN_T)
INTEGER = SqlType(INTEGER_T)
BIGINT = SqlType(BIGINT_T)
DOUBLE = SqlType(DOUBLE_T)
STRING = SqlType(STRING_T)
TIMESTAMP = SqlType(TIMESTAMP_T)
DATE = SqlType(DATE_T)
NULL = SqlType(NULL_T)


def decimal(precision: int, scale: int) -> SqlType:
    """``DECIMAL(precision, scale)``, precision capped at 38 like ksqlDB's."""
    precision = max(1, min(precision, MAX_PRECISION))
    return SqlType(DECIMAL_T, precision, min(scale, precision))


def array(item: SqlType) -> SqlType:
    """``ARRAY<item>``."""
    return SqlType(ARRAY_T, items=(item,))


def as_decimal(kind: SqlType) -> SqlType:
    """An integral or decimal type as the decimal that holds it (ksqlDB's rule)."""
    if kind.base == INTEGER_T:
        return decimal(10, 0)
    if kind.base == BIGINT_T:
        return decimal(19, 0)
    return kind


def arithmetic_result(op: str, left: SqlType, right: SqlType) -> SqlType:
    """The type of ``left op right`` for numeric operands (ksqlDB's promotion rules)."""
    if left.base == NULL_T:
        return right if right.base != NULL_T else INTEGER
    if right.base == NULL_T:
        return left
    rank = max(_NUMERIC_RANK[left.base], _NUMERIC_RANK[right.base])
    if rank == _NUMERIC_RANK[DOUBLE_T]:
        return DOUBLE
    if rank < _NUMERIC_RANK[DECIMAL_T]:
        return BIGINT if rank == _NUMERIC_RANK[BIGINT_T] else INTEGER
    a, b = as_decimal(left), as_decimal(right)
    whole = max(a.precision - a.scale, b.precision - b.scale)
    if op in ("+", "-"):
        scale = max(a.scale, b.scale)
        return decimal(scale + whole + 1, scale)
    return decimal(a.precision + b.precision + 1, a.scale + b.scale)  # "*"


def common_type(types: list[SqlType]) -> SqlType | None:
    """The type all ``types`` convert to (CASE branches, COALESCE), or ``None`` if none."""
    known = [t for t in types if t.base != NULL_T]
    if not known:
        return NULL
    first = known[0]
    if all(t == first for t in known):
        return first
    if all(t.base in _NUMERIC_RANK for t in known):
        result = known[0]
        for other in known[1:]:
            result = arithmetic_result("+", result, other) if result != other else result
        if result.base == DECIMAL_T:
            wide = [as_decimal(t) for t in known]
            scale = max(t.scale for t in wide)
            whole = max(t.precision - t.scale for t in wide)
            return decimal(whole + scale, scale)
        return result
    return None


def quote(name: str) -> str:
    """``name`` as a DuckDB quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"
