"""The database servers tests run on (MariaDB, PostgreSQL): probe them, or say how to start them.

MariaDB (127.0.0.1:3306, root, no password) and PostgreSQL (127.0.0.1:5432,
postgres, trust) run on the project's machines. When one does not answer, a
test that needs it is skipped with the command that starts it, except under
``CI=true``, where it fails: CI must never pass by skipping. Each test gets a
database of its own (:meth:`Server.database`), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

__all__ = ["SERVERS", "Server", "require_server", "server_status"]


@dataclass(frozen=True)
class Server:
    """A database server the tests may create databases on.

    Attributes:
        create_sql: ``CREATE DATABASE`` of the server's dialect (``{name}``: the database).
        drop_sql: ``DROP DATABASE`` of the server's dialect, closing open connections.
    """

    name: str
    admin_url: str
    url_template: str
    start_hint: str
    create_sql: str = 'CREATE DATABASE "{name}"'
    drop_sql: str = 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'

    def url(self, database: str) -> str:
        """URL of ``database`` on this server."""
        return self.url_template.format(database=database)

    def execute(self, *statements: str) -> None:
        """Run statements outside a transaction (CREATE / DROP DATABASE)."""
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT",
                                  connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def problem(self) -> str | None:
        """``None`` when the server answers, else why not (one line)."""
        try:
            self.execute("SELECT 1")
        except sa.exc.SQLAlchemyError as exc:
            return str(exc).splitlines()[0]
        return None

    @contextmanager
    def database(self, prefix: str) -> Iterator[str]:
        """The name of a fresh database that exists until the block ends."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(self.create_sql.format(name=name))
        try:
            yield name
        finally:
            self.execute(self.drop_sql.format(name=name))


SERVERS = {
    "mariadb": Server(
        "MariaDB",
        "mysql+pymysql://root@127.0.0.1:3306/",
        "mysql+pymysql://root@127.0.0.1:3306/{database}",
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
        create_sql="CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        drop_sql="DROP DATABASE IF EXISTS `{name}`",
    ),
    "postgresql": Server(
        "PostgreSQL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
}


@pytest.fixture(scope="session")
def server_status() -> dict[str, str | None]:
    """Per server: ``None`` when it answered, else why not (each probed once per session)."""
    return {}


def require_server(backend: str, status: dict[str, str | None]) -> Server:
    """The server of ``backend``; skip (or, under ``CI=true``, fail) when it does not answer.

    Args:
        backend: ``mariadb`` or ``postgresql``.
        status: The answers so far (:func:`server_status`); a server not in it is probed.
    """
    server = SERVERS[backend]
    if backend not in status:
        status[backend] = server.problem()
    problem = status[backend]
    if problem is not None:
        message = f"{server.name} is not reachable ({problem}); start it with: {server.start_hint}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return server
