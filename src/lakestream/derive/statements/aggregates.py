"""Aggregate functions of tables and the exact state each one keeps.

A table's state is kept per input partition and key (and window): each batch
adds its *delta* (:meth:`AggregateSpec.delta_columns`, DuckDB aggregates over
the batch's pre-aggregation rows), partitions' states merge by each state
column's rule, and :meth:`AggregateSpec.finish` turns the merged state into the
published value. Kinds of state:

- ``count``: a count (``COUNT(*)``, ``COUNT(x)`` counts non-null values).
- ``sum_integer`` / ``sum_micro`` / ``sum_decimal``: an integer sum — of the values,
  of micro-units (DOUBLE, see :mod:`.money`), of units of 10⁻ˢ (``DECIMAL(p, s)``).
- ``avg_integer`` / ``avg_micro``: such a sum and the count of non-null values.
- ``min`` / ``max``: the extreme non-null value.
- ``distinct``: the set of distinct non-null values (``COUNT_DISTINCT``; exact, where
  ksqlDB's is a HyperLogLog estimate).
- ``latest`` / ``earliest``: the value of the key's latest (earliest) event with its
  event time, input offset and partition: the order is (event time, offset,
  partition), as docs/ksqldb.md describes. NULL values count unless the call says
  ``LATEST_BY_OFFSET(x, true)``; the values of several ``LATEST_BY_OFFSET`` of a
  table then come from one event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lakestream.derive.statements import types
from lakestream.derive.statements.compiler import EVENT_TIME, SOURCE_OFFSET
from lakestream.derive.statements.money import mean, money
from lakestream.derive.statements.types import SqlType, quote

# state kind → (merge rule of each state column suffix)
_STATE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "count": (("count", "add"),),
    "sum_integer": (("sum", "add"),),
    "sum_micro": (("micro", "add"),),
    "sum_decimal": (("units", "add"),),
    "avg_integer": (("sum", "add"), ("count", "add")),
    "avg_micro": (("micro", "add"), ("count", "add")),
    "min": (("min", "min"),),
    "max": (("max", "max"),),
    "distinct": (),
    "latest": (("value", "latest"), ("time", "latest"), ("offset", "latest")),
    "earliest": (("value", "earliest"), ("time", "earliest"), ("offset", "earliest")),
}


@dataclass(frozen=True)
class StateColumn:
    """One column of an aggregate's state.

    Attributes:
        name: ``<aggregate>_<part>``, e.g. ``_agg0_micro``.
        delta_sql: The DuckDB aggregate computing a batch's contribution.
        merge: How two states combine: ``add``, ``min``, ``max``, or ``latest`` /
            ``earliest`` (the row with the higher / lower (time, offset, partition) wins).
    """

    name: str
    delta_sql: str
    merge: str


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregate call of a table.

    Attributes:
        name: Its column in the aggregated relation (``_agg0``…).
        function: ``COUNT``, ``SUM``, ``AVG``, ``MIN``, ``MAX``, ``COUNT_DISTINCT``,
            ``LATEST_BY_OFFSET`` or ``EARLIEST_BY_OFFSET``.
        argument: Its argument's column in the pre-aggregation rows (``_arg0``…), or
            ``None`` for ``COUNT(*)``.
        argument_type: The argument's ksqlDB type (``None`` for ``COUNT(*)``).
        output_type: The type of the published value.
        state: The kind of state (module docstring).
        scale: The decimal scale of a ``sum_decimal`` state.
        ignore_nulls: For ``latest``/``earliest``: whether NULL values are skipped.
        text: The call as the statement writes it, for ``describe``.
        line: The line of the call.
    """

    name: str
    function: str
    argument: str | None
    argument_type: SqlType | None
    output_type: SqlType
    state: str
    scale: int
    ignore_nulls: bool
    text: str
    line: int

    @property
    def ranked(self) -> bool:
        """Whether its delta needs the rows ranked by event order."""
        return self.state in ("latest", "earliest")

    @property
    def rank_column(self) -> str:
        """The rank column of its delta: 1 marks the latest (earliest) row of a group."""
        return f"{self.name}_rank"

    def rank_sql(self, group: list[str]) -> str:
        """The window function ranking a group's rows for a ``latest``/``earliest`` state."""
        order = "DESC" if self.state == "latest" else "ASC"
        partition = list(group)
        if self.ignore_nulls:
            partition.append(f"({quote(self.argument or '')} IS NULL)")
        return (f"row_number() OVER (PARTITION BY {', '.join(partition)} "
                f"ORDER BY {EVENT_TIME} {order}, {SOURCE_OFFSET} {order})")

    def state_columns(self) -> tuple[StateColumn, ...]:
        """The state's columns, each with the SQL of a batch's delta and its merge rule."""
        arg = quote(self.argument) if self.argument else ""
        chosen = f"{self.rank_column} = 1"
        if self.ignore_nulls:
            chosen += f" AND {arg} IS NOT NULL"
        deltas = {
            "count": f"count({arg or '*'})",
            "sum": f"CAST(coalesce(sum({arg}), 0) AS HUGEINT)",
            "micro": f"CAST(coalesce(sum({arg}), 0) AS BIGINT)",
            "units": f"CAST(coalesce(sum({arg}), 0) AS HUGEINT)",
            "min": f"min({arg})",
            "max": f"max({arg})",
            "value": f"first({arg}) FILTER (WHERE {chosen})",
            "time": f"first({EVENT_TIME}) FILTER (WHERE {chosen})",
            "offset": f"first({SOURCE_OFFSET}) FILTER (WHERE {chosen})",
        }
        return tuple(StateColumn(f"{self.name}_{part}", deltas[part], merge)
                     for part, merge in _STATE_COLUMNS[self.state])

    def finish(self, state: Mapping[str, Any]) -> Any:
        """The published value of a merged state (``state`` maps state column names to values;
        a ``distinct`` state has ``<name>_values``, the set of distinct values)."""
        return self.finisher()(state)

    def finisher(self) -> Callable[[Mapping[str, Any]], Any]:
        """:meth:`finish` as a function with the state's column names resolved once (it runs
        for every touched key of every batch)."""
        kind = self.state
        col = {part: f"{self.name}_{part}" for part, _ in _STATE_COLUMNS[kind]}
        if kind == "count":
            count = col["count"]
            return lambda state: int(state.get(count) or 0)
        if kind in ("sum_integer", "sum_micro", "sum_decimal"):
            total = col["sum" if kind == "sum_integer" else "micro" if kind == "sum_micro"
                        else "units"]
            if kind == "sum_integer":
                return lambda state: int(state.get(total) or 0)
            if kind == "sum_micro":
                return lambda state: money(int(state.get(total) or 0))
            scale = -self.scale
            return lambda state: Decimal(int(state.get(total) or 0)).scaleb(scale)
        if kind in ("avg_integer", "avg_micro"):
            total, count = col["sum" if kind == "avg_integer" else "micro"], col["count"]
            if kind == "avg_micro":
                return lambda state: mean(int(state.get(total) or 0),
                                          int(state.get(count) or 0))

            def average(state: Mapping[str, Any]) -> float | None:
                n = int(state.get(count) or 0)
                return int(state.get(total) or 0) / n if n else None

            return average
        if kind == "distinct":
            values = f"{self.name}_values"
            return lambda state: len(state.get(values) or ())
        chosen = col["min" if kind == "min" else "max" if kind == "max" else "value"]
        return lambda state: state.get(chosen)

    def describe(self) -> str:
        """One line: the call, its published type and the state it keeps."""
        kept = {
            "count": "a count", "sum_integer": "an integer sum",
            "sum_micro": "an exact sum of micro-units (10^-6)",
            "sum_decimal": f"an exact sum of units of 10^-{self.scale}",
            "avg_integer": "an integer sum and a count",
            "avg_micro": "an exact sum of micro-units (10^-6) and a count",
            "min": "the smallest value", "max": "the largest value",
            "distinct": "the set of distinct values (exact)",
            "latest": "the value of the latest event by (event time, offset, partition)",
            "earliest": "the value of the earliest event by (event time, offset, partition)",
        }[self.state]
        if self.ranked:
            kept += ", nulls skipped" if self.ignore_nulls else ", nulls kept"
        return f"{self.text} -> {self.output_type}: {kept}"


