"""Tokens of a ksqlDB statements file, each with the line it starts on.

The lexer follows ksqlDB's grammar (``SqlBase.g4``): ``--`` and ``/* */``
comments, ``'strings'`` with ``''`` escapes, identifiers plain, backquoted
(`` `user` ``) or double-quoted, numbers, ``${VARIABLE}`` placeholders and
operators, ``->`` (struct dereference) and ``||`` included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lakestream.derive.statements.errors import StatementError

IDENT = "ident"  # an unquoted identifier or keyword
QUOTED = "quoted"  # a backquoted or double-quoted identifier (never a keyword)
STRING = "string"
NUMBER = "number"
OP = "op"
VARIABLE = "variable"
EOF = "eof"

_OPERATORS = ("->", "<>", "!=", "<=", ">=", "||", ":=", "=>", "(", ")", ",", ";", ".", "+",
              "-", "*", "/", "%", "=", "<", ">", "[", "]", ":", "{", "}", "?")
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_@]*")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SPACE = re.compile(r"[ \t\r\f]+")


@dataclass(frozen=True)
class Token:
    """One token: its kind, its text (strings unescaped, quotes removed) and its line."""

    kind: str
    text: str
    line: int

    def is_word(self, *words: str) -> bool:
        """Whether this is the unquoted keyword (or identifier) among ``words``."""
        return self.kind == IDENT and self.text.upper() in words

    def is_op(self, *ops: str) -> bool:
        """Whether this is one of the operators ``ops``."""
        return self.kind == OP and self.text in ops

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind == EOF:
            return "the end of the file"
        if self.kind == STRING:
            return f"'{self.text}'"
        if self.kind == VARIABLE:
            return f"${{{self.text}}}"
        return self.text


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with one :data:`EOF` token."""
    return list(_Lexer(text).tokens())


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def tokens(self) -> Iterator[Token]:
        while True:
            self._skip_blanks()
            if self.pos >= len(self.text):
                yield Token(EOF, "", self.line)
                return
            yield self._next()

    def _skip_blanks(self) -> None:
        text = self.text
        while self.pos < len(text):
            if text[self.pos] == "\n":
                self.line += 1
                self.pos += 1
            elif match := _SPACE.match(text, self.pos):
                self.pos = match.end()
            elif text.startswith("--", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise StatementError(self.line, "unterminated comment (/* without */)")
                self.line += text.count("\n", self.pos, end)
                self.pos = end + 2
            else:
                return

    def _next(self) -> Token:
        text, start, line = self.text, self.pos, self.line
        char = text[start]
        if char in "'`\"":
            kind = STRING if char == "'" else QUOTED
            return Token(kind, self._quoted(char), line)
        if match := _VARIABLE.match(text, start):
            self.pos = match.end()
            return Token(VARIABLE, match.group(1), line)
        if match := _NUMBER.match(text, start):
            self.pos = match.end()
            return Token(NUMBER, match.group(0), line)
        if match := _WORD.match(text, start):
            self.pos = match.end()
            return Token(IDENT, match.group(0), line)
        for op in _OPERATORS:
            if text.startswith(op, start):
                self.pos += len(op)
                return Token(OP, op, line)
        raise StatementError(line, f"unexpected character {char!r}")

    def _quoted(self, quote: str) -> str:
        """The text between ``quote``s from the current position, doubled quotes unescaped."""
        text, line = self.text, self.line
        parts: list[str] = []
        pos = self.pos + 1
        while True:
            end = text.find(quote, pos)
            if end < 0:
                what = "string" if quote == "'" else "quoted identifier"
                raise StatementError(line, f"unterminated {what} (missing closing {quote})")
            parts.append(text[pos:end])
            if text.startswith(quote * 2, end):
                parts.append(quote)
                pos = end + 2
                continue
            self.line += text.count("\n", self.pos, end)
            self.pos = end + 1
            return "".join(parts)
