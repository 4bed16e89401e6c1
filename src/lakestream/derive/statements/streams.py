"""``CREATE STREAM … AS SELECT`` and ``INSERT INTO … SELECT``: derived streams.

A derived stream's rows are its SELECT list (``*`` and ``alias.*`` expand to
the declared columns), followed by the batch columns of the row it came from,
in input order. Its records' key:

- with ``PARTITION BY``, the SELECT-list columns it names (each PARTITION BY
  expression must be one of the SELECT list);
- without, the column of the SELECT list named like its source's key column
  (a derived stream keeps its source's key by name: the anonymized stream, whose
  ``user_id`` is the pseudonym, is keyed by the pseudonym); none if there is no
  such column.

Records go to the partition of their input record (``ingest`` drops replayed
ones by ``_source_partition``/``_source_offset``): ``PARTITION BY`` sets the
key, it does not repartition.
"""

from __future__ import annotations

from dataclasses import replace

from lakestream.derive.statements import ast
from lakestream.derive.statements.compiler import Column, ExpressionCompiler
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.plan import EventTime, Relation, SourcePlan, StreamPlan
from lakestream.derive.statements.properties import OUTPUT_PROPERTIES, read_properties
from lakestream.derive.statements.query import (
    Prepared,
    check_names,
    output_key_format,
    output_name,
    prepare,
    pseudonym_inputs,
    source_key,
)
from lakestream.derive.statements.render import text
from lakestream.derive.statements.typed import Typed
from lakestream.derive.statements.types import quote

_AGGREGATES_MAKE_TABLES = ("aggregate functions make a table: use CREATE TABLE … AS SELECT … "
                           "GROUP BY")


def plan_stream(statement: ast.CreateAs, relations: dict[str, Relation],
                source: str | None) -> StreamPlan:
    """Validate and compile a ``CREATE STREAM … AS SELECT``."""
    found = read_properties(statement.properties, OUTPUT_PROPERTIES, statement.line)
    topic = found["KAFKA_TOPIC"].value if "KAFKA_TOPIC" in found else statement.name
    plan = _compile(statement.name, topic, statement.query, relations, source, insert=False,
                    line=statement.line)
    line = (statement.query.partition_by or [statement.query])[0].line
    return replace(plan, key_format=output_key_format(found, relations[plan.reads],
                                                      plan.key_columns, line))


def plan_insert(statement: ast.InsertInto, relations: dict[str, Relation],
                source: str | None) -> StreamPlan:
    """Validate and compile an ``INSERT INTO stream SELECT …`` into a derived stream."""
    target = relations.get(statement.target)
    if target is None:
        raise StatementError(statement.line, f"INSERT INTO {statement.target}: unknown stream")
    if not isinstance(target, StreamPlan):
        what = "a stream over a topic" if isinstance(target, SourcePlan) else "a table"
        raise StatementError(statement.line, f"INSERT INTO {statement.target}: it is {what}; "
                                             "insert into a stream made by CREATE STREAM … AS "
                                             "SELECT")
    plan = _compile(target.name, target.topic, statement.query, relations, source, insert=True,
                    line=statement.line)
    if [(c.name.lower(), c.type) for c in plan.columns] != [
            (c.name.lower(), c.type) for c in target.columns]:
        expected = ", ".join(f"{c.name} {c.type}" for c in target.columns)
        raise StatementError(statement.query.line, f"INSERT INTO {target.name}: the SELECT "
                                                   f"list must give its columns in order "
                                                   f"({expected})")
    plan = replace(plan, key_format=target.key_format)
    if [k.lower() for k in plan.key_columns] != [k.lower() for k in target.key_columns]:
        keys = ", ".join(target.key_columns) or "no key"
        raise StatementError(statement.query.line, f"INSERT INTO {target.name}: the rows must "
                                                   f"be keyed like it ({keys})")
    return plan


