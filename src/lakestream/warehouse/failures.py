"""Database errors → Lakestream errors, and one load run in one transaction, retried.

A user meets one line with a hint, never a driver traceback: wrong
credentials, a missing database or schema are :class:`WarehouseRefusedError`
(terminal); an unreachable server or a connection lost in the middle of a
load are :class:`WarehouseUnavailableError` (transient), which
:func:`run_in_transaction` retries on its :class:`~lakestream.retry.RetryPolicy`
(:data:`~lakestream.retry.WAREHOUSE` by default). A load is one transaction,
so a retry redoes it from the start and the result is exact. Every error names
the server's URL without its password (``url``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from lakestream.errors import (
    WarehouseError,
    WarehouseRefusedError,
    WarehouseUnavailableError,
)
from lakestream.retry import WAREHOUSE, RetryPolicy

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


__all__ = ["WAREHOUSE", "RetryPolicy", "is_database_error", "run_in_transaction", "translate"]


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from SQLAlchemy or one of the database drivers."""
    return isinstance(exc, sa.exc.DBAPIError) or type(exc).__module__.split(".")[0] in (
        _DRIVER_MODULES
    )


def translate(exc: BaseException, url: sa.URL) -> WarehouseError:
    """One clear Lakestream error for a database failure at ``url`` (its ``url`` is set)."""
    orig: BaseException = exc
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
    where = _where(url)  # no user, no password: also the errors' ``url``
    code = _mysql_code(orig)
    state = getattr(orig, "sqlstate", None)
    text = _first_line(orig)
    lowered = text.lower()
    if code in _MYSQL_AUTH or state in _PG_AUTH or _PG_AUTH_TEXT.search(lowered):
        return WarehouseRefusedError(
            f"the warehouse at {where} refused the login: {text}",
            "check the user and password in LAKESTREAM_WAREHOUSE_URL (or warehouse_url)",
            url=where,
        )
    if code in _MYSQL_NO_DATABASE or state in _PG_NO_DATABASE or _pg_missing_database(lowered):
        return WarehouseRefusedError(
            f"database '{url.database}' does not exist at {where}",
            "run `lakestream warehouse init` to create it, or fix the name in the warehouse URL",
            url=where,
        )
    if code in _MYSQL_NO_TABLE or state in _PG_NO_TABLE or "no such table" in lowered:
        return WarehouseRefusedError(
            f"the warehouse schema at {where} is missing or incomplete: {text}",
            "run `lakestream warehouse init`",
            url=where,
        )
    if _is_transient(exc, orig, code, state, lowered):
        return WarehouseUnavailableError(
            f"the warehouse at {where} is unavailable: {text}",
            _start_hint(url),
            url=where,
        )
    return WarehouseRefusedError(f"the warehouse at {where} failed: {text}", url=where)


def run_in_transaction(
    engine: sa.Engine,
    work: Callable[[sa.Connection], T],
    policy: RetryPolicy = WAREHOUSE,
    what: str = "a warehouse transaction",
) -> tuple[T, int]:
    """Run ``work`` in one transaction, retrying it whole while the warehouse is unavailable.

    Args:
        engine: The database.
        work: The transaction's statements; run again from the start after a failure.
        policy: How patiently (:data:`~lakestream.retry.WAREHOUSE`, ``RUN_LOG``, ``DAG_LOCK``).
        what: What ``work`` does, for the retry warnings.

    Returns:
        ``work``'s result and the number of tries it took.

    Raises:
        WarehouseRefusedError: For failures retrying cannot fix.
        WarehouseUnavailableError: When the last try failed too.
    """
    tries = 0

    def once() -> T:
        nonlocal tries
        tries += 1
        try:
            with engine.begin() as conn:
                return work(conn)
        except Exception as exc:
            if not is_database_error(exc):
                raise
            raise translate(exc, engine.url) from exc

    return policy.call(once, what, logger=log), tries


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