def aggregate_kind(function: str, argument: SqlType | None) -> tuple[str, SqlType, int] | str:
    """``(state kind, output type, decimal scale)`` of a call, or why it is refused."""
    if function == "COUNT":
        return "count", types.BIGINT, 0
    assert argument is not None
    base = argument.base
    if function in ("SUM", "AVG"):
        if not argument.numeric or base == types.NULL_T:
            return f"{function} needs a number, not a {argument}"
        if function == "SUM":
            if base == types.DOUBLE_T:
                return "sum_micro", types.DOUBLE, 0
            if base == types.DECIMAL_T:
                return "sum_decimal", argument, argument.scale
            return "sum_integer", types.BIGINT, 0
        if base == types.DECIMAL_T:
            return "AVG of a DECIMAL is not supported (ksqlDB has none: CAST to DOUBLE)"
        return ("avg_micro" if base == types.DOUBLE_T else "avg_integer"), types.DOUBLE, 0
    if function in ("MIN", "MAX"):
        if not (argument.numeric or base in (types.STRING_T, types.DATE_T, types.TIMESTAMP_T)):
            return f"{function} needs a number, string, date or timestamp, not a {argument}"
        return function.lower(), argument, 0
    if function == "COUNT_DISTINCT":
        if base in (types.ARRAY_T, types.MAP_T, types.STRUCT_T):
            return f"COUNT_DISTINCT of a {argument} is not supported"
        return "distinct", types.BIGINT, 0
    state = "latest" if function == "LATEST_BY_OFFSET" else "earliest"
    return state, argument, 0
