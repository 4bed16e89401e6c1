"""The one error hierarchy of Lakestream.

Every error a user can cause or meet derives from :class:`LakestreamError`; the
CLI turns it into one clear line and exit status 1. Retry loops look at the
:class:`TransientError` / :class:`TerminalError` mixins to know whether waiting
and trying again can help (a broker or object store that is down) or cannot (a
bad configuration, a full disk that needs a person).
"""

from __future__ import annotations


class LakestreamError(Exception):
    """Root of every error Lakestream raises on purpose.

    Args:
        message: One line for the user: what went wrong.
        hint: Optional second sentence: how to fix it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class TransientError(LakestreamError):
    """A failure that may go away by itself: retry with backoff."""


class TerminalError(LakestreamError):
    """A failure that retrying cannot fix: stop and tell the user."""


class ConfigError(TerminalError):
    """The configuration (file, environment or flags) is invalid."""


class UsageError(TerminalError):
    """The command was called wrongly; the CLI exits 2 for these."""


class FeedError(TerminalError):
    """An unknown, invalid or disabled feed."""


class UnknownNameError(FeedError, UsageError):
    """An unknown feed or pipeline name: a usage error (exit 2) wherever it is given."""


class BrokerError(TransientError):
    """The Kafka broker cannot be reached or answered with an error."""


class StorageError(TransientError):
    """The lake's storage (local folder or S3) failed an operation."""


class StorageFullError(TerminalError):
    """The lake's storage refused a write for lack of space or permission."""


class QueryError(TerminalError):
    """A query over the lake failed (bad SQL, unknown dataset)."""


class FencedError(TerminalError):
    """Another consumer committed offsets for a partition this one thought it owned."""


class WarehouseError(TerminalError):
    """The warehouse refused the work for a reason retrying cannot fix.

    Wrong credentials, a missing database or schema, data the schema rejects.
    """


class WarehouseUnavailableError(TransientError):
    """The warehouse cannot be reached or dropped the connection: retry with backoff."""
