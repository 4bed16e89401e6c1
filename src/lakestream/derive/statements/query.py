"""What derived streams and tables share: their FROM, JOINs, WHERE and output names.

A query reads one stream (``FROM``) and joins it to tables declared over
topics, each on the table's primary key: ``JOIN t ON <stream expression> =
t.<primary key>``. Joins to streams (with or without ``WITHIN``), to aggregate
tables, table-table joins and conditions on anything but the key are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lakestream.derive.statements import ast
from lakestream.derive.statements.compiler import Column, ExpressionCompiler, Scope, Source
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.operators import comparable
from lakestream.derive.statements.plan import (
    BATCH_COLUMNS,
    WINDOW_END,
    WINDOW_START,
    Relation,
    SourcePlan,
    StreamPlan,
)
from lakestream.derive.statements.properties import key_format
from lakestream.derive.statements.pseudonyms import inputs_sql
from lakestream.derive.statements.render import text, walk
from lakestream.derive.statements.types import quote

_RESERVED = re.compile(r"^_(agg|arg)\d+(_.*)?$")


@dataclass(frozen=True)
class Prepared:
    """A query's FROM … JOIN … WHERE, compiled.

    Attributes:
        stream: The relation of FROM.
        scope: The columns in reach (the stream's, then each joined table's).
        from_sql: ``FROM … [JOIN …]`` in DuckDB.
        where_sql: The WHERE condition in DuckDB, or ``None``.
        tables: The joined tables' names.
        join_kinds: ``JOIN`` or ``LEFT JOIN``, for each of :attr:`tables`.
    """

    stream: Relation
    scope: Scope
    from_sql: str
    where_sql: str | None
    tables: tuple[str, ...]
    join_kinds: tuple[str, ...]

    @property
    def alias(self) -> str:
        """The SQL alias of the stream (batch columns are read through it)."""
        return self.scope.stream.sql_alias

    def batch_columns_sql(self) -> str:
        """``_source_partition, _source_offset, _event_time`` of the stream's rows."""
        return ", ".join(f"{quote(self.alias)}.{c}" for c in BATCH_COLUMNS)


def prepare(query: ast.Query, relations: dict[str, Relation], making: str) -> Prepared:
    """Resolve FROM and JOINs, compile WHERE; ``making`` names the output kind for messages."""
    stream = relations.get(query.source.name)
    if stream is None:
        raise StatementError(query.source.line, f"unknown stream {query.source.name}")
    if stream.kind != "STREAM" and query.joins:
        joined = query.joins[0].relation.name
        raise StatementError(query.joins[0].line, f"a table-table join ({stream.name} JOIN "
                                                  f"{joined}) is not supported: join a stream "
                                                  "to a table")
    if stream.kind != "STREAM":
        raise StatementError(query.source.line, f"{making} cannot read FROM the table "
                                                f"{stream.name}: read a stream (and JOIN the "
                                                "table)")
    sources = [_source(query.source, stream)]
    joins_sql: list[str] = []
    for join in query.joins:
        source, sql = _join(join, sources, relations)
        sources.append(source)
        joins_sql.append(sql)
    scope = Scope(sources)
    where_sql = None
    if query.where is not None:
        where = ExpressionCompiler(scope, aggregate_refusal="aggregate functions are not "
                                   "allowed in WHERE (use HAVING)")
        where_sql = where.boolean(query.where, "WHERE").sql
    from_sql = " ".join([f"FROM {quote(stream.name)} AS {quote(sources[0].sql_alias)}",
                         *joins_sql])
    kinds = tuple("LEFT JOIN" if j.kind == "LEFT" else "JOIN" for j in query.joins)
    return Prepared(stream, scope, from_sql, where_sql, tuple(s.name for s in sources[1:]), kinds)


def _source(relation: ast.Relation, found: Relation) -> Source:
    return Source(relation.reference, found.name, relation.reference, found.columns,
                  found.kind == "TABLE")


def _join(join: ast.Join, sources: list[Source], relations: dict[str, Relation]
          ) -> tuple[Source, str]:
    name = join.relation.name
    table = relations.get(name)
    if table is None:
        raise StatementError(join.relation.line, f"unknown table {name} in JOIN")
    if table.kind == "STREAM":
        raise StatementError(join.line, f"a stream-stream join (JOIN {name}) is not supported: "
                                        "join a stream to a table keyed by the join column")
    if not isinstance(table, SourcePlan):
        raise StatementError(join.line, f"joining the aggregate table {name} is not supported: "
                                        "join a table declared over a topic")
    reference = join.relation.reference
    if any(s.reference.lower() == reference.lower() for s in sources):
        raise StatementError(join.line, f"{reference} appears twice in FROM/JOIN: give each "
                                        "an alias")
    source = _source(join.relation, table)
    if len(table.key_columns) != 1:
        raise StatementError(join.line, f"the table {name} has {len(table.key_columns)} key "
                                        "columns: joins need a table with one PRIMARY KEY")
    stream_side, key = _join_sides(join, source, sources, table.key_columns[0])
    compiler = ExpressionCompiler(Scope(sources), aggregate_refusal="aggregate functions are "
                                  "not allowed in a join condition")
    stream_sql = compiler.compile(stream_side)
    key_typed = Scope([source]).resolve(ast.ColumnRef(join.line, None, key.name))
    comparable(stream_sql, key_typed, "=", join.condition.line)
    kind = "LEFT JOIN" if join.kind == "LEFT" else "JOIN"
    sql = (f"{kind} {quote(name)} AS {quote(source.sql_alias)} "
           f"ON ({stream_sql.sql}) = {key_typed.sql}")
    return source, sql


