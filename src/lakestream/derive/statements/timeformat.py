"""Java ``DateTimeFormatter`` patterns (what ksqlDB takes) as DuckDB strftime/strptime formats.

Times are UTC: formatting writes a zero offset (``X`` → ``Z``, ``Z`` → ``+0000``),
parsing accepts ``Z`` or a numeric offset at the end of the text. Pattern
letters without a DuckDB equivalent are refused with the letter named.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakestream.derive.statements.types import literal

# letters → (strftime, strptime)
_FIELDS = {
    "yyyy": ("%Y", "%Y"), "uuuu": ("%Y", "%Y"), "yy": ("%y", "%y"), "uu": ("%y", "%y"),
    "MM": ("%m", "%m"), "M": ("%-m", "%-m"), "MMM": ("%b", "%b"), "MMMM": ("%B", "%B"),
    "dd": ("%d", "%d"), "d": ("%-d", "%-d"), "HH": ("%H", "%H"), "H": ("%-H", "%-H"),
    "hh": ("%I", "%I"), "h": ("%-I", "%-I"), "mm": ("%M", "%M"), "m": ("%-M", "%-M"),
    "ss": ("%S", "%S"), "s": ("%-S", "%-S"), "SSS": ("%g", "%g"), "SSSSSS": ("%f", "%f"),
    "a": ("%p", "%p"), "EEE": ("%a", "%a"), "EEEE": ("%A", "%A"), "DDD": ("%j", "%j"),
}
# zone letters: (what formatting a UTC time writes, parsed with %z)
_ZONES = {"X": "Z", "XX": "Z", "XXX": "Z", "Z": "+0000", "ZZ": "+0000", "ZZZ": "+0000",
          "x": "+00", "xx": "+0000", "xxx": "+00:00"}
UTC_NAMES = ("UTC", "GMT", "Z", "Etc/UTC", "Etc/GMT", "UCT")


class TimeFormatError(ValueError):
    """A pattern Lakestream cannot translate (the message says why)."""


@dataclass(frozen=True)
class TimeFormat:
    """A translated pattern.

    Attributes:
        java: The pattern as written in the statement.
        strftime: The DuckDB format that writes the same text (UTC).
        strptime: The DuckDB format that reads it.
        zone: Whether the pattern ends with a zone offset (``Z`` is then read as ``+00:00``).
    """

    java: str
    strftime: str
    strptime: str
    zone: bool

    def format_sql(self, timestamp_sql: str) -> str:
        """SQL writing the TIMESTAMP ``timestamp_sql`` as text."""
        return f"strftime({timestamp_sql}, {literal(self.strftime)})"

    def parse_sql(self, text_sql: str) -> str:
        """SQL reading the text ``text_sql`` as a UTC TIMESTAMP (NULL when it does not parse)."""
        if not self.zone:
            return f"try_strptime({text_sql}, {literal(self.strptime)})"
        fixed = f"regexp_replace({text_sql}, 'Z$', '+00:00')"
        return f"timezone('UTC', try_strptime({fixed}, {literal(self.strptime)}))"


def translate(pattern: str) -> TimeFormat:
    """Translate a Java pattern; raise :class:`TimeFormatError` naming what cannot be."""
    out_format: list[str] = []
    out_parse: list[str] = []
    zone = False
    for kind, text in _pieces(pattern):
        if zone:
            raise TimeFormatError(f"the zone offset must end the pattern '{pattern}'")
        if kind == "literal":
            escaped = text.replace("%", "%%")
            out_format.append(escaped)
            out_parse.append(escaped)
        elif text in _ZONES:
            zone = True
            out_format.append(_ZONES[text])
            out_parse.append("%z")
        elif text in _FIELDS:
            out_format.append(_FIELDS[text][0])
            out_parse.append(_FIELDS[text][1])
        else:
            raise TimeFormatError(f"the pattern letters '{text}' are not supported")
    return TimeFormat(pattern, "".join(out_format), "".join(out_parse), zone)


def _pieces(pattern: str) -> list[tuple[str, str]]:
    """The pattern as ``("field", letters)`` and ``("literal", text)`` pieces."""
    pieces: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise TimeFormatError(f"unterminated quote in the pattern '{pattern}'")
            pieces.append(("literal", "'" if end == i + 1 else pattern[i + 1:end]))
            i = end + 1
        elif char.isalpha():
            end = i
            while end < len(pattern) and pattern[end] == char:
                end += 1
            pieces.append(("field", pattern[i:end]))
            i = end
        elif char in "[]{}#":
            raise TimeFormatError(f"optional sections and '{char}' are not supported")
        else:
            pieces.append(("literal", char))
            i += 1
    return pieces
