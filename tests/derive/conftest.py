"""Fixtures of the processor tests: a broker of their own (fixed topic names) per test, and
state stores on SQLite, MariaDB and PostgreSQL (a fresh database each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lakestream.kafka.broker import EmbeddedBroker
from tests.support.databases import require_server, server_status  # noqa: F401 (fixture)

STORE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.integration),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
]

ANON_KEY = "test-anonymization-key"


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Path]:
    """A project folder with its own broker; the transactions topics are this test's alone."""
    with EmbeddedBroker(tmp_path / "broker") as broker:
        config = {
            "data_dir": str(tmp_path / "data"),
            "feeds_dir": str(tmp_path / "feeds"),
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "session_timeout_ms": 2000,
                      "partitions": 4},
            "lake": {"root": str(tmp_path / "lake"), "flush_interval_s": 0.5,
                     "snapshot_interval_s": 1.0},
        }
        (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
        yield tmp_path


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              server_status: dict[str, str | None]) -> Iterator[str]:  # noqa: F811
    """The URL of an empty state store: an SQLite file, or a database of its own on the
    MariaDB or PostgreSQL server (dropped afterwards)."""
    backend = str(request.param)
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'processor.sqlite'}"
        return
    server = require_server(backend, server_status)
    with server.database("lsstate") as name:
        yield server.url(name)
