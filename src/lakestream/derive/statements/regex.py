"""Java regular expressions (ksqlDB's) on DuckDB's RE2.

Patterns are checked by compiling them in DuckDB: Java-only syntax (look-around,
back-references in the pattern, possessive quantifiers) is refused when the
statement is added, never at run time. Replacements are rewritten from Java's
syntax (``$1`` a group, ``\\$`` a dollar) to RE2's (``\\1`` a group, ``\\\\``
a backslash).
"""

from __future__ import annotations

import duckdb

from lakestream.derive.statements.types import literal


class RegexError(ValueError):
    """A pattern or replacement RE2 cannot run as Java would (the message says why)."""


def check_pattern(pattern: str) -> None:
    """Raise :class:`RegexError` if RE2 (DuckDB) rejects ``pattern``."""
    try:
        duckdb.connect(":memory:").execute(f"SELECT regexp_matches('', {literal(pattern)})")
    except duckdb.Error as exc:
        detail = str(exc).split("Error:", 1)[-1].strip().splitlines()[0]
        raise RegexError(f"the pattern '{pattern}' is not supported by RE2 ({detail})") from None


def group_count(pattern: str) -> int:
    """How many capturing groups ``pattern`` has."""
    count, i, in_class = 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += 1
            i += pattern.startswith("^", i)
            i += pattern.startswith("]", i)  # a ']' first in a class is a literal
            continue
        elif char == "(" and (not pattern.startswith("?", i + 1)
                              or (pattern.startswith(("?<", "?P<"), i + 1)
                              and not pattern.startswith(("?<=", "?<!"), i + 1))):
            count += 1
        i += 1
    return count


def java_replacement(replacement: str, groups: int) -> str:
    """A Java ``replaceAll`` replacement as an RE2 rewrite string."""
    out: list[str] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\":
            if i + 1 >= len(replacement):
                raise RegexError("the replacement ends with a lone backslash")
            out.append(_escaped(replacement[i + 1]))
            i += 2
        elif char == "$":
            i = _group_reference(replacement, i, groups, out)
        else:
            out.append(_escaped(char))
            i += 1
    return "".join(out)


def _group_reference(replacement: str, i: int, groups: int, out: list[str]) -> int:
    """Append the RE2 form of the ``$n`` at ``i``; return the position after it."""
    end = i + 1
    if end >= len(replacement) or not replacement[end].isdigit():
        what = "named groups (${name})" if replacement.startswith("${", i) else "a lone '$'"
        raise RegexError(f"the replacement uses {what}: write \\$ for a dollar, $1 for a group")
    number = int(replacement[end])
    end += 1
    # Java reads more digits while they still name an existing group.
    while end < len(replacement) and replacement[end].isdigit() and (
            number * 10 + int(replacement[end]) <= groups):
        number = number * 10 + int(replacement[end])
        end += 1
    if number > groups:
        raise RegexError(f"the replacement refers to group {number}, the pattern has {groups}")
    if number > 9:
        raise RegexError(f"group ${number}: RE2 replacements reach groups 0 to 9 only")
    out.append(f"\\{number}")
    return end


def _escaped(char: str) -> str:
    """A literal character in an RE2 rewrite string."""
    return "\\\\" if char == "\\" else char
