"""Operators with ksqlDB's typing and results.

- ``+`` of two strings (and ``||``) concatenates; a NULL operand gives NULL. (ksqlDB's
  compiled code would write the text ``null`` instead, its interpreter gives NULL:
  confluentinc/ksql#9136. Lakestream follows SQL and the interpreter.)
- Integer ``/`` truncates toward zero and integer ``/`` or ``%`` by zero gives NULL (Java
  throws, ksqlDB logs and gives NULL); DOUBLE division by zero gives ±Infinity or NaN.
- DECIMAL arithmetic is exact and typed by ksqlDB's precision rules; DECIMAL ``/`` and ``%``
  are refused (their rounding would differ from ksqlDB's).
"""

from __future__ import annotations

from lakestream.derive.statements import types
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.typed import Typed

_LOGICAL = ("AND", "OR")
_ORDERED = ("<", "<=", ">", ">=", "BETWEEN")
_EQUALITY = ("=", "<>", "IS DISTINCT FROM", "IS NOT DISTINCT FROM", "IN")
_SCALAR_BASES = (types.STRING_T, types.BOOLEAN_T, types.TIMESTAMP_T, types.DATE_T)


def binary(op: str, left: Typed, right: Typed, line: int) -> Typed:
    """``left op right``, or a refusal naming the operator and the types."""
    if op in _LOGICAL:
        for side in (left, right):
            if side.type.base not in (types.BOOLEAN_T, types.NULL_T):
                raise StatementError(line, f"{op} needs conditions, not a {side.type} value")
        return Typed(f"({left.sql} {op} {right.sql})", types.BOOLEAN)
    if op in (*_ORDERED, *_EQUALITY):
        comparable(left, right, op, line)
        return Typed(f"({left.sql} {op} {right.sql})", types.BOOLEAN)
    strings = (types.STRING_T, types.NULL_T)
    if op == "||" or (op == "+" and types.STRING_T in (left.type.base, right.type.base)):
        if left.type.base not in strings or right.type.base not in strings:
            raise StatementError(line, f"{op} cannot join a {left.type} and a {right.type} "
                                       "(CAST the number to STRING first)")
        return Typed(f"({left.sql} || {right.sql})", types.STRING)
    return _arithmetic(op, left, right, line)


def _arithmetic(op: str, left: Typed, right: Typed, line: int) -> Typed:
    for side in (left, right):
        if not side.type.numeric:
            raise StatementError(line, f"{op} needs numbers, not a {side.type} value")
    kind = types.arithmetic_result("*" if op == "*" else "+", left.type, right.type)
    if op in ("/", "%"):
        if kind.base == types.DECIMAL_T:
            raise StatementError(line, f"DECIMAL {op} is not supported (CAST to DOUBLE first)")
        if kind.integral:
            operator = "//" if op == "/" else "%"
            sql = (f"(CASE WHEN {right.sql} = 0 THEN NULL "
                   f"ELSE {left.sql} {operator} {right.sql} END)")
            return Typed(sql, kind)
        return Typed(f"(CAST({left.sql} AS DOUBLE) {op} CAST({right.sql} AS DOUBLE))",
                     types.DOUBLE)
    sql = f"({left.sql} {op} {right.sql})"
    if kind.base == types.DECIMAL_T:
        sql = f"CAST({sql} AS {kind.duckdb()})"
    return Typed(sql, kind)


def comparable(left: Typed, right: Typed, op: str, line: int) -> None:
    """Refuse comparing values of types ksqlDB does not compare."""
    a, b = left.type, right.type
    if types.NULL_T in (a.base, b.base):
        return
    if a.numeric and b.numeric:
        return
    if a.base == b.base and a.base in _SCALAR_BASES and (
            a.base != types.BOOLEAN_T or op in _EQUALITY):
        return
    if a == b and op in _EQUALITY:
        return
    raise StatementError(line, f"cannot compare a {a} with a {b} ({op})")
