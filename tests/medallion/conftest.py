"""Fixtures of the weather pipeline tests: settings, gold databases (SQLite, PostgreSQL).

PostgreSQL runs on 127.0.0.1:5432 (user postgres, trust). Each test gets a
database of its own, dropped afterwards. When the server is unreachable a
test that needs it is skipped with the command that starts it, except under
``CI=true``, where it fails: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lakestream.config import Settings

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def make_settings(tmp_path: Path, lake: str | None = None, gold_url: str | None = None,
                  **extra: Any) -> Settings:
    """Settings for one test: its own data dir, lake and gold store."""
    raw: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "feeds_dir": str(tmp_path / "feeds"),
        "lake": {"root": lake or str(tmp_path / "lake"), "flush_interval_s": 0.5},
        "gold_url": gold_url,
        **extra,
    }
    return Settings.model_validate(raw)


def _admin(*statements: str) -> None:
    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    """``None`` when PostgreSQL answers, else why not (checked once)."""
    try:
        _admin("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        return str(exc).splitlines()[0]
    return None


@pytest.fixture
def postgres_url(postgres_problem: str | None) -> Iterator[str]:
    """A fresh PostgreSQL database for this test only."""
    if postgres_problem is not None:
        message = f"PostgreSQL is not reachable ({postgres_problem}); start it with: {PG_START}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"lsweather_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(database=name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def gold_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A gold store URL: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gold.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def replay() -> Iterator[tuple[Any, str]]:
    """The OpenWeather replay server of tests/sources/test_openweather.py."""
    import importlib.util

    path = Path(__file__).parents[1] / "sources" / "test_openweather.py"
    spec = importlib.util.spec_from_file_location("_openweather_replay", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield from module.replay.__wrapped__()
