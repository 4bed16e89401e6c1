"""Expressions → DuckDB SQL with their ksqlDB types, names resolved against a query's sources.

A :class:`Scope` holds the columns a query can see (its stream, the tables it
joins); :class:`ExpressionCompiler` turns each :mod:`.ast` node into a
:class:`.Typed`, refusing unknown columns and fields, type errors, and
functions outside :mod:`.functions`. A ``rewrite`` hook lets the planner
substitute nodes first (aggregates and GROUP BY keys in a table's projection).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from lakestream.derive.statements import ast, types
from lakestream.derive.statements.casts import cast
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.expressions import ANON_KEY_VARIABLE
from lakestream.derive.statements.functions import AGGREGATE_FUNCTIONS, compile_call
from lakestream.derive.statements.operators import binary, comparable
from lakestream.derive.statements.typed import Typed
from lakestream.derive.statements.types import SqlType, literal, quote

EVENT_TIME = "_event_time"  # the batch view's ROWTIME column: event time, epoch milliseconds
SOURCE_PARTITION = "_source_partition"
SOURCE_OFFSET = "_source_offset"
_WINDOW_BOUNDS = ("WINDOWSTART", "WINDOWEND")


@dataclass(frozen=True)
class Column:
    """A column of a stream or table: its name as declared and its type."""

    name: str
    type: SqlType


@dataclass(frozen=True)
class Source:
    """A relation a query reads: its reference (alias or name), name, SQL alias and columns."""

    reference: str
    name: str
    sql_alias: str
    columns: tuple[Column, ...]
    is_table: bool

    def column(self, name: str) -> Column | None:
        """The column ``name`` (case-insensitive)."""
        found = [c for c in self.columns if c.name.lower() == name.lower()]
        return found[0] if found else None


class Scope:
    """The names an expression of one query can use."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources

    @property
    def stream(self) -> Source:
        """The source of FROM (whose ROWTIME and positions the rows carry)."""
        return self.sources[0]

    def source(self, reference: str, line: int) -> Source:
        """The source a qualifier names (its alias, or its name when it has none)."""
        for source in self.sources:
            if reference.lower() in (source.reference.lower(), source.name.lower()):
                return source
        known = ", ".join(s.reference for s in self.sources)
        raise StatementError(line, f"unknown source {reference} (this query reads {known})")

    def resolve(self, ref: ast.ColumnRef) -> Typed:
        """A column reference as SQL, or a refusal (unknown, ambiguous)."""
        if ref.qualifier is not None:
            source = self.source(ref.qualifier, ref.line)
            column = source.column(ref.name)
            if column is None:
                return self._pseudo(ref) or _unknown(ref, [source])
            return self._sql(source, column)
        found = [(s, c) for s in self.sources if (c := s.column(ref.name)) is not None]
        if len(found) > 1:
            where = ", ".join(f"{s.reference}.{c.name}" for s, c in found)
            raise StatementError(ref.line, f"the column {ref.name} is ambiguous ({where})")
        if found:
            return self._sql(*found[0])
        return self._pseudo(ref) or _unknown(ref, self.sources)

    def column_name(self, ref: ast.ColumnRef) -> str:
        """The declared name of the column ``ref`` reads (``rowtime`` for ROWTIME)."""
        self.resolve(ref)  # refuses unknown and ambiguous names
        sources = ([self.source(ref.qualifier, ref.line)] if ref.qualifier is not None
                   else self.sources)
        for source in sources:
            if (column := source.column(ref.name)) is not None:
                return column.name
        return ref.name.lower()

    def _sql(self, source: Source, column: Column) -> Typed:
        return Typed(_timestamp_safe(f"{quote(source.sql_alias)}.{quote(column.name)}",
                                     column.type), column.type)

    def _pseudo(self, ref: ast.ColumnRef) -> Typed | None:
        name = ref.name.upper()
        if name == "ROWTIME":
            return Typed(f"{quote(self.stream.sql_alias)}.{EVENT_TIME}", types.BIGINT)
        if name in ("ROWPARTITION", "ROWOFFSET"):
            raise StatementError(ref.line, f"{name} is not supported (Lakestream's records "
                                           "carry _source_partition and _source_offset)")
        if name in _WINDOW_BOUNDS:
            raise StatementError(ref.line, f"{name} is only allowed in the SELECT list of a "
                                           "windowed table")
        return None


