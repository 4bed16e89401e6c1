"""A function call being compiled, and the registry scalar functions are declared in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from lakestream.derive.statements import ast, types
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.typed import Typed
from lakestream.derive.statements.types import SqlType

Handler = Callable[["Call"], Typed]
SCALAR_FUNCTIONS: dict[str, Handler] = {}


def scalar(*names: str) -> Callable[[Handler], Handler]:
    """Declare the handler compiling calls of the ksqlDB functions ``names``."""

    def register(handler: Handler) -> Handler:
        for name in names:
            SCALAR_FUNCTIONS[name] = handler
        return handler

    return register


@dataclass
class Call:
    """One call: its name, line and arguments, compiled on first use.

    Handlers read arguments through :meth:`arg` (checked against the types the
    function takes) or, for constants, :meth:`string_literal` / :meth:`int_literal`.
    """

    name: str
    line: int
    raw: tuple[ast.Expr, ...]
    compile: Callable[[ast.Expr], Typed]
    _compiled: dict[int, Typed] = field(default_factory=dict)

    def fail(self, detail: str) -> NoReturn:
        """Refuse the call at its line."""
        raise StatementError(self.line, detail)

    def arity(self, low: int, high: int | None = None) -> None:
        """Refuse unless the call has ``low`` to ``high`` (default ``low``) arguments."""
        high = low if high is None else high
        if not low <= len(self.raw) <= high:
            wanted = str(low) if low == high else (f"{low} to {high}" if high < 99
                                                   else f"at least {low}")
            plural = "" if wanted == "1" else "s"
            self.fail(f"{self.name} takes {wanted} argument{plural}, not {len(self.raw)}")

    def arg(self, index: int, *bases: str, what: str = "") -> Typed:
        """Argument ``index``, compiled, refused unless its type is one of ``bases``."""
        if index not in self._compiled:
            self._compiled[index] = self.compile(self.raw[index])
        typed = self._compiled[index]
        if bases and typed.type.base not in (*bases, types.NULL_T):
            wanted = what or " or ".join(bases)
            self.fail(f"{self.name}'s argument {index + 1} must be {wanted}, not {typed.type}")
        return typed

    def args(self, *bases: str, start: int = 0) -> list[Typed]:
        """Arguments from ``start`` on, each checked against ``bases``."""
        return [self.arg(i, *bases) for i in range(start, len(self.raw))]

    def string_literal(self, index: int, what: str) -> str:
        """Argument ``index``, which must be a string literal (a pattern, a format)."""
        node = self.raw[index]
        if not isinstance(node, ast.Literal) or node.kind != "string":
            self.fail(f"{self.name}'s {what} must be a string literal")
        return self.arg(index).literal or ""

    def int_literal(self, index: int, what: str) -> int:
        """Argument ``index``, which must be a whole-number literal."""
        node = self.raw[index]
        negative = isinstance(node, ast.Unary) and node.op == "-"
        inner = node.operand if isinstance(node, ast.Unary) and node.op in "+-" else node
        if not isinstance(inner, ast.Literal) or inner.kind != "integer":
            self.fail(f"{self.name}'s {what} must be a whole-number literal")
        return -int(inner.text) if negative else int(inner.text)


NUMERIC = (types.INTEGER_T, types.BIGINT_T, types.DECIMAL_T, types.DOUBLE_T)
INTEGRAL = (types.INTEGER_T, types.BIGINT_T)
TEXT = (types.STRING_T,)


def cast_sql(typed: Typed, target: SqlType) -> str:
    """``typed``'s SQL converted to ``target`` when its type differs."""
    if typed.type == target:
        return typed.sql
    return f"CAST({typed.sql} AS {target.duckdb()})"


def result(sql: str, kind: SqlType) -> Typed:
    """A call's result."""
    return Typed(sql, kind)
