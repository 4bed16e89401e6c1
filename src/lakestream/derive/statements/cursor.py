"""A cursor over tokens: what both parsers (statements, expressions) read through."""

from __future__ import annotations

from typing import NoReturn

from lakestream.derive.statements.errors import StatementError
from lakestream.derive.statements.tokens import EOF, IDENT, QUOTED, Token


class Cursor:
    """Reads tokens in order; every error it raises names the line of the token at fault."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    @property
    def current(self) -> Token:
        """The next token to read."""
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        """The token ``ahead`` positions after the current one (EOF past the end)."""
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        """Consume and return the current token."""
        token = self.tokens[self.pos]
        if token.kind != EOF:
            self.pos += 1
        return token

    def at_word(self, *words: str) -> bool:
        """Whether the current token is one of the keywords ``words``."""
        return self.current.is_word(*words)

    def at_op(self, *ops: str) -> bool:
        """Whether the current token is one of the operators ``ops``."""
        return self.current.is_op(*ops)

    def accept_word(self, *words: str) -> Token | None:
        """Consume the current token if it is one of ``words``."""
        return self.advance() if self.at_word(*words) else None

    def accept_op(self, *ops: str) -> Token | None:
        """Consume the current token if it is one of ``ops``."""
        return self.advance() if self.at_op(*ops) else None

    def expect_word(self, word: str, where: str) -> Token:
        """Consume the keyword ``word`` or refuse, saying what was expected ``where``."""
        if not self.at_word(word):
            self.fail(f"expected {word} {where}, found {self.current.describe()}")
        return self.advance()

    def expect_op(self, op: str, where: str) -> Token:
        """Consume the operator ``op`` or refuse."""
        if not self.at_op(op):
            self.fail(f"expected '{op}' {where}, found {self.current.describe()}")
        return self.advance()

    def identifier(self, what: str) -> str:
        """Consume a name (plain, backquoted or double-quoted) and return it as written."""
        token = self.current
        if token.kind not in (IDENT, QUOTED):
            self.fail(f"expected {what}, found {token.describe()}")
        self.advance()
        return token.text

    def fail(self, detail: str, token: Token | None = None) -> NoReturn:
        """Refuse at the line of ``token`` (the current one by default)."""
        raise StatementError((token or self.current).line, detail)
