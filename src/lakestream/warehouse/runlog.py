"""The run log: run ids, and one row per task attempt in ``pipeline_execution_log``.

Every run of every pipeline (a DAG run, a step run alone such as ``lakestream
sync`` or ``lakestream medallion gold``, a quality check) is named by
:func:`new_run_id` and logged by :class:`RunLog`, the one writer of the
table. Each attempt gets a row when it starts (status ``running``) that is
completed when it ends (``success``, ``failed``, ``timeout`` or
``cancelled``, with its row counts and error); tasks a run did not reach get
an ``upstream_failed`` or ``cancelled`` row (attempt 0). The scheduler reads
the log back to know when a DAG last ran.

The table has one definition (:data:`lakestream.warehouse.schema.pipeline_execution_log`)
and the log of a pipeline lives in the database of its results: the weather
pipeline's in its gold store (SPEC §4, ``weather_dw``), every other pipeline's
in the warehouse (SPEC §3.4). A run is never split between the two
(docs/orchestration.md, "The run log").
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from lakestream.errors import LakestreamError
from lakestream.retry import RUN_LOG, RetryPolicy
from lakestream.warehouse.failures import run_in_transaction, translate
from lakestream.warehouse.schema import pipeline_execution_log as log_table

log = logging.getLogger(__name__)

_ERROR_CHARS = 4000


def new_run_id(pipeline: str, now: dt.datetime | None = None) -> str:
    """A new run's id, ``<pipeline>-YYYYmmddTHHMMSS-<6 hex>`` (UTC): sortable, unique, readable.

    The one format of every run id Lakestream makes: DAG runs, steps run
    alone, syncs, quality checks and silver runs (whose staging folder
    ``_staging/silver/<run id>/`` it names). Ids given from outside (Airflow's
    ``--run-id``) are kept as they are.
    """
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{pipeline}-{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def utcnow() -> dt.datetime:
    """Now, in UTC, without a zone (how the databases store times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _naive(moment: dt.datetime) -> dt.datetime:
    """``moment`` as UTC wall-clock time without a zone."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def ensure_table(engine: sa.Engine, table: sa.Table, attempts: int = 5) -> None:
    """Create ``table`` if it is missing; tolerate another process creating it meanwhile.

    Retried on :data:`~lakestream.retry.RUN_LOG`'s waits, ``attempts`` tries in all.

    Raises:
        WarehouseRefusedError: The database refused (credentials, missing database).
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
    """Reads and writes ``pipeline_execution_log`` in one database.

    Args:
        engine: The database, or what makes it on first use (so that a database
            that cannot be reached fails the first write, which
            :class:`SafeRunLog` turns into a warning, not the caller's setup).
        retry: Patience with a database that goes away.
    """

    def __init__(self, engine: sa.Engine | Callable[[], sa.Engine],
                 retry: RetryPolicy | None = None) -> None:
        self._engine = engine
        self.retry = retry or RUN_LOG
        self._ready = False

    @property
    def engine(self) -> sa.Engine:
        """The database of this log (made on first use)."""
        if not isinstance(self._engine, sa.Engine):
            self._engine = self._engine()
        return self._engine

    def ensure(self) -> None:
        """Create the log table if the database has none yet."""
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

    def record(self, run_id: str, pipeline: str, task: str, attempt: int, status: str,
               started_at: dt.datetime, rows_in: int | None = None,
               rows_out: int | None = None, error: str | None = None) -> None:
        """Record a whole attempt that has already ended (started at ``started_at``, now over).

        For work that keeps its own tries, such as each table of a sync.
        """
        self.ensure()
        row = {"run_id": run_id, "pipeline": pipeline, "task": task, "status": status,
               "attempt": attempt, "started_at": _naive(started_at), "ended_at": utcnow(),
               "rows_in": rows_in, "rows_out": rows_out,
               "error": error[:_ERROR_CHARS] if error else None}
        run_in_transaction(self.engine, lambda conn: conn.execute(log_table.insert(), row),
                           self.retry, "logging a task")

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
    """A :class:`RunLog` whose writes never fail the work they log: a lost row is a warning.

    The outcome of a task matters more than its log row; when the log's
    database is down the runner still runs, retries and notifies, and a step
    run alone still reports what it did.
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

    def record(self, run_id: str, pipeline: str, task: str, attempt: int, status: str,
               started_at: dt.datetime, rows_in: int | None = None,
               rows_out: int | None = None, error: str | None = None) -> None:
        """As :meth:`RunLog.record`."""
        try:
            self.inner.record(run_id, pipeline, task, attempt, status, started_at, rows_in,
                              rows_out, error)
        except (LakestreamError, sa.exc.SQLAlchemyError) as exc:
            log.warning("could not log %s.%s in pipeline_execution_log: %s", pipeline, task, exc)

    def not_run(self, run_id: str, pipeline: str, tasks: Iterable[str], status: str,
                reason: str) -> None:
        """As :meth:`RunLog.not_run`."""
        try:
            self.inner.not_run(run_id, pipeline, tasks, status, reason)
        except (LakestreamError, sa.exc.SQLAlchemyError) as exc:
            log.warning("could not log the tasks %s did not run: %s", run_id, exc)
