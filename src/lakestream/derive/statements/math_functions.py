"""ksqlDB's math and null functions on DuckDB, with ksqlDB's results where DuckDB differs.

- ``ROUND(x)`` of a DOUBLE is Java's ``Math.round`` (half toward +∞, a BIGINT);
  ``ROUND(x, n)`` rounds the value's shortest decimal representation
  (``BigDecimal.valueOf``) half up for positive values and half down for
  negative ones, i.e. half toward +∞: ``ROUND(2.675, 2)`` is 2.68 and
  ``ROUND(-2.5)`` is -2, where DuckDB's ``round`` gives 2.67 and -3.
- ``CEIL``/``FLOOR`` keep an integer or DECIMAL argument's type.
- ``SQRT``/``LN``/``EXP``/``POWER`` compute in DOUBLE (NaN and ±Infinity as Java).
"""

from __future__ import annotations

from lakestream.derive.statements import types
from lakestream.derive.statements.calls import NUMERIC, Call, cast_sql, result, scalar
from lakestream.derive.statements.typed import Typed
from lakestream.derive.statements.types import SqlType

_MAX_ROUND_PLACES = 18


@scalar("ABS")
def _abs(call: Call) -> Typed:
    call.arity(1)
    x = call.arg(0, *NUMERIC)
    return result(f"abs({x.sql})", _numeric_type(x))


@scalar("CEIL", "FLOOR")
def _ceil_floor(call: Call) -> Typed:
    call.arity(1)
    x = call.arg(0, *NUMERIC)
    kind = _numeric_type(x)
    if kind.integral:
        return result(x.sql, kind)
    sql = f"{call.name.lower()}({x.sql})"
    return result(f"CAST({sql} AS {kind.duckdb()})" if kind.base == types.DECIMAL_T else sql,
                  kind)


@scalar("ROUND")
def _round(call: Call) -> Typed:
    call.arity(1, 2)
    x = call.arg(0, *NUMERIC)
    kind = _numeric_type(x)
    if len(call.raw) == 1:
        return _round_whole(x, kind)
    places = call.int_literal(1, "number of decimal places")
    if not 0 <= places <= _MAX_ROUND_PLACES:
        call.fail(f"ROUND to {places} decimal places is not supported (0 to "
                  f"{_MAX_ROUND_PLACES})")
    if kind.integral:
        return result(f"CAST({x.sql} AS DOUBLE)", types.DOUBLE)
    if kind.base == types.DECIMAL_T:
        return _round_decimal(x, kind, places)
    return result(_round_double_sql(x.sql, places), types.DOUBLE)


def _round_whole(x: Typed, kind: SqlType) -> Typed:
    """``ROUND(x)``: BIGINT for integers and doubles (``Math.round``), DECIMAL(p-s+1, 0)."""
    if kind.integral:
        return result(f"CAST({x.sql} AS BIGINT)", types.BIGINT)
    if kind.base == types.DECIMAL_T:
        rounded = types.decimal(kind.precision - kind.scale + 1, 0)
        return result(f"CAST(floor({x.sql} + 0.5) AS {rounded.duckdb()})", rounded)
    v = x.sql
    sql = (f"CASE WHEN isnan({v}) THEN 0 WHEN {v} >= 9.223372036854776e18 "
           f"THEN 9223372036854775807 WHEN {v} <= -9.223372036854776e18 "
           f"THEN -9223372036854775808 ELSE CAST(CASE WHEN {v} - floor({v}) >= 0.5 "
           f"THEN ceil({v}) ELSE floor({v}) END AS BIGINT) END")
    return result(sql, types.BIGINT)


def _round_double_sql(v: str, places: int) -> str:
    """ksqlDB's ``ROUND(DOUBLE, places)`` in DuckDB: exact decimal arithmetic on the value's
    shortest representation; values too large to carry that many decimals are whole already."""
    factor = 10**places
    exact = (f"CAST(floor(CAST(CAST({v} AS VARCHAR) AS DECIMAL(38, 18)) * {factor} + 0.5) "
             f"/ {factor} AS DOUBLE)")
    return (f"CASE WHEN NOT isfinite({v}) THEN NULL WHEN abs({v}) >= 1e{20 - places} "
            f"THEN {v} ELSE {exact} END")


def _round_decimal(x: Typed, kind: SqlType, places: int) -> Typed:
    """``ROUND(DECIMAL(p, s), n)``: half toward +∞, the type unchanged (as ksqlDB)."""
    if places >= kind.scale:
        return result(x.sql, kind)
    unit = f"CAST('1e-{places}' AS DECIMAL(38, {places}))" if places else "1"
    sql = f"CAST(floor({x.sql} * {10**places} + 0.5) * {unit} AS {kind.duckdb()})"
    return result(sql, kind)


@scalar("SQRT", "LN", "EXP")
def _double_math(call: Call) -> Typed:
    call.arity(1)
    x = call.arg(0, *NUMERIC)
    return result(f"{call.name.lower()}(CAST({x.sql} AS DOUBLE))", types.DOUBLE)


@scalar("POWER")
def _power(call: Call) -> Typed:
    call.arity(2)
    base, exponent = call.arg(0, *NUMERIC), call.arg(1, *NUMERIC)
    return result(f"pow(CAST({base.sql} AS DOUBLE), CAST({exponent.sql} AS DOUBLE))",
                  types.DOUBLE)


@scalar("COALESCE", "IFNULL")
def _coalesce(call: Call) -> Typed:
    if call.name == "IFNULL":
        call.arity(2)
    else:
        call.arity(1, 99)
    args = call.args()
    kind = types.common_type([a.type for a in args])
    if kind is None:
        call.fail(f"{call.name}'s arguments have no common type "
                  f"({', '.join(str(a.type) for a in args)})")
    return result(f"coalesce({', '.join(cast_sql(a, kind) for a in args)})", kind)


@scalar("NULLIF")
def _nullif(call: Call) -> Typed:
    call.arity(2)
    first, second = call.arg(0), call.arg(1)
    if types.NULL_T not in (first.type.base, second.type.base) and first.type != second.type:
        call.fail(f"NULLIF compares values of one type, not {first.type} and {second.type}")
    return result(f"nullif({first.sql}, {second.sql})", first.type)


def _numeric_type(x: Typed) -> SqlType:
    return types.INTEGER if x.type.base == types.NULL_T else x.type

