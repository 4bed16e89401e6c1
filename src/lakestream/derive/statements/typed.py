"""A compiled expression: its DuckDB SQL and its ksqlDB type."""

from __future__ import annotations

from dataclasses import dataclass

from lakestream.derive.statements.types import SqlType


@dataclass(frozen=True)
class Typed:
    """DuckDB SQL computing an expression, and the expression's ksqlDB type.

    Attributes:
        sql: The SQL, parenthesized where precedence could matter.
        type: The ksqlDB type of its values.
        literal: The value of a string or number literal, as written (``None`` otherwise):
            functions whose argument must be a constant (a pattern, a format) read it here.
    """

    sql: str
    type: SqlType
    literal: str | None = None
