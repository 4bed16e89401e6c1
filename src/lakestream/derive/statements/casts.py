"""``CAST(x AS type)`` with ksqlDB's conversions (``CastEvaluator``), where DuckDB differs:

- DOUBLE or DECIMAL to INT/BIGINT truncates toward zero (Java's ``intValue``);
  DuckDB would round. Out of range gives NULL (ksqlDB: Java's wrap/saturation).
- DOUBLE to STRING writes Java's ``Double.toString`` (``1.0E7``, ``NaN``).
- STRING to INT/BIGINT accepts only an optional sign and digits (Java's ``parseInt``);
  to BOOLEAN, any prefix of ``true``/``yes`` is true, everything else false;
  what does not parse is NULL (ksqlDB logs the error and gives NULL).
- TIMESTAMP to STRING is ISO-8601 with milliseconds (``2025-01-15T12:34:56.789``).
"""

from __future__ import annotations

from lakestream.derive.statements import types
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.string_functions import java_trim_sql
from lakestream.derive.statements.typed import Typed
from lakestream.derive.statements.types import SqlType

_NUMERIC = (types.INTEGER_T, types.BIGINT_T, types.DECIMAL_T, types.DOUBLE_T)
_TEXT_FROM = {
    types.INTEGER_T: "CAST({} AS VARCHAR)", types.BIGINT_T: "CAST({} AS VARCHAR)",
    types.DECIMAL_T: "CAST({} AS VARCHAR)", types.BOOLEAN_T: "CAST({} AS VARCHAR)",
    types.DATE_T: "strftime({}, '%Y-%m-%d')",
    types.TIMESTAMP_T: "strftime({}, '%Y-%m-%dT%H:%M:%S.%g')",
}


def java_double_text(v: str) -> str:
    """SQL writing the DOUBLE ``v`` as Java's ``Double.toString``: plain from 10⁻³ to 10⁷,
    else ``d.dddE±n``, with the shortest digits (DuckDB's text has them, in Python's
    layout: plain from 10⁻⁴ to 10¹⁶, else ``de±n``)."""
    t = f"CAST(abs({v}) AS VARCHAR)"
    sign = f"CASE WHEN starts_with(CAST({v} AS VARCHAR), '-') THEN '-' ELSE '' END"
    whole, frac = f"split_part({t}, '.', 1)", f"split_part({t}, '.', 2)"
    digits = (f"CASE WHEN {t} LIKE '%e%' THEN replace(split_part({t}, 'e', 1), '.', '') "
              f"WHEN abs({v}) >= 1 THEN rtrim({whole} || {frac}, '0') "
              f"ELSE ltrim({frac}, '0') END")
    exponent = (f"CASE WHEN {t} LIKE '%e%' THEN CAST(split_part({t}, 'e', 2) AS INTEGER) "
                f"WHEN abs({v}) >= 1 THEN length({whole}) - 1 "
                f"ELSE -(length({frac}) - length(ltrim({frac}, '0')) + 1) END")
    mantissa = f"left({digits}, 1) || '.' || coalesce(nullif(substr({digits}, 2), ''), '0')"
    return (f"CASE WHEN isnan({v}) THEN 'NaN' WHEN isinf({v}) THEN {sign} || 'Infinity' "
            f"WHEN {v} = 0 OR (abs({v}) >= 0.001 AND abs({v}) < 10000000) "
            f"THEN CAST({v} AS VARCHAR) "
            f"ELSE {sign} || {mantissa} || 'E' || CAST({exponent} AS VARCHAR) END")


def cast(value: Typed, target: SqlType, line: int) -> Typed:
    """``CAST(value AS target)``, or a refusal naming both types."""
    source = value.type
    if source == target or source.base == types.NULL_T:
        return Typed(f"CAST({value.sql} AS {target.duckdb()})", target)
    sql = _numeric(value.sql, source, target) if source.base in _NUMERIC else None
    if sql is None and target.base == types.STRING_T and source.base == types.DOUBLE_T:
        sql = java_double_text(value.sql)
    if sql is None and target.base == types.STRING_T and source.base in _TEXT_FROM:
        sql = _TEXT_FROM[source.base].format(value.sql)
    if sql is None and source.base == types.STRING_T:
        sql = _from_text(value.sql, target)
    if sql is None and {source.base, target.base} == {types.DATE_T, types.TIMESTAMP_T}:
        sql = f"CAST({value.sql} AS {target.duckdb()})"
    if sql is None:
        raise StatementError(line, f"CAST from {source} to {target} is not supported")
    return Typed(sql, target)


def _numeric(sql: str, source: SqlType, target: SqlType) -> str | None:
    if target.integral:
        inner = sql if source.integral else f"trunc({sql})"
        return f"TRY_CAST({inner} AS {target.duckdb()})"
    if target.base in (types.DOUBLE_T, types.DECIMAL_T):
        return f"TRY_CAST({sql} AS {target.duckdb()})"
    return None


def _from_text(sql: str, target: SqlType) -> str | None:
    trimmed = java_trim_sql(sql)
    if target.integral:
        digits = f"CASE WHEN regexp_matches({trimmed}, '^[+-]?[0-9]+$') THEN {trimmed} END"
        return f"TRY_CAST({digits} AS {target.duckdb()})"
    if target.base in (types.DOUBLE_T, types.DECIMAL_T, types.DATE_T):
        return f"TRY_CAST({trimmed} AS {target.duckdb()})"
    if target.base == types.BOOLEAN_T:
        lowered = f"lower({trimmed})"
        return (f"CASE WHEN {sql} IS NULL THEN NULL ELSE ({lowered} <> '' AND "
                f"(starts_with('true', {lowered}) OR starts_with('yes', {lowered}))) END")
    return None