def _compile(name: str, topic: str, query: ast.Query, relations: dict[str, Relation],
             source: str | None, insert: bool, line: int) -> StreamPlan:
    making = "INSERT INTO" if insert else "CREATE STREAM … AS SELECT"
    _refuse_table_clauses(query, making)
    prepared = prepare(query, relations, making)
    compiler = ExpressionCompiler(prepared.scope, aggregate_refusal=_AGGREGATES_MAKE_TABLES)
    items = _items(query, prepared, compiler)
    check_names([(n, line) for n, _, line in items])
    columns = tuple(Column(n, t.type) for n, t, _ in items)
    keys = _key_columns(query, prepared, compiler, items)
    select = ", ".join(f"{t.sql} AS {quote(n)}" for n, t, _ in items)
    sql = (f"SELECT {select}, {prepared.batch_columns_sql()} {prepared.from_sql}"
           + (f" WHERE {prepared.where_sql}" if prepared.where_sql else "")
           + f" ORDER BY {quote(prepared.alias)}._source_partition, "
             f"{quote(prepared.alias)}._source_offset")
    nodes = [i.expr for i in query.items if i.expr is not None] + list(query.partition_by)
    nodes += [query.where] if query.where is not None else []
    return StreamPlan(name, topic, prepared.stream.name, prepared.tables, columns, keys,
                      _event_time(prepared.stream), sql, insert, line, source,
                      pseudonym_inputs(nodes, compiler, prepared),
                      join_kinds=prepared.join_kinds)


def _refuse_table_clauses(query: ast.Query, making: str) -> None:
    if query.group_by:
        raise StatementError(query.group_by[0].line, f"GROUP BY makes a table: {making} cannot "
                                                     "have it (use CREATE TABLE … AS SELECT)")
    if query.window is not None:
        raise StatementError(query.window.line, f"WINDOW makes a table: {making} cannot have "
                                                "it (use CREATE TABLE … AS SELECT)")
    if query.having is not None:
        raise StatementError(query.having.line, "HAVING needs GROUP BY (a table)")


def _items(query: ast.Query, prepared: Prepared, compiler: ExpressionCompiler
           ) -> list[tuple[str, Typed, int]]:
    """``(name, compiled, line)`` of each output column, stars expanded."""
    out: list[tuple[str, Typed, int]] = []
    for item in query.items:
        if item.star:
            out += _star(item, prepared)
            continue
        assert item.expr is not None
        out.append((output_name(item, prepared.scope), compiler.compile(item.expr), item.line))
    return out


def _star(item: ast.SelectItem, prepared: Prepared) -> list[tuple[str, Typed, int]]:
    scope = prepared.scope
    if item.star_qualifier is None and len(scope.sources) > 1:
        raise StatementError(item.line, "SELECT * with a JOIN is not supported: list the "
                                        "columns (or use alias.*)")
    source = (scope.source(item.star_qualifier, item.line) if item.star_qualifier
              else scope.stream)
    return [(c.name, scope.resolve(ast.ColumnRef(item.line, source.reference, c.name)),
             item.line) for c in source.columns]


def _key_columns(query: ast.Query, prepared: Prepared, compiler: ExpressionCompiler,
                 items: list[tuple[str, Typed, int]]) -> tuple[str, ...]:
    if not query.partition_by:
        names = {n.lower(): n for n, _, _ in items}
        inherited = [names.get(k.lower()) for k in source_key(prepared.stream)]
        return tuple(n for n in inherited if n is not None)
    keys: list[str] = []
    for node in query.partition_by:
        sql = compiler.compile(node).sql
        match = next((n for n, t, _ in items if t.sql == sql), None)
        if match is None:
            raise StatementError(node.line, f"PARTITION BY {text(node)}: partition by an "
                                            "expression of the SELECT list")
        keys.append(match)
    return tuple(keys)


def _event_time(stream: Relation) -> EventTime:
    """A derived stream's event time: its source's (ROWTIME carries through)."""
    return stream.event_time if isinstance(stream, SourcePlan | StreamPlan) else EventTime(None)
