"""The one error a statements file can raise: a refusal naming the clause and the line."""

from __future__ import annotations

from lakestream.errors import UsageError


class StatementError(UsageError):
    """A statement outside the supported subset, or an invalid one.

    The message is one line, ``line N: <what> …``, prefixed with the file's name
    when it is known (``revenue.sql, line N: …``). ``statements add`` shows it
    as is and refuses the file: nothing is ever run differently from what it says.

    Attributes:
        line: The 1-based line of the clause at fault.
        detail: The message without its location.
        source: The file's name, when known.
    """

    def __init__(self, line: int, detail: str, source: str | None = None) -> None:
        where = f"{source}, line {line}" if source else f"line {line}"
        super().__init__(f"{where}: {detail}")
        self.line = line
        self.detail = detail
        self.source = source

    def in_file(self, source: str | None) -> StatementError:
        """The same error, located in the file ``source``."""
        return StatementError(self.line, self.detail, source)
