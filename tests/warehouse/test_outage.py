"""A connection killed by the server in the middle of a load: retried, and the data is exact."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from lakestream.warehouse import WarehouseService
from tests.support.databases import Server, require_server

from .checks import assert_facts_equal, assert_foreign_keys_hold, expected_rows, fact_rows
from .conftest import SERVER_BACKENDS
from .lakegen import TABLES

FACT = "fact_user_transaction_summary"


def _probing_fact(backend: str, statement: str) -> bool:
    """The fact's snapshot probe: inside its transaction, after its inferred members."""
    return f"FROM {FACT} " in statement and "snapshot_version" in statement


def _bulk_loading(backend: str, statement: str) -> bool:
    """PostgreSQL: the savepoint just before COPY; MariaDB: the LOAD DATA just run."""
    return statement.startswith("SAVEPOINT" if backend == "postgresql" else "LOAD DATA")


SCENARIOS = {
    # event, predicate, the table whose load is hit
    "before-the-fact-probe": ("before_cursor_execute", _probing_fact, FACT),
    "during-the-bulk-load": ("after_cursor_execute", _bulk_loading, "dim_users"),
}


class ServerSideKiller:
    """Kills the loading connection from a second connection, as a DBA or a failover would."""

    def __init__(
        self, backend: str, server: Server, when: Callable[[str, str], bool], times: int
    ) -> None:
        self.backend, self.server, self.when = backend, server, when
        self.left = times
        self.killed: list[int] = []

    def __call__(self, conn: sa.Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        if not self.left or not self.when(self.backend, statement):
            return
        self.left -= 1
        dbapi: Any = conn.connection.dbapi_connection
        if self.backend == "mariadb":
            ident = int(dbapi.thread_id())
            self.server.execute(f"KILL {ident}")
        else:
            ident = int(dbapi.info.backend_pid)
            self.server.execute(f"SELECT pg_terminate_backend({ident}, 5000)")
        self.killed.append(ident)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
def test_killed_connection_mid_load_is_retried_to_exact_data(
    backend: str,
    scenario: str,
    service: WarehouseService,
    loaded_lake: dict[str, Any],
    server_status: dict[str, str | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    event, when, victim = SCENARIOS[scenario]
    killer = ServerSideKiller(backend, require_server(backend, server_status), when, times=2)
    sa.event.listen(service.engine, event, killer)
    with caplog.at_level(logging.WARNING, logger="lakestream.warehouse"):
        report = service.sync()
    sa.event.remove(service.engine, event, killer)

    assert len(killer.killed) == 2
    attempts = {t.table: t.attempts for t in report.tasks}
    assert attempts == {t: 3 if t == victim else 1 for t in attempts}
    assert sum("retrying in" in r.getMessage() for r in caplog.records) == 2
    assert_foreign_keys_hold(service.engine)
    for table in TABLES:
        actual = fact_rows(service.engine, table, "v1")
        assert_facts_equal(actual, expected_rows(table, loaded_lake[table]))
    with service.engine.connect() as conn:
        logged = conn.exec_driver_sql(
            f"SELECT attempt, status FROM pipeline_execution_log WHERE task = 'sync:{victim}'"
        ).one()
    assert tuple(logged) == (3, "success")
