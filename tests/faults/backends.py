"""PostgreSQL faults for the long-running consumers: a fresh database, and its backends
terminated server-side while they work (``pg_terminate_backend``, as a DBA or a failover
does)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support.databases import Server, require_server


@pytest.fixture
def pg_database() -> Iterator[tuple[Server, str]]:
    """A fresh database on the PostgreSQL server (CI=true: fail, never skip, if it is down)."""
    server = require_server("postgresql", {})
    name = f"lsfault_{uuid.uuid4().hex[:12]}"
    server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server, name
    finally:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BackendKiller(threading.Thread):
    """Terminates the database's busy backends (mid-statement or mid-transaction), repeatedly."""

    def __init__(self, server: Server, database: str, rng: random.Random,
                 pause: tuple[float, float] = (0.3, 1.2)) -> None:
        super().__init__(name="backend-killer", daemon=True)
        self.engine = sa.create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        self.database, self.rng, self.pause = database, rng, pause
        self.killed: list[tuple[int, str]] = []
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)
        self.engine.dispose()

    def run(self) -> None:
        busy = sa.text(
            "SELECT pid, state FROM pg_stat_activity WHERE datname = :db "
            "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")
        with self.engine.connect() as conn:
            while not self._stop_event.is_set():
                rows = conn.execute(busy, {"db": self.database}).all()
                if not rows:
                    time.sleep(0.01)
                    continue
                pid, state = rows[0]
                if conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                {"pid": pid}).scalar():
                    self.killed.append((pid, state))
                    self._stop_event.wait(self.rng.uniform(*self.pause))
