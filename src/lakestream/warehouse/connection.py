"""Which warehouse to talk to, and how: URL resolution, engines, database creation.

``warehouse_url`` unset means the embedded default, an SQLite file at
``<data_dir>/warehouse.db``. Driver-less URLs get the drivers Lakestream ships
with (``mysql://`` → PyMySQL, ``postgresql://`` → psycopg 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.config.databases import database_url
from lakestream.errors import UsageError
from lakestream.warehouse.ddl import create_database_sql
from lakestream.warehouse.failures import translate

_CONNECT_TIMEOUT_S = 10


def warehouse_url(settings: Settings) -> sa.URL:
    """The configured warehouse URL (with a driver), or the embedded SQLite file."""
    raw = settings.warehouse_url or f"sqlite:///{Path(settings.data_dir) / 'warehouse.db'}"
    return database_url("warehouse_url", raw,
                        "mysql://user:password@host:3306/lakestream or sqlite:///warehouse.db")


def dialect_name(url: sa.URL) -> str:
    """``mysql`` (MySQL and MariaDB), ``postgresql`` or ``sqlite``."""
    backend = url.get_backend_name()
    return {"mariadb": "mysql", "postgres": "postgresql"}.get(backend, backend)


def make_engine(url: sa.URL, local_infile: bool = True) -> sa.Engine:
    """An engine for ``url``: pre-pinged pool; FKs on for SQLite; LOCAL INFILE for MySQL.

    Args:
        url: The warehouse URL (see :func:`warehouse_url`).
        local_infile: Let PyMySQL send files for ``LOAD DATA LOCAL INFILE``.
    """
    kind = dialect_name(url)
    connect_args: dict[str, Any] = {}
    if kind == "mysql":
        connect_args = {
            "local_infile": local_infile,
            "charset": "utf8mb4",
            "connect_timeout": _CONNECT_TIMEOUT_S,
        }
    elif kind == "postgresql":
        connect_args = {"connect_timeout": _CONNECT_TIMEOUT_S}
    elif url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 30}
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if kind == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def server_url(url: sa.URL) -> sa.URL:
    """A URL to the same server without ``url``'s database (to create it)."""
    database = "postgres" if dialect_name(url) == "postgresql" else None
    return sa.URL.create(
        url.drivername, url.username, url.password, url.host, url.port, database, url.query
    )


def create_database(url: sa.URL) -> bool:
    """Create ``url``'s database on its MySQL/MariaDB or PostgreSQL server if missing.

    Returns:
        Whether the database was created (``False``: it existed, or SQLite).

    Raises:
        WarehouseError: The server refused (credentials, privileges).
        WarehouseUnavailableError: The server cannot be reached.
    """
    kind = dialect_name(url)
    if kind == "sqlite":
        return False
    if not url.database:
        raise UsageError("the warehouse URL names no database", "append /<database> to it")
    engine = make_engine(server_url(url)).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if _database_exists(conn, kind, url.database):
                return False
            conn.exec_driver_sql(create_database_sql(kind, url.database))
            return True
    except sa.exc.DBAPIError as exc:
        raise translate(exc, url) from exc
    finally:
        engine.dispose()


def _database_exists(conn: sa.Connection, kind: str, name: str) -> bool:
    if kind == "postgresql":
        query = "SELECT 1 FROM pg_database WHERE datname = :name"
    else:
        query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
    return conn.execute(sa.text(query), {"name": name}).first() is not None
