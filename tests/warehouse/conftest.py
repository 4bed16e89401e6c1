"""Warehouse fixtures: MariaDB, PostgreSQL and SQLite, one fresh database per test.

MariaDB (127.0.0.1:3306, root, no password) and PostgreSQL (127.0.0.1:5432,
postgres, trust) run on the project's machines. When one is unreachable a
test that needs it is skipped with the command that starts it, except under
``CI=true``, where it fails: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.warehouse import RetryPolicy, WarehouseService

from .lakegen import build_lake, flattened_events


@dataclass(frozen=True)
class Server:
    """A database server the tests may create databases on."""

    name: str
    admin_url: str
    url_template: str
    start_hint: str

    def url(self, database: str) -> str:
        """URL of ``database`` on this server."""
        return self.url_template.format(database=database)

    def execute(self, *statements: str) -> None:
        """Run statements outside a transaction (CREATE / DROP DATABASE)."""
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()


SERVERS = {
    "mariadb": Server(
        "MariaDB",
        "mysql+pymysql://root@127.0.0.1:3306/",
        "mysql+pymysql://root@127.0.0.1:3306/{database}",
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    ),
    "postgresql": Server(
        "PostgreSQL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
}

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.integration),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
]
SERVER_BACKENDS = BACKENDS[1:]

FAST_RETRY = RetryPolicy(attempts=4, base_delay_s=0.05, max_delay_s=0.2)


def _reachable(server: Server) -> str | None:
    engine = sa.create_engine(server.admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.SQLAlchemyError as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def server_status() -> dict[str, str | None]:
    """Per server: ``None`` when reachable, else why not (checked once per session)."""
    return {}


def require_server(backend: str, status: dict[str, str | None]) -> Server:
    """The server of ``backend``; skip (or, under CI=true, fail) when it is down."""
    server = SERVERS[backend]
    if backend not in status:
        status[backend] = _reachable(server)
    problem = status[backend]
    if problem is not None:
        message = f"{server.name} is not reachable ({problem}); start it with: {server.start_hint}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on SQLite, MariaDB and PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str, tmp_path: Path, server_status: dict[str, str | None]
) -> Iterator[str]:
    """A URL of a fresh, empty database that exists only for this test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
        return
    server = require_server(backend, server_status)
    name = f"lstest_{uuid.uuid4().hex[:12]}"
    server.execute(_create(backend, name))
    try:
        yield server.url(name)
    finally:
        server.execute(_drop(backend, name))


@pytest.fixture
def missing_database_url(backend: str, server_status: dict[str, str | None]) -> Iterator[str]:
    """A URL naming a database that does not exist (dropped after the test if created)."""
    name = f"lstest_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        pytest.skip("SQLite creates its database file on first use")
    server = require_server(backend, server_status)
    try:
        yield server.url(name)
    finally:
        server.execute(_drop(backend, name))


def _create(backend: str, name: str) -> str:
    if backend == "mariadb":
        return f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    return f'CREATE DATABASE "{name}"'


def _drop(backend: str, name: str) -> str:
    if backend == "mariadb":
        return f"DROP DATABASE IF EXISTS `{name}`"
    return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'


def make_settings(tmp_path: Path, url: str | None, lake: Path | None = None) -> Settings:
    """Settings with a lake below ``tmp_path`` and the warehouse at ``url``."""
    raw: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "feeds_dir": str(tmp_path / "feeds"),
        "lake": {"root": str(lake or tmp_path / "lake")},
        "warehouse_url": url,
    }
    return Settings.model_validate(raw)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """An empty lake folder."""
    path = tmp_path / "lake"
    path.mkdir()
    return path


@pytest.fixture
def service(tmp_path: Path, database_url: str, lake: Path) -> Iterator[WarehouseService]:
    """A warehouse service on the fresh database, schema created, over ``lake``."""
    svc = WarehouseService(make_settings(tmp_path, database_url, lake), retry=FAST_RETRY)
    svc.init()
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture(scope="session")
def events() -> list[dict[str, Any]]:
    """600 flattened events over three days (shared, read-only)."""
    return flattened_events(600)


@pytest.fixture
def loaded_lake(lake: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """``lake`` with the stream and version v1 of every table; the expected aggregates."""
    return build_lake(lake, events)
