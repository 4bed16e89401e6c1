"""``CREATE TABLE … AS SELECT … [WINDOW …] GROUP BY … [HAVING …]``: aggregate tables.

Rules (ksqlDB's): every GROUP BY expression is in the SELECT list (it becomes a
key column); every other column of the SELECT list is inside an aggregate
function or built from GROUP BY expressions; aggregates do not nest. A windowed
table reads a stream with an event-time column (``TIMESTAMP``); its key also
holds the window bounds, published as ``windowstart``/``windowend`` (BIGINT
epoch ms) unless the SELECT list names ``WINDOWSTART``/``WINDOWEND``. Rows whose
GROUP BY values hold a NULL are left out (ksqlDB drops them too).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lakestream.derive.statements import ast, types
from lakestream.derive.statements.aggregates import AggregateSpec, aggregate_kind
from lakestream.derive.statements.compiler import Column, ExpressionCompiler
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.functions import AGGREGATE_FUNCTIONS
from lakestream.derive.statements.money import micro_units_sql
from lakestream.derive.statements.plan import (
    AGGREGATED,
    WINDOW_END,
    WINDOW_START,
    Relation,
    TablePlan,
)
from lakestream.derive.statements.properties import OUTPUT_PROPERTIES, read_properties
from lakestream.derive.statements.query import (
    Prepared,
    check_names,
    output_key_format,
    output_name,
    prepare,
    pseudonym_inputs,
)
from lakestream.derive.statements.render import text, walk
from lakestream.derive.statements.table_sql import delta_sql, distinct_sql, pre_aggregation_sql
from lakestream.derive.statements.typed import Typed
from lakestream.derive.statements.types import quote
from lakestream.derive.statements.windows import WindowSpec

_BOUNDS = {"WINDOWSTART": WINDOW_START, "WINDOWEND": WINDOW_END}


@dataclass
class _Key:
    """A GROUP BY expression: its row SQL and type, and its output column once matched."""

    node: ast.Expr
    row: Typed
    name: str = ""


@dataclass
class _Aggregates:
    """The aggregate calls of a table, numbered in order of appearance."""

    specs: dict[ast.FunctionCall, AggregateSpec] = field(default_factory=dict)
    arguments: dict[str, str] = field(default_factory=dict)  # _argN → its row SQL


def plan_table(statement: ast.CreateAs, relations: dict[str, Relation],
               source: str | None) -> TablePlan:
    """Validate and compile a ``CREATE TABLE … AS SELECT``."""
    found = read_properties(statement.properties, OUTPUT_PROPERTIES, statement.line)
    topic = found["KAFKA_TOPIC"].value if "KAFKA_TOPIC" in found else statement.name
    query = statement.query
    prepared = prepare(query, relations, "CREATE TABLE … AS SELECT")
    if not query.group_by:
        raise StatementError(query.line, "CREATE TABLE … AS SELECT needs GROUP BY (tables "
                                         "without aggregation are not supported)")
    if query.partition_by:
        raise StatementError(query.partition_by[0].line, "PARTITION BY is not allowed in a "
                                                         "table: its GROUP BY is its key")
    window = _window(query, prepared)
    plan = _Table(statement, prepared, window).plan(topic, source)
    fmt = output_key_format(found, prepared.stream, plan.key_columns, query.group_by[0].line)
    return replace(plan, key_format=fmt)


def _window(query: ast.Query, prepared: Prepared) -> WindowSpec | None:
    if query.window is None:
        return None
    stream = prepared.stream
    event_time = getattr(stream, "event_time", None)
    if event_time is None or not event_time.declared:
        raise StatementError(query.window.line, f"a windowed table needs its source's event "
                                                f"time: declare WITH (TIMESTAMP='column') on "
                                                f"the stream {stream.name} (or the stream it "
                                                "reads)")
    return WindowSpec.of(query.window)


class _Table:
    """The compilation of one table statement."""

    def __init__(self, statement: ast.CreateAs, prepared: Prepared,
                 window: WindowSpec | None) -> None:
        self.statement = statement
        self.query = statement.query
        self.prepared = prepared
        self.window = window
        scope = prepared.scope
        self.row = ExpressionCompiler(scope, aggregate_refusal="aggregate functions are not "
                                      "allowed in GROUP BY")
        self.argument = ExpressionCompiler(scope, aggregate_refusal="aggregate functions "
                                           "cannot be nested")
        self.keys = [_Key(node, self.row.compile(node)) for node in self.query.group_by]
        self.aggregates = _Aggregates()
        self.output = ExpressionCompiler(scope, rewrite=self._rewrite, batch_rows=False)

    def plan(self, topic: str, source: str | None) -> TablePlan:
        items = self._items()
        self._name_keys(items)
        named = [(name, self.output.compile(node), line) for name, node, line in items]
        having_sql = None
        if self.query.having is not None:
            having_sql = self.output.boolean(self.query.having, "HAVING").sql
        named += self._implicit_bounds(named)
        check_names([(n, line) for n, _, line in named])
        columns = tuple(Column(n, t.type) for n, t, _ in named)
        group = tuple(k.name for k in self.keys)
        bounds = self._bound_names(named)
        select = ", ".join(f"{t.sql} AS {quote(n)}" for n, t, _ in named)
        output_sql = (f"SELECT {select} FROM {AGGREGATED}"
                      + (f" WHERE {having_sql}" if having_sql else ""))
        specs = tuple(self.aggregates.specs.values())
        keys_sql = [(k.name, k.row.sql) for k in self.keys]
        pre = pre_aggregation_sql(self.prepared, keys_sql, self.aggregates.arguments,
                                  self.window)
        return TablePlan(
            self.statement.name, topic, self.prepared.stream.name, self.prepared.tables,
            columns, group + bounds, group, self.window, specs, pre,
            delta_sql(pre, group, specs, self.window is not None),
            distinct_sql(pre, group, specs, self.window is not None), output_sql,
            having_sql is not None, self.statement.line, source,
            pseudonym_inputs(self._row_nodes(), self.argument, self.prepared),
            join_kinds=self.prepared.join_kinds)

    def _row_nodes(self) -> list[ast.Expr]:
        """The expressions evaluated over input rows: GROUP BY, WHERE, aggregate arguments."""
        nodes = list(self.query.group_by) + ([self.query.where] if self.query.where else [])
        return nodes + [arg for call in self.aggregates.specs for arg in call.args[:1]]

    def _items(self) -> list[tuple[str, ast.Expr, int]]:
        """``(name, expression, line)`` of each SELECT item."""
        items = []
        for item in self.query.items:
            if item.star:
                raise StatementError(item.line, "SELECT * is not allowed in an aggregate table: "
                                                "list the key columns and aggregates")
            assert item.expr is not None
            items.append((item.alias or self._default_name(item), item.expr, item.line))
        return items

    def _default_name(self, item: ast.SelectItem) -> str:
        node = item.expr
        if isinstance(node, ast.ColumnRef) and node.name.upper() in _BOUNDS:
            return node.name.lower()
        return output_name(item, self.prepared.scope)

    def _name_keys(self, items: list[tuple[str, ast.Expr, int]]) -> None:
        """Give each GROUP BY expression the name of the SELECT item that is it."""
        for key in self.keys:
            for name, node, _ in items:
                if not _has_aggregate(node) and not _is_bound(node) and (
                        self.row.compile(node).sql == key.row.sql):
                    key.name = name
                    break
            else:
                raise StatementError(key.node.line, f"the GROUP BY expression {text(key.node)} "
                                                    "is not in the SELECT list")

    def _implicit_bounds(self, named: list[tuple[str, Typed, int]]
                         ) -> list[tuple[str, Typed, int]]:
        """The window bounds the SELECT list does not name, as ``windowstart``/``windowend``."""
        if self.window is None:
            return []
        selected = {t.sql for _, t, _ in named}
        line = self.statement.line
        return [(name.lower(), Typed(quote(column), types.BIGINT), line)
                for name, column in _BOUNDS.items() if quote(column) not in selected]

    def _bound_names(self, named: list[tuple[str, Typed, int]]) -> tuple[str, ...]:
        if self.window is None:
            return ()
        return tuple(next(n for n, t, _ in named if t.sql == quote(column))
                     for column in _BOUNDS.values())

    def _rewrite(self, node: ast.Expr) -> Typed | None:
        """A table's SELECT list and HAVING: aggregates, window bounds and keys by name."""
        if isinstance(node, ast.FunctionCall) and node.name in AGGREGATE_FUNCTIONS:
            spec = self._aggregate(node)
            return Typed(quote(spec.name), spec.output_type)
        if _is_bound(node):
            assert isinstance(node, ast.ColumnRef)
            if self.window is None:
                raise StatementError(node.line, f"{node.name.upper()} needs a WINDOW")
            return Typed(quote(_BOUNDS[node.name.upper()]), types.BIGINT)
        if _has_aggregate(node) or isinstance(node, ast.Literal):
            return None
        row = self.row.compile(node)
        for key in self.keys:
            if row.sql == key.row.sql:
                return Typed(quote(key.name), key.row.type)
        if isinstance(node, ast.ColumnRef | ast.Dereference):
            raise StatementError(node.line, f"the column {text(node)} is neither in GROUP BY nor "
                                            "inside an aggregate function")
        return None

    def _aggregate(self, node: ast.FunctionCall) -> AggregateSpec:
        if node in self.aggregates.specs:
            return self.aggregates.specs[node]
        index = len(self.aggregates.specs)
        argument, arg_type, ignore_nulls = self._argument(node, index)
        kind = aggregate_kind(node.name, arg_type)
        if isinstance(kind, str):
            raise StatementError(node.line, kind)
        state, output_type, scale = kind
        spec = AggregateSpec(f"_agg{index}", node.name, argument and f"_arg{index}", arg_type,
                             output_type, state, scale, ignore_nulls, text(node), node.line)
        if argument is not None:
            self.aggregates.arguments[f"_arg{index}"] = self._argument_sql(node, spec)
        self.aggregates.specs[node] = spec
        return spec

    def _argument(self, node: ast.FunctionCall, index: int
                  ) -> tuple[str | None, types.SqlType | None, bool]:
        """The argument's SQL and type, and the ignore-nulls flag of ``*_BY_OFFSET``."""
        name = node.name
        if node.star:
            if name != "COUNT":
                raise StatementError(node.line, f"{name}(*) is not supported")
            return None, None, False
        by_offset = name.endswith("_BY_OFFSET")
        if len(node.args) != 1 and not (by_offset and len(node.args) == 2):
            raise StatementError(node.line, f"{name} takes one argument, not {len(node.args)}")
        ignore_nulls = False
        if len(node.args) == 2:
            flag = node.args[1]
            if not isinstance(flag, ast.Literal) or flag.kind != "boolean":
                raise StatementError(node.line, f"{name}(x, n) (the n latest values) is not "
                                                "supported: the second argument may be true "
                                                "(skip nulls) or false")
            ignore_nulls = flag.text == "true"
        typed = self.argument.compile(node.args[0])
        return typed.sql, typed.type, ignore_nulls

    def _argument_sql(self, node: ast.FunctionCall, spec: AggregateSpec) -> str:
        """What the pre-aggregation rows carry for the call: micro-units or scaled units for
        exact sums, the value otherwise."""
        if spec.state in ("sum_micro", "avg_micro"):
            return micro_units_sql(node.args[0], self.argument).sql
        value = self.argument.compile(node.args[0]).sql
        if spec.state == "sum_decimal":
            return f"CAST(({value}) * {10 ** spec.scale} AS HUGEINT)"
        return value


def _has_aggregate(node: ast.Expr) -> bool:
    return any(isinstance(n, ast.FunctionCall) and n.name in AGGREGATE_FUNCTIONS
               for n in walk(node))


def _is_bound(node: ast.Expr) -> bool:
    return isinstance(node, ast.ColumnRef) and node.qualifier is None and (
        node.name.upper() in _BOUNDS)
