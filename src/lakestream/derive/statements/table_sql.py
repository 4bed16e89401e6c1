"""The SQL of an aggregate table's batch: pre-aggregation rows, state deltas, distinct values.

Pre-aggregation rows: one per input row (per window of it, for a windowed
table), with the GROUP BY values under their output names, the window bounds,
each aggregate's argument (``_arg0``…) and the batch columns. The delta groups
them per ``_source_partition``, key and window; rows whose key holds a NULL are
left out (as ksqlDB drops them).
"""

from __future__ import annotations

from lakestream.derive.statements.aggregates import AggregateSpec
from lakestream.derive.statements.compiler import EVENT_TIME, SOURCE_PARTITION
from lakestream.derive.statements.plan import WINDOW_END, WINDOW_START
from lakestream.derive.statements.query import Prepared
from lakestream.derive.statements.types import quote
from lakestream.derive.statements.windows import WindowSpec


def pre_aggregation_sql(prepared: Prepared, keys: list[tuple[str, str]],
                        arguments: dict[str, str], window: WindowSpec | None) -> str:
    """SELECT over the batch views: keys, window start, arguments, batch columns."""
    parts = [f"{sql} AS {quote(name)}" for name, sql in keys]
    alias = quote(prepared.alias)
    if window is not None:
        parts.append(f"unnest({window.starts_sql(f'{alias}.{EVENT_TIME}')}) "
                     f"AS {WINDOW_START}")
    parts += [f"{sql} AS {quote(name)}" for name, sql in arguments.items()]
    where = f" WHERE {prepared.where_sql}" if prepared.where_sql else ""
    sql = f"SELECT {', '.join(parts)}, {prepared.batch_columns_sql()} {prepared.from_sql}{where}"
    if window is None:
        return sql
    return f"SELECT *, {WINDOW_START} + {window.size_ms} AS {WINDOW_END} FROM ({sql})"


def _group(keys: tuple[str, ...], windowed: bool) -> list[str]:
    group = [SOURCE_PARTITION, *(quote(k) for k in keys)]
    return group + ([WINDOW_START, WINDOW_END] if windowed else [])


def _keyed(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"{quote(k)} IS NOT NULL" for k in keys)


def delta_sql(pre: str, keys: tuple[str, ...], specs: tuple[AggregateSpec, ...],
              windowed: bool) -> str:
    """SELECT giving a batch's state delta per partition, key and window."""
    group = _group(keys, windowed)
    ranks = [f"{s.rank_sql(group)} AS {s.rank_column}" for s in specs if s.ranked]
    ranked = f"SELECT *{''.join(', ' + r for r in ranks)} FROM pre WHERE {_keyed(keys)}"
    states = [f"{c.delta_sql} AS {c.name}" for s in specs for c in s.state_columns()]
    columns = ", ".join(group + states)
    return (f"WITH pre AS ({pre}), ranked AS ({ranked}) "
            f"SELECT {columns} FROM ranked GROUP BY {', '.join(group)}")


def distinct_sql(pre: str, keys: tuple[str, ...], specs: tuple[AggregateSpec, ...],
                 windowed: bool) -> tuple[tuple[str, str], ...]:
    """Per ``COUNT_DISTINCT``: ``(aggregate name, SELECT of its distinct values)``."""
    group = ", ".join(_group(keys, windowed))
    return tuple(
        (s.name, f"SELECT DISTINCT {group}, {quote(s.argument or '')} AS value FROM ({pre}) "
                 f"WHERE {_keyed(keys)} AND {quote(s.argument or '')} IS NOT NULL")
        for s in specs if s.state == "distinct")
