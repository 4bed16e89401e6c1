"""Governance fixtures: a project with test feeds, its facade, and a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from lakestream.api import Lakestream
from lakestream.cli import main
from lakestream.config import load_settings
from tests.conftest import clear_settings_environment
from tests.warehouse.conftest import backend, database_url, server_status  # noqa: F401 (fixtures)

from .lakebuild import STREAM_SPEC, TABLE_SPEC, feed_file

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def write_project(root: Path, lake: str | None = None, **extra: Any) -> Path:
    """A project folder: ``project.yaml`` and the test feeds; returns the config file."""
    config = {"data_dir": str(root / "data"), "feeds_dir": str(root / "feeds"),
              "lake": {"root": lake or str(root / "lake")}, **extra}
    feed_file(root / "feeds", "events", sensitivity="restricted", retention_days=90,
              **STREAM_SPEC)
    feed_file(root / "feeds", "events_anon", sensitivity="shared", **STREAM_SPEC)
    feed_file(root / "feeds", "totals", sensitivity="shared", **TABLE_SPEC)
    path = root / "project.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a local lake and no LAKESTREAM_* from the shell."""
    clear_settings_environment(monkeypatch)
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)
    return tmp_path


def api_for(project: Path, **env: str) -> Lakestream:
    """The facade of ``project`` (with an environment override)."""
    return Lakestream(load_settings(project / "project.yaml", environ=env, cwd=project))


def run(project: Path, *args: str) -> int:
    """``lakestream --config project.yaml ARGS`` in this process; its exit status."""
    return main(["--config", str(project / "project.yaml"), *args])


@pytest.fixture(scope="session")
def pg_status() -> dict[str, str | None]:
    """Whether PostgreSQL answered (checked once)."""
    return {}


def require_postgres(status: dict[str, str | None]) -> None:
    """Skip (fail under CI=true) when PostgreSQL is not reachable."""
    if "pg" not in status:
        engine = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
        try:
            with engine.connect():
                status["pg"] = None
        except sa.exc.SQLAlchemyError as exc:
            status["pg"] = str(exc).splitlines()[0]
        finally:
            engine.dispose()
    if status["pg"] is not None:
        message = f"PostgreSQL is not reachable ({status['pg']}); start it with: {PG_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def pg_database(pg_status: dict[str, str | None]) -> Iterator[str]:
    """The name of a fresh PostgreSQL database that exists only for this test."""
    require_postgres(pg_status)
    name = f"lsgov_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
