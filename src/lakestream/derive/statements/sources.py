"""``CREATE STREAM|TABLE name (columns) WITH (KAFKA_TOPIC=…)``: streams and tables over topics."""

from __future__ import annotations

from lakestream.derive.statements import ast, types
from lakestream.derive.statements.compiler import Column
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.plan import EventTime, SourcePlan
from lakestream.derive.statements.properties import (
    SOURCE_PROPERTIES,
    integer,
    key_format,
    read_properties,
)
from lakestream.derive.statements.timeformat import TimeFormatError, translate


def plan_source(statement: ast.CreateSource, source: str | None) -> SourcePlan:
    """Validate a declaration over an existing topic and describe it."""
    found = read_properties(statement.properties, SOURCE_PROPERTIES, statement.line)
    if "KAFKA_TOPIC" not in found:
        raise StatementError(statement.line, f"CREATE {statement.kind} {statement.name} needs "
                                             "WITH (KAFKA_TOPIC='…', VALUE_FORMAT='JSON')")
    if "VALUE_FORMAT" not in found and "FORMAT" not in found:
        raise StatementError(statement.line, f"CREATE {statement.kind} {statement.name} needs "
                                             "VALUE_FORMAT='JSON'")
    keys = tuple(c.name for c in statement.columns if c.key or c.primary_key)
    fmt = key_format(found)
    if statement.kind == "TABLE" and not keys:
        raise StatementError(statement.line, f"the table {statement.name} needs a PRIMARY KEY "
                                             "column")
    if len(keys) > 1 and fmt == "KAFKA":
        raise StatementError(statement.line, "several key columns need KEY_FORMAT='JSON'")
    for column in statement.columns:
        if (column.key or column.primary_key) and column.type.base in (
                types.ARRAY_T, types.MAP_T, types.STRUCT_T):
            raise StatementError(column.line, f"the key column {column.name} cannot be a "
                                              f"{column.type}")
    columns = tuple(Column(c.name, c.type) for c in statement.columns)
    return SourcePlan(statement.name, statement.kind, found["KAFKA_TOPIC"].value, columns, keys,
                      _event_time(statement, found), fmt, integer(found, "PARTITIONS"),
                      statement.line, source)


def _event_time(statement: ast.CreateSource, found: dict[str, ast.Property]) -> EventTime:
    """The ``TIMESTAMP`` column (and ``TIMESTAMP_FORMAT``), checked against the columns."""
    fmt_prop = found.get("TIMESTAMP_FORMAT")
    if "TIMESTAMP" not in found:
        if fmt_prop is not None:
            raise StatementError(fmt_prop.line, "TIMESTAMP_FORMAT needs TIMESTAMP='column'")
        return EventTime(None)
    prop = found["TIMESTAMP"]
    column = next((c for c in statement.columns if c.name.lower() == prop.value.lower()), None)
    if column is None:
        raise StatementError(prop.line, f"TIMESTAMP names {prop.value}, which is not a column "
                                        f"of {statement.name}")
    base = column.type.base
    if base == types.STRING_T:
        if fmt_prop is None:
            raise StatementError(prop.line, f"the TIMESTAMP column {column.name} is a string: "
                                            "give its TIMESTAMP_FORMAT")
        try:
            fmt = translate(fmt_prop.value)
        except TimeFormatError as exc:
            raise StatementError(fmt_prop.line, f"TIMESTAMP_FORMAT: {exc}") from None
        return EventTime(column.name, "STRING", fmt)
    if base not in (types.BIGINT_T, types.TIMESTAMP_T):
        raise StatementError(prop.line, f"the TIMESTAMP column {column.name} must be a BIGINT "
                                        f"(epoch milliseconds), TIMESTAMP or string, not "
                                        f"{column.type}")
    if fmt_prop is not None:
        raise StatementError(fmt_prop.line, "TIMESTAMP_FORMAT applies to string columns only")
    return EventTime(column.name, base)
