"""ksqlDB's string functions on DuckDB, with ksqlDB's (Java's) results where DuckDB differs.

- ``SUBSTRING(s, pos[, len])``: 1-based, a negative ``pos`` counts from the end,
  ``pos`` 0 acts as 1 (Java's clamping; DuckDB's ``substring`` shifts instead).
- ``TRIM`` removes every character up to U+0020 (Java's ``String.trim``), not only spaces.
- ``REPLACE`` with an empty search string inserts between characters (Java).
- ``REGEXP_REPLACE`` replaces every match (Java's ``replaceAll``; DuckDB needs ``'g'``)
  with the replacement rewritten from Java's ``$1`` to RE2's ``\\1``.
- ``REGEXP_EXTRACT(pattern, s[, group])`` takes the pattern first and gives NULL when
  nothing matches (DuckDB gives '').
- ``SPLIT('', delimiter)`` is ``['']``; an empty delimiter splits into characters.
- ``LEN`` counts characters (Java counts UTF-16 units: they differ beyond U+FFFF).
"""

from __future__ import annotations

from lakestream.derive.statements import types
from lakestream.derive.statements.calls import INTEGRAL, TEXT, Call, result, scalar
from lakestream.derive.statements.regex import (
    RegexError,
    check_pattern,
    group_count,
    java_replacement,
)
from lakestream.derive.statements.typed import Typed
from lakestream.derive.statements.types import literal

_JAVA_BLANKS = r"'^[\x00-\x20]+|[\x00-\x20]+$'"


def java_trim_sql(sql: str) -> str:
    """SQL of Java's ``String.trim``: every character up to U+0020 removed at both ends."""
    return f"regexp_replace({sql}, {_JAVA_BLANKS}, '', 'g')"


@scalar("UCASE", "LCASE")
def _case(call: Call) -> Typed:
    call.arity(1)
    s = call.arg(0, *TEXT)
    return result(f"{'upper' if call.name == 'UCASE' else 'lower'}({s.sql})", types.STRING)


@scalar("TRIM")
def _trim(call: Call) -> Typed:
    call.arity(1)
    s = call.arg(0, *TEXT)
    return result(java_trim_sql(s.sql), types.STRING)


@scalar("LEN")
def _len(call: Call) -> Typed:
    call.arity(1)
    s = call.arg(0, *TEXT)
    return result(f"CAST(length({s.sql}) AS INTEGER)", types.INTEGER)


@scalar("SUBSTRING")
def _substring(call: Call) -> Typed:
    call.arity(2, 3)
    s, pos = call.arg(0, *TEXT), call.arg(1, *INTEGRAL)
    n = f"length({s.sql})"
    start = (f"(CASE WHEN {pos.sql} < 0 THEN greatest({n} + {pos.sql}, 0) "
             f"ELSE greatest(least({pos.sql} - 1, {n}), 0) END)")
    if len(call.raw) == 2:
        return result(f"substring({s.sql}, {start} + 1)", types.STRING)
    length = call.arg(2, *INTEGRAL)
    end = f"greatest(least({start} + {length.sql}, {n}), {start})"
    return result(f"substring({s.sql}, {start} + 1, {end} - {start})", types.STRING)


@scalar("CONCAT")
def _concat(call: Call) -> Typed:
    call.arity(1, 99)
    parts = call.args(*TEXT)
    return result(f"concat({', '.join(p.sql for p in parts)})", types.STRING)


@scalar("CONCAT_WS")
def _concat_ws(call: Call) -> Typed:
    call.arity(2, 99)
    parts = call.args(*TEXT)
    return result(f"concat_ws({', '.join(p.sql for p in parts)})", types.STRING)


@scalar("REPLACE")
def _replace(call: Call) -> Typed:
    call.arity(3)
    s, old, new = (call.arg(i, *TEXT) for i in range(3))
    between = (f"CASE WHEN {s.sql} = '' THEN {new.sql} ELSE {new.sql} || "
               f"array_to_string(string_split({s.sql}, ''), {new.sql}) || {new.sql} END")
    sql = (f"CASE WHEN {old.sql} = '' THEN {between} "
           f"ELSE replace({s.sql}, {old.sql}, {new.sql}) END")
    return result(sql, types.STRING)


@scalar("REGEXP_REPLACE")
def _regexp_replace(call: Call) -> Typed:
    call.arity(3)
    s = call.arg(0, *TEXT)
    pattern = _pattern(call, 1)
    try:
        rewrite = java_replacement(call.string_literal(2, "replacement"), group_count(pattern))
    except RegexError as exc:
        call.fail(f"REGEXP_REPLACE: {exc}")
    return result(f"regexp_replace({s.sql}, {literal(pattern)}, {literal(rewrite)}, 'g')",
                  types.STRING)


@scalar("REGEXP_EXTRACT")
def _regexp_extract(call: Call) -> Typed:
    call.arity(2, 3)
    pattern = _pattern(call, 0)
    s = call.arg(1, *TEXT)
    group = call.int_literal(2, "group number") if len(call.raw) == 3 else 0
    if group < 0:
        call.fail("REGEXP_EXTRACT's group number cannot be negative")
    if group > group_count(pattern):
        return result("CAST(NULL AS VARCHAR)", types.STRING)  # as ksqlDB: no such group
    p = literal(pattern)
    sql = f"CASE WHEN regexp_matches({s.sql}, {p}) THEN regexp_extract({s.sql}, {p}, {group}) END"
    return result(sql, types.STRING)


@scalar("SPLIT")
def _split(call: Call) -> Typed:
    call.arity(2)
    s, delimiter = call.arg(0, *TEXT), call.arg(1, *TEXT)
    sql = (f"CASE WHEN {s.sql} = '' AND {delimiter.sql} IS NOT NULL THEN [''] "
           f"ELSE string_split({s.sql}, {delimiter.sql}) END")
    return result(sql, types.array(types.STRING))


def _pattern(call: Call, index: int) -> str:
    pattern = call.string_literal(index, "pattern")
    try:
        check_pattern(pattern)
    except RegexError as exc:
        call.fail(f"{call.name}: {exc}")
    return pattern
