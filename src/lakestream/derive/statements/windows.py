"""Windows of aggregate tables: ``TUMBLING`` and ``HOPPING``, by event time.

Windows are aligned to the epoch, as Kafka Streams' ``TimeWindows`` (which
ksqlDB runs) aligns them: a window starts at a multiple of its advance (of its
size for a tumbling window) and holds the events whose time is in
``[start, start + size)``. A window closes when the stream time (the highest
event time seen) reaches ``end + grace``; a later event for it is late. Without
``GRACE PERIOD`` the grace is ksqlDB's default, ``max(24 h - size, 0)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakestream.derive.statements import ast
from lakestream.derive.statements.cursor import Cursor
from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.tokens import NUMBER

_UNITS_MS = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000,
             "DAY": 86_400_000}
UNITS = "MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS"
DEFAULT_GRACE_BASE_MS = 24 * 3_600_000


def parse_window(cur: Cursor) -> ast.Window:
    """``WINDOW TUMBLING (…)`` or ``WINDOW HOPPING (…)``; ``SESSION`` is refused."""
    line = cur.expect_word("WINDOW", "").line
    token = cur.current
    kind = token.text.upper()
    if kind == "SESSION":
        cur.fail("SESSION windows are not supported (TUMBLING, HOPPING)")
    if kind not in ("TUMBLING", "HOPPING"):
        cur.fail(f"{token.describe()} windows are not supported (TUMBLING, HOPPING)")
    cur.advance()
    cur.expect_op("(", f"after {kind}")
    cur.expect_word("SIZE", f"in {kind} (…)")
    size = _duration(cur)
    advance = retention = grace = None
    while cur.accept_op(","):
        clause = cur.current
        if cur.accept_word("ADVANCE"):
            cur.expect_word("BY", "after ADVANCE")
            if kind == "TUMBLING":
                cur.fail("a TUMBLING window has no ADVANCE BY (use HOPPING)", clause)
            advance = _duration(cur)
        elif cur.accept_word("RETENTION"):
            retention = _duration(cur)
        elif cur.accept_word("GRACE"):
            cur.expect_word("PERIOD", "after GRACE")
            grace = _duration(cur, allow_zero=True)
        else:
            cur.fail(f"expected ADVANCE BY, RETENTION or GRACE PERIOD, found {clause.describe()}")
    cur.expect_op(")", f"to close {kind} (…)")
    return _checked(ast.Window(line, kind, size, advance, retention, grace))


def _duration(cur: Cursor, allow_zero: bool = False) -> int:
    """``<integer> <unit>`` in milliseconds."""
    number = cur.current
    if number.kind != NUMBER or not number.text.isdigit():
        cur.fail(f"expected a whole number before the time unit, found {number.describe()}")
    cur.advance()
    unit = cur.current
    name = unit.text.upper()
    singular = name[:-1] if name.endswith("S") else name
    if singular not in _UNITS_MS:
        cur.fail(f"the time unit {unit.describe()} is not supported ({UNITS})")
    cur.advance()
    value = int(number.text) * _UNITS_MS[singular]
    if value == 0 and not allow_zero:
        cur.fail("a window's SIZE and ADVANCE BY must be positive", number)
    return value


def _checked(window: ast.Window) -> ast.Window:
    line = window.line
    if window.kind == "HOPPING":
        if window.advance_ms is None:
            raise StatementError(line, "a HOPPING window needs ADVANCE BY")
        if window.advance_ms > window.size_ms:
            raise StatementError(line, f"the HOPPING window's ADVANCE BY "
                                       f"({duration_text(window.advance_ms)}) is larger than "
                                       f"its SIZE ({duration_text(window.size_ms)})")
    grace = default_grace(window.size_ms) if window.grace_ms is None else window.grace_ms
    if window.retention_ms is not None and window.retention_ms < window.size_ms + grace:
        raise StatementError(line, f"the window's RETENTION ({duration_text(window.retention_ms)})"
                                   f" is shorter than its SIZE plus GRACE PERIOD "
                                   f"({duration_text(window.size_ms + grace)})")
    return window


def default_grace(size_ms: int) -> int:
    """ksqlDB's grace period when none is given: ``max(24 hours - size, 0)``."""
    return max(DEFAULT_GRACE_BASE_MS - size_ms, 0)


def duration_text(ms: int) -> str:
    """``ms`` in the largest unit that divides it: ``3600000`` → ``1 HOUR``."""
    for name, unit in sorted(_UNITS_MS.items(), key=lambda item: -item[1]):
        if ms % unit == 0 and ms:
            count = ms // unit
            return f"{count} {name}{'S' if count != 1 else ''}"
    return "0 MILLISECONDS"


@dataclass(frozen=True)
class WindowSpec:
    """A table's window, in milliseconds.

    Attributes:
        kind: ``TUMBLING`` or ``HOPPING``.
        size_ms: The window's length.
        advance_ms: The distance between window starts (``size_ms`` when tumbling).
        grace_ms: How long after its end a window still accepts events.
        grace_is_default: Whether the statement left the grace to ksqlDB's default.
        retention_ms: How long a window's state is kept, when the statement says.
    """

    kind: str
    size_ms: int
    advance_ms: int
    grace_ms: int
    grace_is_default: bool
    retention_ms: int | None

    @classmethod
    def of(cls, window: ast.Window) -> WindowSpec:
        """The spec of a parsed ``WINDOW`` clause."""
        grace = window.grace_ms
        return cls(window.kind, window.size_ms, window.advance_ms or window.size_ms,
                   default_grace(window.size_ms) if grace is None else grace, grace is None,
                   window.retention_ms)

    def starts(self, event_time_ms: int) -> tuple[int, ...]:
        """The starts of the windows an event belongs to, as Kafka Streams assigns them."""
        first = max(0, event_time_ms - self.size_ms + self.advance_ms)
        first -= first % self.advance_ms
        return tuple(range(first, event_time_ms + 1, self.advance_ms))

    def is_late(self, window_start_ms: int, stream_time_ms: int) -> bool:
        """Whether the window has closed once the stream time reached ``stream_time_ms``."""
        return window_start_ms + self.size_ms + self.grace_ms <= stream_time_ms

    def starts_sql(self, event_time: str) -> str:
        """DuckDB SQL of the list of window starts of the event time (BIGINT ms) ``event_time``."""
        size, advance = self.size_ms, self.advance_ms
        first = f"(greatest(0, {event_time} - {size - advance}) // {advance}) * {advance}"
        return f"generate_series({first}, {event_time}, {advance})"

    def describe(self) -> str:
        """The window as ksqlDB writes it, with the grace period in force."""
        grace = duration_text(self.grace_ms) if self.grace_ms else "0 MILLISECONDS"
        grace += " (ksqlDB's default)" if self.grace_is_default else ""
        parts = [f"SIZE {duration_text(self.size_ms)}"]
        if self.kind == "HOPPING":
            parts.append(f"ADVANCE BY {duration_text(self.advance_ms)}")
        if self.retention_ms is not None:
            parts.append(f"RETENTION {duration_text(self.retention_ms)}")
        parts.append(f"GRACE PERIOD {grace}")
        return f"{self.kind} ({', '.join(parts)})"
