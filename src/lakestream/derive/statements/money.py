"""Exact sums of DOUBLE amounts: each value as integer micro-units (10⁻⁶).

``SUM``/``AVG`` of a DOUBLE expression keep an integer sum of micro-units, as
``lakestream process`` always has (``derive/state.py``): totals then do not
depend on the order or grouping in which events are added. Each event's value
is computed in decimal arithmetic: DOUBLE operands are taken as their shortest
decimal representation (``34.75``, not the binary value), ``+ - *`` are exact
with 12 decimal places (products of a 6-decimal amount and a 6-decimal rate are
exact), and the result is rounded half away from zero to 6 decimals. So
``SUM(amount_usd * usd_to_eur)`` adds ``round(34.75 × 0.925926, 6) = 32.175929``
where binary arithmetic gives 32.175928. An intermediate product of ±10¹³ or
more is computed in DOUBLE; NaN and infinite values are left out of the sum; a
value of ±9 × 10¹² or more fails the batch with a message saying so.
"""

from __future__ import annotations

from lakestream.derive.statements import ast, types
from lakestream.derive.statements.compiler import ExpressionCompiler
from lakestream.derive.statements.typed import Typed

MICRO = 1_000_000
_EXACT = "DECIMAL(38, 12)"
_EXACT_LIMIT = "1e13"
_MICRO_LIMIT = "9e12"
_TOO_LARGE = "an exact SUM/AVG of DOUBLE keeps micro-units in 64 bits: it cannot add"


def micro_units_sql(node: ast.Expr, compiler: ExpressionCompiler) -> Typed:
    """SQL giving the expression's value as BIGINT micro-units (NULL for NULL or non-finite;
    a value of ±9 × 10¹² or more stops the batch with a clear error: it has no exact
    micro-units in 64 bits)."""
    plain = compiler.compile(node)
    exact = _lift(node, compiler)
    sql = (f"CASE WHEN NOT isfinite({plain.sql}) THEN NULL "
           f"WHEN abs({plain.sql}) >= {_MICRO_LIMIT} THEN error('{_TOO_LARGE} ' || "
           f"CAST({plain.sql} AS VARCHAR)) "
           f"ELSE CAST(round({exact}, 6) * {MICRO} AS BIGINT) END")
    return Typed(sql, types.BIGINT)


def _lift(node: ast.Expr, compiler: ExpressionCompiler) -> str:
    """``node`` evaluated in ``DECIMAL(38, 12)``, as far as it is arithmetic."""
    if isinstance(node, ast.Unary) and node.op in "+-" and compiler.compile(node).type.numeric:
        inner = _lift(node.operand, compiler)
        return inner if node.op == "+" else f"(-{inner})"
    if isinstance(node, ast.Binary) and node.op in ("+", "-", "*"):
        left, right = compiler.compile(node.left), compiler.compile(node.right)
        if left.type.numeric and right.type.numeric:
            a, b = _lift(node.left, compiler), _lift(node.right, compiler)
            if node.op != "*":
                return f"({a} {node.op} {b})"
            fallback = _exact_from_double(f"(CAST({left.sql} AS DOUBLE) * "
                                          f"CAST({right.sql} AS DOUBLE))")
            return (f"(CASE WHEN abs(CAST({left.sql} AS DOUBLE) * CAST({right.sql} AS DOUBLE)) < "
                    f"{_EXACT_LIMIT} THEN CAST({a} * {b} AS {_EXACT}) ELSE {fallback} END)")
    typed = compiler.compile(node)
    if typed.type.base == types.DOUBLE_T:
        return _exact_from_double(typed.sql)
    return f"CAST({typed.sql} AS {_EXACT})"


def _exact_from_double(sql: str) -> str:
    """A DOUBLE as the decimal its shortest text writes (``0.1``, not 0.1000000000000000055)."""
    return f"CAST(CAST({sql} AS VARCHAR) AS {_EXACT})"


def money(micro: int) -> float:
    """Micro-units as a decimal amount (what an exact DOUBLE sum publishes)."""
    return round(micro / MICRO, 6)


def mean(micro: int, n: int) -> float | None:
    """The mean of ``n`` values summing to ``micro`` micro-units (``None`` for none)."""
    return round(micro / n / MICRO, 6) if n else None