def _timestamp_safe(sql: str, kind: SqlType) -> str:
    """A TIMESTAMP read as DuckDB's microsecond TIMESTAMP: Arrow's millisecond timestamps
    arrive as ``TIMESTAMP_MS``, which some DuckDB functions (``epoch_ms``) reject."""
    return f"CAST({sql} AS TIMESTAMP)" if kind.base == types.TIMESTAMP_T else sql


def _unknown(ref: ast.ColumnRef, sources: list[Source]) -> Typed:
    names = [c.name for s in sources for c in s.columns]
    close = difflib.get_close_matches(ref.name, names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    where = f"{ref.qualifier}.{ref.name}" if ref.qualifier else ref.name
    owners = " or ".join(s.name for s in sources)
    raise StatementError(ref.line, f"unknown column {where} in {owners}{hint}")


class ExpressionCompiler:
    """Compiles expressions of one scope.

    Args:
        scope: The columns in reach.
        rewrite: Tried on every node first; a result replaces the node's own compilation.
        aggregate_refusal: The message refusing an aggregate call where none is allowed.
        batch_rows: Whether the expressions are evaluated over input rows (``HMAC_SHA256``
            is only allowed there: its pseudonyms are prepared per batch).
    """

    def __init__(self, scope: Scope, rewrite: Callable[[ast.Expr], Typed | None] | None = None,
                 aggregate_refusal: str = "aggregate functions are not allowed here",
                 batch_rows: bool = True) -> None:
        self.scope = scope
        self.rewrite = rewrite
        self.aggregate_refusal = aggregate_refusal
        self.batch_rows = batch_rows

    def compile(self, node: ast.Expr) -> Typed:
        """``node`` as SQL and type."""
        if self.rewrite is not None and (found := self.rewrite(node)) is not None:
            return found
        if isinstance(node, ast.Literal):
            return _literal(node)
        if isinstance(node, ast.ColumnRef):
            return self.scope.resolve(node)
        if isinstance(node, ast.Dereference):
            return self._dereference(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.FunctionCall):
            if node.name in AGGREGATE_FUNCTIONS:
                raise StatementError(node.line, f"{node.name}: {self.aggregate_refusal}")
            if node.name == "HMAC_SHA256" and not self.batch_rows:
                raise StatementError(node.line, "HMAC_SHA256 is not supported over a table's "
                                                "aggregated rows: apply it in GROUP BY or in "
                                                "the stream the table reads")
            return compile_call(node, self.compile)
        if isinstance(node, ast.Cast):
            return cast(self.compile(node.operand), node.target, node.line)
        if isinstance(node, ast.Case):
            return self._case(node)
        if isinstance(node, ast.Unary):
            return self._unary(node)
        if isinstance(node, ast.Binary):
            return binary(node.op, self.compile(node.left), self.compile(node.right), node.line)
        return self._predicate(node)

    def boolean(self, node: ast.Expr, clause: str) -> Typed:
        """A condition (WHERE, HAVING, ON): refused unless BOOLEAN."""
        typed = self.compile(node)
        if typed.type.base not in (types.BOOLEAN_T, types.NULL_T):
            raise StatementError(node.line, f"{clause} needs a condition, not a {typed.type} "
                                            "value")
        return typed

    def _dereference(self, node: ast.Dereference) -> Typed:
        base = self.compile(node.base)
        if base.type.base != types.STRUCT_T:
            raise StatementError(node.line, f"-> {node.field_name}: the value is a "
                                            f"{base.type}, not a STRUCT")
        found = base.type.field(node.field_name)
        if found is None:
            names = ", ".join(n for n, _ in base.type.fields)
            raise StatementError(node.line, f"unknown field ->{node.field_name} (the struct has "
                                            f"{names})")
        name, kind = found
        return Typed(_timestamp_safe(f"struct_extract({base.sql}, {literal(name)})", kind), kind)

    def _subscript(self, node: ast.Subscript) -> Typed:
        base, index = self.compile(node.base), self.compile(node.index)
        if base.type.base == types.ARRAY_T and index.type.integral:
            return Typed(f"({base.sql})[{index.sql}]", base.type.items[0])
        if base.type.base == types.MAP_T and index.type.base == types.STRING_T:
            return Typed(f"({base.sql})[{index.sql}]", base.type.items[1])
        raise StatementError(node.line, f"cannot index a {base.type} with a {index.type}")

    def _case(self, node: ast.Case) -> Typed:
        operand = self.compile(node.operand) if node.operand is not None else None
        whens: list[tuple[str, Typed]] = []
        for condition, value in node.whens:
            if operand is None:
                test = self.boolean(condition, "CASE WHEN").sql
            else:
                other = self.compile(condition)
                comparable(operand, other, "=", condition.line)
                test = other.sql
            whens.append((test, self.compile(value)))
        default = self.compile(node.default) if node.default is not None else None
        branches = [v for _, v in whens] + ([default] if default else [])
        kind = types.common_type([b.type for b in branches])
        if kind is None or kind.base == types.NULL_T:
            found = ", ".join(str(b.type) for b in branches)
            raise StatementError(node.line, f"the CASE results have no common type ({found})")
        head = "CASE" if operand is None else f"CASE {operand.sql}"
        body = " ".join(f"WHEN {t} THEN {_as(v, kind)}" for t, v in whens)
        tail = f" ELSE {_as(default, kind)}" if default else ""
        return Typed(f"({head} {body}{tail} END)", kind)

    def _unary(self, node: ast.Unary) -> Typed:
        operand = self.compile(node.operand)
        if node.op == "NOT":
            if operand.type.base not in (types.BOOLEAN_T, types.NULL_T):
                raise StatementError(node.line, f"NOT needs a condition, not a {operand.type}")
            return Typed(f"(NOT {operand.sql})", types.BOOLEAN)
        if not operand.type.numeric:
            raise StatementError(node.line, f"unary {node.op} needs a number, not a "
                                            f"{operand.type}")
        return operand if node.op == "+" else Typed(f"(-{operand.sql})", operand.type)

    def _predicate(self, node: ast.Expr) -> Typed:
        if isinstance(node, ast.IsNull):
            operand = self.compile(node.operand)
            return Typed(f"({operand.sql} IS {'NOT ' if node.negated else ''}NULL)",
                         types.BOOLEAN)
        not_ = "NOT " if getattr(node, "negated", False) else ""
        if isinstance(node, ast.Between):
            value, low, high = (self.compile(n) for n in (node.operand, node.low, node.high))
            comparable(value, low, "BETWEEN", node.line)
            comparable(value, high, "BETWEEN", node.line)
            return Typed(f"({value.sql} {not_}BETWEEN {low.sql} AND {high.sql})", types.BOOLEAN)
        if isinstance(node, ast.InList):
            value = self.compile(node.operand)
            items = [self.compile(i) for i in node.items]
            for item in items:
                comparable(value, item, "IN", node.line)
            listed = ", ".join(i.sql for i in items)
            return Typed(f"({value.sql} {not_}IN ({listed}))", types.BOOLEAN)
        if isinstance(node, ast.Like):
            value, pattern = self.compile(node.operand), self.compile(node.pattern)
            for side in (value, pattern):
                if side.type.base not in (types.STRING_T, types.NULL_T):
                    raise StatementError(node.line, f"LIKE compares strings, not {side.type}")
            escape = f" ESCAPE {literal(node.escape)}" if node.escape is not None else ""
            return Typed(f"({value.sql} {not_}LIKE {pattern.sql}{escape})", types.BOOLEAN)
        raise StatementError(node.line, f"unsupported expression {type(node).__name__}")


def _as(value: Typed, kind: SqlType) -> str:
    return value.sql if value.type == kind else f"CAST({value.sql} AS {kind.duckdb()})"


def _literal(node: ast.Literal) -> Typed:
    text = node.text
    if node.kind == "string":
        if "${" in text:
            raise StatementError(node.line, f"variables ('{text}') are not supported: Lakestream "
                                            f"substitutes only '${{{ANON_KEY_VARIABLE}}}', as "
                                            "HMAC_SHA256's key")
        return Typed(literal(text), types.STRING, text)
    if node.kind == "integer":
        value = int(text)
        if value > 2**63 - 1:
            raise StatementError(node.line, f"the number {text} is too large for a BIGINT")
        kind = types.INTEGER if value <= 2**31 - 1 else types.BIGINT
        return Typed(str(value), kind, text)
    if node.kind == "decimal":
        digits = Decimal(text).as_tuple()
        scale = -int(digits.exponent)
        kind = types.decimal(max(len(digits.digits), scale), scale)
        return Typed(f"CAST({literal(text)} AS {kind.duckdb()})", kind, text)
    if node.kind == "double":
        return Typed(f"CAST({literal(text)} AS DOUBLE)", types.DOUBLE, text)
    if node.kind == "boolean":
        return Typed(text.upper(), types.BOOLEAN)
    return Typed("NULL", types.NULL)
