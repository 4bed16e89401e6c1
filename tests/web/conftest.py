"""A small demo lake (transactions and weather, runs and quality results) and tokens for it.

Built once per session with the real pipeline: ``run_demo`` (its own Tansu
broker), then the weather DAG twice on the session broker (simulated source,
through the DAG runner) and a warehouse sync, so the run log and the quality
results hold something to show.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.demo import run_demo
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.orchestrate.catalog import weather_dag
from lakestream.pipelines.weather import WeatherOptions
from lakestream.web import create_app

EXTRA_WEATHER_HOURS = (48, 2)
WEATHER_RUNS = 1 + len(EXTRA_WEATHER_HOURS)  # the demo's own weather run, then these
TRANSACTIONS_DAG_RUNS = 1  # the demo's transactions DAG run (its quality task checks too)


@dataclass
class DemoLake:
    """The demo lake's configuration file and facade."""

    config: Path
    api: Lakestream


@dataclass
class Tokens:
    """Tokens of the test principals."""

    admin: str  # the built-in admin role: reads every dataset
    analyst: str  # member of role:analyst: shared datasets only
    nobody: str  # no grant at all
    revoked: str  # was admin's, revoked
    single: str  # one grant: silver_weather_cleaned
    pattern: str  # pattern grants: transaction_* and weather_* (silver's weather datasets)


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory, broker: EmbeddedBroker) -> DemoLake:
    """The demo lake, built once (about 30 s)."""
    home = tmp_path_factory.mktemp("weblake")
    base = load_settings(environ={"LAKESTREAM_DATA_DIR": str(home / "data"),
                                  "LAKESTREAM_FEEDS_DIR": str(home / "feeds"),
                                  "LAKESTREAM_ANON_KEY": "0" * 64}, cwd=home)
    summary = run_demo(Lakestream(base), messages=400, seed=7)
    config = Path(summary["config"])
    api = Lakestream(load_settings(config, environ={
        "LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "LAKESTREAM_FEEDS_DIR": str(home / "feeds")}, cwd=home))
    for hours in EXTRA_WEATHER_HOURS:
        api.orchestrator.run(weather_dag(WeatherOptions(source="simulated", hours=hours,
                                                        seed=hours)))
    api.warehouse.init()
    api.warehouse.sync()
    return DemoLake(config, api)


@pytest.fixture(scope="session")
def tokens(demo_lake: DemoLake) -> Tokens:
    """One token per kind of principal."""
    gov, issue = demo_lake.api.governance, demo_lake.api.tokens.issue
    gov.grant("ana", "role:analyst", "read", actor="tests")
    gov.grant("solo", "silver_weather_cleaned", "read", actor="tests")
    gov.grant("pat", "transaction_*", "read", actor="tests")
    gov.grant("pat", "weather_*", "read", actor="tests")
    revoked, info = issue("admin")
    demo_lake.api.tokens.revoke(info.token_id)
    return Tokens(issue("admin")[0], issue("ana")[0], issue("nobody")[0], revoked,
                  issue("solo")[0], issue("pat")[0])


@pytest.fixture(scope="session")
def client(demo_lake: DemoLake) -> Iterator[TestClient]:
    """A test client of the app over the demo lake (no token set)."""
    with TestClient(create_app(demo_lake.api)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def admin(client: TestClient, tokens: Tokens) -> dict[str, str]:
    """Headers of the admin token."""
    return {"Authorization": f"Bearer {tokens.admin}"}


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def server(demo_lake: DemoLake, tokens: Tokens) -> Iterator[str]:
    """The app served by uvicorn on a free port, for the browser; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(demo_lake.api, poll_s=1.0), host="127.0.0.1", port=port,
                            log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(5)
