"""The run log: one row per task attempt in the warehouse's ``pipeline_execution_log``.

Each attempt gets a row when it starts (status ``running``) that is completed
when it ends (``success``, ``failed``, ``timeout`` or ``cancelled``, with its
row counts and error). Tasks a run did not reach because an upstream task
failed get an ``upstream_failed`` row (attempt 0). The scheduler reads the log
back to know when a DAG last ran.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from lakestream.errors import LakestreamError
from lakestream.retry import RUN_LOG, RetryPolicy
from lakestream.warehouse.failures import run_in_transaction, translate
from lakestream.warehouse.schema import pipeline_execution_log as log_table

log = logging.getLogger(__name__)

_ERROR_CHARS = 4000


def utcnow() -> dt.datetime:
    """Now, in UTC, without a zone (how the warehouse stores times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def ensure_table(engine: sa.Engine, table: sa.Table, attempts: int = 5) -> None:
    """Create ``table`` if it is missing; tolerate another process creating it meanwhile.

    Retried on :data:`~lakestream.retry.RUN_LOG`'s waits, ``attempts`` tries in all.

    Raises:
        WarehouseRefusedError: The warehouse refused (credentials, missing database).
        WarehouseUnavailableError: It stayed unreachable (or locked) for every try.
    """

    def create() -> None:
        try:
            table.create(engine, checkfirst=True)
        except sa.exc.DBAPIError as exc:
            if "already exists" in str(exc).lower():
                return  # created by someone else between the check and the create
            raise translate(exc, engine.url) from exc

    replace(RUN_LOG, attempts=attempts).call(create, f"creating {table.name}", logger=log)


class RunLog:
    """Reads and writes ``pipeline_execution_log``.

    Args:
        engine: The warehouse engine.
        retry: Patience with a warehouse that goes away.
    """

    def __init__(self, engine: sa.Engine, retry: RetryPolicy | None = None) -> None:
        self.engine = engine
        self.retry = retry or RUN_LOG
        self._ready = False

    def ensure(self) -> None:
        """Create the log table if the warehouse has none yet."""
        if not self._ready:
            ensure_table(self.engine, log_table)
            self._ready = True

    def started(self, run_id: str, pipeline: str, task: str, attempt: int) -> int:
        """Record an attempt's start; returns its ``execution_id``."""
        self.ensure()
        row = {"run_id": run_id, "pipeline": pipeline, "task": task, "status": "running",
               "attempt": attempt, "started_at": utcnow()}

        def work(conn: sa.Connection) -> int:
            result = conn.execute(log_table.insert().values(**row))
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

        execution_id, _ = run_in_transaction(self.engine, work, self.retry, "logging a task")
        return execution_id

    def finished(self, execution_id: int, status: str, rows_in: int | None = None,
                 rows_out: int | None = None, error: str | None = None) -> None:
        """Complete an attempt's row."""
        values = {"status": status, "ended_at": utcnow(), "rows_in": rows_in,
                  "rows_out": rows_out, "error": error[:_ERROR_CHARS] if error else None}
        statement = (log_table.update().where(log_table.c.execution_id == execution_id)
                     .values(**values))
        run_in_transaction(self.engine, lambda conn: conn.execute(statement), self.retry,
                           "logging a task")

    def not_run(self, run_id: str, pipeline: str, tasks: Iterable[str], status: str,
                reason: str) -> None:
        """Record tasks a run did not reach (``upstream_failed`` or ``cancelled``)."""
        self.ensure()
        now = utcnow()
        rows = [{"run_id": run_id, "pipeline": pipeline, "task": task, "status": status,
                 "attempt": 0, "started_at": now, "ended_at": now, "error": reason}
                for task in tasks]
        if rows:
            run_in_transaction(self.engine, lambda conn: conn.execute(log_table.insert(), rows),
                               self.retry, "logging a task")

    def last_started(self, pipeline: str, tasks: Sequence[str]) -> dt.datetime | None:
        """When one of ``tasks`` of ``pipeline`` last started (UTC); ``None`` if never."""
        self.ensure()
        query = sa.select(sa.func.max(log_table.c.started_at)).where(
            log_table.c.pipeline == pipeline, log_table.c.task.in_(list(tasks)))
        value, _ = run_in_transaction(self.engine, lambda c: c.execute(query).scalar(),
                                      self.retry, "reading the run log")
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregates lose the type
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value

    def rows(self, run_id: str) -> list[dict[str, Any]]:
        """Every row of one run, in the order they were written."""
        self.ensure()
        query = (sa.select(log_table).where(log_table.c.run_id == run_id)
                 .order_by(log_table.c.execution_id))
        rows, _ = run_in_transaction(
            self.engine, lambda c: [dict(r._mapping) for r in c.execute(query)], self.retry,
            "reading the run log")
        return rows


class SafeRunLog:
    """A :class:`RunLog` whose writes never fail a run: a lost log row is a warning.

    The outcome of a task matters more than its log row; when the warehouse is
    down the runner still runs, retries and notifies.
    """

    def __init__(self, inner: RunLog) -> None:
        self.inner = inner

    def started(self, run_id: str, pipeline: str, task: str, attempt: int) -> int | None:
        """As :meth:`RunLog.started`; ``None`` when the row could not be written."""
        try:
            return self.inner.started(run_id, pipeline, task, attempt)
        except (LakestreamError, sa.exc.SQLAlchemyError) as exc:
            log.warning("could not log %s.%s in pipeline_execution_log: %s", pipeline, task, exc)
            return None

    def finished(self, execution_id: int | None, status: str, rows_in: int | None = None,
                 rows_out: int | None = None, error: str | None = None) -> None:
        """As :meth:`RunLog.finished`, for a row :meth:`started` wrote."""
        if execution_id is None:
            return
        try:
            self.inner.finished(execution_id, status, rows_in, rows_out, error)
        except (LakestreamError, sa.exc.SQLAlchemyError) as exc:
            log.warning("could not complete log row %s: %s", execution_id, exc)

    def not_run(self, run_id: str, pipeline: str, tasks: Iterable[str], status: str,
                reason: str) -> None:
        """As :meth:`RunLog.not_run`."""
        try:
            self.inner.not_run(run_id, pipeline, tasks, status, reason)
        except (LakestreamError, sa.exc.SQLAlchemyError) as exc:
            log.warning("could not log the tasks %s did not run: %s", run_id, exc)
