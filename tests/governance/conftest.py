"""Governance fixtures: a project with test feeds, its facade, and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestream.api import Lakestream
from lakestream.cli import main
from lakestream.config import load_settings
from tests.conftest import clear_settings_environment
from tests.support.databases import require_server
from tests.warehouse.conftest import backend, database_url, server_status  # noqa: F401 (fixtures)

from .lakebuild import STREAM_SPEC, TABLE_SPEC, feed_file


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


@pytest.fixture
def pg_database(server_status: dict[str, str | None]) -> Iterator[str]:  # noqa: F811
    """The name of a fresh PostgreSQL database that exists only for this test."""
    with require_server("postgresql", server_status).database("lsgov") as name:
        yield name
