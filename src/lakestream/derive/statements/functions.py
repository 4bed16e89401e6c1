"""The functions a statement may call: ksqlDB's scalar functions that Lakestream runs,
the aggregate functions of tables, and the refusal of everything else (UDFs included)."""

from __future__ import annotations

from collections.abc import Callable

from lakestream.derive.statements import (  # noqa: F401  (modules that register functions)
    ast,
    math_functions,
    string_functions,
    time_functions,
)
from lakestream.derive.statements.calls import SCALAR_FUNCTIONS, Call
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.typed import Typed

AGGREGATE_FUNCTIONS = ("COUNT", "SUM", "AVG", "MIN", "MAX", "COUNT_DISTINCT", "LATEST_BY_OFFSET",
                       "EARLIEST_BY_OFFSET")
_NOT_KSQL = {
    "LTRIM": "LTRIM is not a ksqlDB function (use TRIM)",
    "RTRIM": "RTRIM is not a ksqlDB function (use TRIM)",
    "LENGTH": "LENGTH is not a ksqlDB function (use LEN)",
    "UPPER": "UPPER is not a ksqlDB function (use UCASE)",
    "LOWER": "LOWER is not a ksqlDB function (use LCASE)",
    "NOW": "NOW is not a ksqlDB function (use UNIX_TIMESTAMP())",
}


def supported_functions() -> tuple[str, ...]:
    """The scalar functions Lakestream runs, sorted."""
    return tuple(sorted(SCALAR_FUNCTIONS))


def compile_call(node: ast.FunctionCall, compile_arg: Callable[[ast.Expr], Typed]) -> Typed:
    """Compile a scalar function call, or refuse it naming the function and the line."""
    name = node.name
    if name in _NOT_KSQL:
        raise StatementError(node.line, _NOT_KSQL[name])
    handler = SCALAR_FUNCTIONS.get(name)
    if handler is None:
        raise StatementError(node.line, f"unknown function {name} (user-defined functions are "
                                        "not supported)")
    if node.star:
        raise StatementError(node.line, f"{name}(*) is not supported")
    return handler(Call(name, node.line, node.args, compile_arg))
