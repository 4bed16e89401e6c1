"""The run log and the DAG lock on every warehouse: SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from lakestream.orchestrate.lock import DagLock, DagLockedError
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.runlog import RunLog
from tests.warehouse.conftest import (  # noqa: F401  (fixtures)
    backend,
    database_url,
    server_status,
)

from .conftest import linear, make_runner, task


@pytest.fixture
def any_engine(database_url: str) -> Iterator[sa.Engine]:  # noqa: F811
    engine = make_engine(sa.make_url(database_url))
    yield engine
    engine.dispose()


def test_a_run_is_logged_and_locked_on_each_warehouse(any_engine: sa.Engine) -> None:
    with DagLock(any_engine, "weather", "run-a") as lock:
        with pytest.raises(DagLockedError):
            DagLock(any_engine, "weather", "run-b").acquire()
        assert lock.heartbeat()
    dag = linear("d", task("a"), task("b", lambda ctx: 1 / 0))
    report = make_runner(dag, any_engine).run()
    rows = RunLog(any_engine).rows(report.run_id)
    assert [(r["task"], r["attempt"], r["status"]) for r in rows][:2] == [
        ("a", 1, "success"), ("b", 1, "failed")]
    assert rows[-1]["error"] == "division by zero" and rows[0]["rows_out"] == 10
    assert RunLog(any_engine).last_started("d", ["a", "b"]) is not None
