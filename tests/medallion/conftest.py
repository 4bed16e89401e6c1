"""Fixtures of the weather pipeline tests: settings, gold databases (SQLite, PostgreSQL).

Each test gets a PostgreSQL database of its own, dropped afterwards; what a
test does when the server does not answer (skip with the command that starts
it; fail under ``CI=true``): :mod:`tests.support.databases`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakestream.config import Settings
from tests.support.databases import require_server, server_status  # noqa: F401 (fixture)


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


@pytest.fixture
def postgres_url(server_status: dict[str, str | None]) -> Iterator[str]:  # noqa: F811
    """A fresh PostgreSQL database for this test only."""
    server = require_server("postgresql", server_status)
    with server.database("lsweather") as name:
        yield server.url(name)


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
