"""ksqlDB statements as Lakestream's program: parse, validate and plan (docs/ksqldb.md).

``compile_statements(text, name, base=plan)`` turns a statements file into a
:class:`Plan` — DuckDB SQL per derived stream, pre-aggregation and delta SQL
plus exact state specs per aggregate table — or refuses it with one
:class:`StatementError` line naming the clause and the line. Nothing here reads
Kafka or keeps state: an executor runs the plan (see :mod:`.plan`).

The subset: ``SET 'auto.offset.reset'``; ``CREATE STREAM|TABLE name (columns)
WITH (KAFKA_TOPIC, VALUE_FORMAT='JSON', KEY_FORMAT, TIMESTAMP,
TIMESTAMP_FORMAT)``; ``CREATE STREAM … AS SELECT`` and ``INSERT INTO … SELECT``
with projections, ``->``, arithmetic, ``CASE``, the functions of
:func:`supported_functions`, ``WHERE``, ``PARTITION BY``, ``[LEFT] JOIN`` of a
table on its primary key; ``CREATE TABLE … AS SELECT … [WINDOW TUMBLING|HOPPING]
GROUP BY … [HAVING]`` with ``COUNT``, ``SUM``, ``AVG``, ``MIN``, ``MAX``,
``COUNT_DISTINCT``, ``LATEST_BY_OFFSET``, ``EARLIEST_BY_OFFSET``. Lakestream's
one extension is ``HMAC_SHA256(value, '${LAKESTREAM_ANON_KEY}')`` (:mod:`.pseudonyms`).
"""

from lakestream.derive.statements.aggregates import AggregateSpec, StateColumn
from lakestream.derive.statements.compiler import Column
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.functions import AGGREGATE_FUNCTIONS, supported_functions
from lakestream.derive.statements.parser import parse_statements
from lakestream.derive.statements.plan import (
    EventTime,
    Plan,
    SourcePlan,
    StreamPlan,
    TablePlan,
)
from lakestream.derive.statements.planner import compile_statements, plan_statements
from lakestream.derive.statements.pseudonyms import PSEUDONYMS_TABLE, register_pseudonyms
from lakestream.derive.statements.types import SqlType
from lakestream.derive.statements.windows import WindowSpec

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "PSEUDONYMS_TABLE",
    "AggregateSpec",
    "Column",
    "EventTime",
    "Plan",
    "SourcePlan",
    "SqlType",
    "StateColumn",
    "StatementError",
    "StreamPlan",
    "TablePlan",
    "WindowSpec",
    "compile_statements",
    "parse_statements",
    "plan_statements",
    "register_pseudonyms",
    "supported_functions",
]
