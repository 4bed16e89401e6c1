"""Database errors → Lakestream errors, and the retry loop around one load.

A user meets one line with a hint, never a driver traceback: wrong
credentials, a missing database or schema are :class:`WarehouseError`
(terminal); an unreachable server or a connection lost in the middle of a
load are :class:`WarehouseUnavailableError` (transient), which
:func:`run_in_transaction` retries with backoff. A load is one transaction, so
a retry redoes it from the start and the result is exact.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from lakestream.errors import LakestreamError, WarehouseError, WarehouseUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

_DRIVER_MODULES = ("pymysql", "psycopg", "sqlite3")

# MySQL/MariaDB error codes (server 1xxx, client 2xxx)
_MYSQL_AUTH = {1044, 1045, 1698}
_MYSQL_NO_DATABASE = {1049}
_MYSQL_NO_TABLE = {1146}
_MYSQL_UNREACHABLE = {2002, 2003, 2005}
_MYSQL_LOST = {1053, 1205, 1213, 1927, 2006, 2013, 2014, 2055, 4031}

# PostgreSQL SQLSTATE classes / codes
_PG_AUTH = {"28P01", "28000"}
_PG_NO_DATABASE = {"3D000"}
_PG_NO_TABLE = {"42P01"}
_PG_TRANSIENT = {"40001", "40P01", "53300", "57P01", "57P02", "57P03"}
# psycopg reports connection-time refusals without a SQLSTATE: match the server's text
_PG_AUTH_TEXT = re.compile(
    r'authentication failed|role "[^"]*" does not exist|no pg_hba\.conf entry'
)
_PG_NO_DATABASE_TEXT = re.compile(r'database "[^"]*" does not exist')


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a load is retried when the warehouse goes away.

    Attributes:
        attempts: Tries in all (1 = no retry).
        base_delay_s: Wait before the second try; doubled each time.
        max_delay_s: Cap on one wait.
    """

    attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 15.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from SQLAlchemy or one of the database drivers."""
    return isinstance(exc, sa.exc.DBAPIError) or type(exc).__module__.split(".")[0] in (
        _DRIVER_MODULES
    )


def translate(exc: BaseException, url: sa.URL) -> LakestreamError:
    """One clear Lakestream error for a database failure at ``url``."""
    orig: BaseException = exc
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
    where = _where(url)
    code = _mysql_code(orig)
    state = getattr(orig, "sqlstate", None)
    text = _first_line(orig)
    lowered = text.lower()
    if code in _MYSQL_AUTH or state in _PG_AUTH or _PG_AUTH_TEXT.search(lowered):
        return WarehouseError(
            f"the warehouse at {where} refused the login: {text}",
            "check the user and password in LAKESTREAM_WAREHOUSE_URL (or warehouse_url)",
        )
    if code in _MYSQL_NO_DATABASE or state in _PG_NO_DATABASE or _pg_missing_database(lowered):
        return WarehouseError(
            f"database '{url.database}' does not exist at {where}",
            "run `lakestream warehouse init` to create it, or fix the name in the warehouse URL",
        )
    if code in _MYSQL_NO_TABLE or state in _PG_NO_TABLE or "no such table" in lowered:
        return WarehouseError(
            f"the warehouse schema at {where} is missing or incomplete: {text}",
            "run `lakestream warehouse init`",
        )
    if _is_transient(exc, orig, code, state, lowered):
        return WarehouseUnavailableError(
            f"the warehouse at {where} is unavailable: {text}",
            _start_hint(url),
        )
    return WarehouseError(f"the warehouse at {where} failed: {text}")


def run_in_transaction(
    engine: sa.Engine,
    work: Callable[[sa.Connection], T],
    policy: RetryPolicy,
    what: str,
) -> tuple[T, int]:
    """Run ``work`` in one transaction, retrying it whole while the warehouse is unavailable.

    Returns:
        ``work``'s result and the number of tries it took.

    Raises:
        WarehouseError: For failures retrying cannot fix.
        WarehouseUnavailableError: When the last try failed too.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            with engine.begin() as conn:
                return work(conn), attempt
        except Exception as exc:
            if not is_database_error(exc):
                raise
            error = translate(exc, engine.url)
            if not isinstance(error, WarehouseUnavailableError) or attempt == policy.attempts:
                raise error from exc
            wait = policy.delay(attempt)
            log.warning(
                "%s: %s; retrying in %.1fs (try %d of %d)",
                what,
                error.message,
                wait,
                attempt + 1,
                policy.attempts,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _is_transient(
    exc: BaseException, orig: BaseException, code: int | None, state: str | None, text: str
) -> bool:
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if code in _MYSQL_UNREACHABLE or code in _MYSQL_LOST:
        return True
    if state in _PG_TRANSIENT or (state or "").startswith("08"):
        return True
    if type(orig).__module__.startswith("psycopg") and type(orig).__name__ == "OperationalError":
        return True  # connection refused, server closed the connection, ...
    return "database is locked" in text


def _mysql_code(orig: BaseException) -> int | None:
    if not type(orig).__module__.startswith("pymysql") or not orig.args:
        return None
    code = orig.args[0]
    return code if isinstance(code, int) else None


def _pg_missing_database(text: str) -> bool:
    return _PG_NO_DATABASE_TEXT.search(text) is not None


def _first_line(orig: BaseException) -> str:
    if type(orig).__module__.startswith("pymysql") and len(orig.args) >= 2:
        return str(orig.args[1]).strip().splitlines()[0]
    text = str(orig).strip()
    if not text:
        return type(orig).__name__
    line = text.splitlines()[0]
    # psycopg: 'connection failed: connection to server at "h", port p failed: FATAL:  why'
    return line.split("FATAL:", 1)[-1].strip()


def _where(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    port = f":{url.port}" if url.port else ""
    return f"{url.get_backend_name()}://{url.host or 'localhost'}{port}/{url.database or ''}"


def _start_hint(url: sa.URL) -> str:
    backend = url.get_backend_name()
    if backend in ("mysql", "mariadb"):
        return "is the MySQL/MariaDB server running and reachable? Lakestream retries with backoff"
    if backend == "postgresql":
        return "is the PostgreSQL server running and reachable? Lakestream retries with backoff"
    return "another process holds the SQLite file; Lakestream retries with backoff"