def _join_sides(join: ast.Join, table: Source, sources: list[Source], key_name: str
                ) -> tuple[ast.Expr, Column]:
    """The stream side of ``<stream expression> = <table>.<key>``, and the key column."""
    condition = join.condition
    shape = (f"the join condition must be <stream expression> = {table.reference}."
             f"{key_name} (the table's primary key)")
    if not isinstance(condition, ast.Binary) or condition.op != "=":
        raise StatementError(condition.line, shape)
    sides = [(side, _uses_table(side, table, sources)) for side in (condition.left,
                                                                    condition.right)]
    table_sides = [side for side, uses in sides if uses]
    if len(table_sides) != 1:
        raise StatementError(condition.line, shape)
    table_side = table_sides[0]
    stream_side = next(side for side, uses in sides if not uses)
    if not isinstance(table_side, ast.ColumnRef):
        raise StatementError(condition.line, shape)
    column = table.column(table_side.name)
    if column is None:
        raise StatementError(table_side.line, f"unknown column {text(table_side)} in table "
                                              f"{table.name}")
    if column.name.lower() != key_name.lower():
        raise StatementError(table_side.line, f"the join column {text(table_side)} is not the "
                                              f"primary key of table {table.name} ({key_name})")
    return stream_side, column


def _uses_table(node: ast.Expr, table: Source, sources: list[Source]) -> bool:
    """Whether ``node`` reads a column of the joined ``table``."""
    for ref in (n for n in walk(node) if isinstance(n, ast.ColumnRef)):
        if ref.qualifier is not None:
            if ref.qualifier.lower() in (table.reference.lower(), table.name.lower()):
                return True
        elif table.column(ref.name) is not None and not any(
                s.column(ref.name) is not None for s in sources):
            return True
    return False


def output_name(item: ast.SelectItem, scope: Scope) -> str:
    """An item's column name: its alias, a column's or struct field's own name, or a refusal."""
    if item.alias is not None:
        return item.alias
    node = item.expr
    if isinstance(node, ast.ColumnRef):
        return scope.column_name(node)
    if isinstance(node, ast.Dereference):
        return node.field_name
    assert node is not None
    raise StatementError(item.line, f"name the expression {text(node)}: add AS <column>")


def check_names(names: list[tuple[str, int]]) -> None:
    """Refuse duplicate or reserved output column names."""
    seen: set[str] = set()
    reserved = {*BATCH_COLUMNS, WINDOW_START, WINDOW_END}
    for name, line in names:
        if name.lower() in seen:
            raise StatementError(line, f"the column name {name} appears twice in the SELECT list")
        if name in reserved or _RESERVED.match(name):
            raise StatementError(line, f"the column name {name} is reserved by Lakestream")
        seen.add(name.lower())


def source_key(stream: Relation) -> tuple[str, ...]:
    """The key columns a stream's records carry (``KEY`` columns, or a derived stream's key)."""
    if isinstance(stream, SourcePlan | StreamPlan):
        return stream.key_columns
    return ()


def pseudonym_inputs(nodes: list[ast.Expr], compiler: ExpressionCompiler,
                     prepared: Prepared) -> str | None:
    """The SELECT of the values the ``HMAC_SHA256`` calls among ``nodes`` pseudonymize."""
    arguments: list[str] = []
    for call in (n for node in nodes for n in walk(node)):
        if not isinstance(call, ast.FunctionCall) or call.name != "HMAC_SHA256" or not call.args:
            continue
        if any(isinstance(n, ast.FunctionCall) and n.name == "HMAC_SHA256"
               for n in walk(call.args[0])):
            raise StatementError(call.line, "HMAC_SHA256 of HMAC_SHA256 is not supported")
        sql = compiler.compile(call.args[0]).sql
        if sql not in arguments:
            arguments.append(sql)
    return inputs_sql(arguments, prepared.from_sql)


def output_key_format(found: dict[str, ast.Property], stream: Relation, keys: tuple[str, ...],
                      line: int) -> str:
    """An output's key format: ``KEY_FORMAT``/``FORMAT``, else its source's (``JSON`` for
    several key columns); ``KAFKA`` cannot hold several columns."""
    if "KEY_FORMAT" in found or "FORMAT" in found:
        chosen = key_format(found)
    elif len(keys) > 1:
        chosen = "JSON"
    else:
        chosen = stream.key_format if isinstance(stream, SourcePlan | StreamPlan) else "KAFKA"
    if chosen == "KAFKA" and len(keys) > 1:
        raise StatementError(line, f"several key columns ({', '.join(keys)}) need "
                                   "KEY_FORMAT='JSON'")
    return chosen
