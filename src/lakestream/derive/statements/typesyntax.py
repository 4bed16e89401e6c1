"""Type names as written in column declarations and ``CAST``: ``DECIMAL(10, 2)``,
``ARRAY<VARCHAR>``, ``STRUCT<name VARCHAR, age INT>``…"""

from __future__ import annotations

from lakestream.derive.statements import types
from lakestream.derive.statements.cursor import Cursor
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.tokens import IDENT, NUMBER, QUOTED
from lakestream.derive.statements.types import SqlType

_SIMPLE = {"BOOLEAN": types.BOOLEAN, "INT": types.INTEGER, "INTEGER": types.INTEGER,
           "BIGINT": types.BIGINT, "DOUBLE": types.DOUBLE, "VARCHAR": types.STRING,
           "STRING": types.STRING, "TIMESTAMP": types.TIMESTAMP, "DATE": types.DATE}
_REFUSED = {"TIME": "TIME values are not supported (use TIMESTAMP)",
            "BYTES": "BYTES values are not supported (use VARCHAR)"}
SUPPORTED = ("BOOLEAN, INT, INTEGER, BIGINT, DOUBLE, DECIMAL(p, s), VARCHAR, STRING, TIMESTAMP, "
             "DATE, ARRAY<…>, MAP<STRING, …>, STRUCT<…>")


def parse_type(cur: Cursor) -> SqlType:
    """One type; ``ARRAY`` suffixes (``VARCHAR ARRAY``) are read as ``ARRAY<VARCHAR>``."""
    kind = _base_type(cur)
    while cur.accept_word("ARRAY"):
        kind = types.array(kind)
    return kind


def _base_type(cur: Cursor) -> SqlType:
    token = cur.current
    if token.kind != IDENT:
        cur.fail(f"expected a type, found {token.describe()}")
    word = token.text.upper()
    cur.advance()
    if word in _SIMPLE:
        return _SIMPLE[word]
    if word in _REFUSED:
        cur.fail(_REFUSED[word], token)
    if word == "DECIMAL":
        return _decimal(cur)
    if word == "ARRAY":
        cur.expect_op("<", "after ARRAY")
        item = parse_type(cur)
        _close_angle(cur, "ARRAY<…")
        return types.array(item)
    if word == "MAP":
        return _map(cur)
    if word == "STRUCT":
        return _struct(cur)
    cur.fail(f"unknown type {token.text} (supported: {SUPPORTED})", token)


def _decimal(cur: Cursor) -> SqlType:
    line = cur.current.line
    cur.expect_op("(", "after DECIMAL")
    precision = _integer(cur, "DECIMAL's precision")
    cur.expect_op(",", "between DECIMAL's precision and scale")
    scale = _integer(cur, "DECIMAL's scale")
    cur.expect_op(")", "to close DECIMAL(…)")
    if not 1 <= precision <= types.MAX_PRECISION or not 0 <= scale <= precision:
        raise StatementError(line, f"DECIMAL({precision}, {scale}) is invalid: the precision "
                                   "is 1 to 38 and the scale 0 to the precision")
    return types.decimal(precision, scale)


def _map(cur: Cursor) -> SqlType:
    cur.expect_op("<", "after MAP")
    line = cur.current.line
    key = parse_type(cur)
    cur.expect_op(",", "between MAP's key and value types")
    value = parse_type(cur)
    _close_angle(cur, "MAP<…")
    if key != types.STRING:
        raise StatementError(line, f"MAP keys of type {key} are not supported (JSON object "
                                   "keys are strings: use MAP<STRING, …>)")
    return SqlType(types.MAP_T, items=(key, value))


def _struct(cur: Cursor) -> SqlType:
    cur.expect_op("<", "after STRUCT")
    fields: list[tuple[str, SqlType]] = []
    seen: set[str] = set()
    while not cur.at_op(">"):
        token = cur.current
        if token.kind not in (IDENT, QUOTED):
            cur.fail(f"expected a struct field name, found {token.describe()}")
        cur.advance()
        if token.text.lower() in seen:
            cur.fail(f"the struct field {token.text} is declared twice", token)
        seen.add(token.text.lower())
        fields.append((token.text, parse_type(cur)))
        if not cur.accept_op(","):
            break
    _close_angle(cur, "STRUCT<…")
    return SqlType(types.STRUCT_T, fields=tuple(fields))


def _close_angle(cur: Cursor, what: str) -> None:
    """Consume a ``>`` (the lexer reads ``>>`` as two tokens)."""
    cur.expect_op(">", f"to close {what}")


def _integer(cur: Cursor, what: str) -> int:
    token = cur.current
    if token.kind != NUMBER or not token.text.isdigit():
        cur.fail(f"expected an integer for {what}, found {token.describe()}")
    cur.advance()
    return int(token.text)
