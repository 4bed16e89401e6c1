"""Warehouse fixtures: MariaDB, PostgreSQL and SQLite, one fresh database per test.

The servers, and what a test does when one does not answer (skip with the
command that starts it; fail under ``CI=true``): :mod:`tests.support.databases`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakestream.config import Settings
from lakestream.warehouse import RetryPolicy, WarehouseService
from tests.support.databases import require_server, server_status  # noqa: F401 (fixture)

from .lakegen import build_lake, flattened_events

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.integration),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
]
SERVER_BACKENDS = BACKENDS[1:]

FAST_RETRY = RetryPolicy(attempts=4, base_delay_s=0.05, max_delay_s=0.2)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on SQLite, MariaDB and PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str, tmp_path: Path, server_status: dict[str, str | None]  # noqa: F811
) -> Iterator[str]:
    """A URL of a fresh, empty database that exists only for this test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
        return
    server = require_server(backend, server_status)
    with server.database("lstest") as name:
        yield server.url(name)


@pytest.fixture
def missing_database_url(backend: str,
                         server_status: dict[str, str | None]) -> Iterator[str]:  # noqa: F811
    """A URL naming a database that does not exist (dropped after the test if created)."""
    name = f"lstest_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        pytest.skip("SQLite creates its database file on first use")
    server = require_server(backend, server_status)
    try:
        yield server.url(name)
    finally:
        server.execute(server.drop_sql.format(name=name))


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
