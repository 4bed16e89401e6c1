"""Runs and quality results, read from the databases that log them.

``pipeline_execution_log`` has one row per task attempt of a run; the
warehouse keeps the transactions pipeline's (``sync``), the gold store the
weather pipeline's, with the quality results in ``data_quality_results``.
Reading never creates a database: an SQLite file that does not exist yet, or
a table not created yet, simply has no runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from lakestream.errors import LakestreamError
from lakestream.medallion.gold_schema import data_quality_results
from lakestream.observe.models import QualityResult, Run, TaskRun
from lakestream.quality.runs import latest_results
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.failures import translate
from lakestream.warehouse.schema import pipeline_execution_log

T = TypeVar("T")

FAILED = ("failed", "error", "timeout", "cancelled", "upstream_failed")


class LogDatabase:
    """One database holding ``pipeline_execution_log`` (and perhaps quality results)."""

    def __init__(self, name: str, url: sa.URL) -> None:
        self.name = name
        self.url = url
        self._engine: sa.Engine | None = None

    def exists(self) -> bool:
        """Whether the database can hold anything yet (an SQLite file must exist)."""
        if self.url.get_backend_name() != "sqlite":
            return True
        return bool(self.url.database) and Path(str(self.url.database)).is_file()

    def rows(self, query: sa.Select[Any], table: sa.Table) -> list[dict[str, Any]]:
        """Rows of ``query``; none when the database or ``table`` does not exist."""
        if not self.exists():
            return []
        if self._engine is None:
            self._engine = make_engine(self.url)
        try:
            with self._engine.connect() as conn:
                if not sa.inspect(conn).has_table(table.name):
                    return []
                return [dict(r._mapping) for r in conn.execute(query)]
        except sa.exc.DBAPIError as exc:
            raise translate(exc, self.url) from exc

    def close(self) -> None:
        """Release the connections."""
        if self._engine is not None:
            self._engine.dispose()


def _databases(dbs: Sequence[LogDatabase]) -> list[LogDatabase]:
    """``dbs`` without repeats (the warehouse and gold store may be one database)."""
    seen: dict[str, LogDatabase] = {}
    for db in dbs:
        seen.setdefault(db.url.render_as_string(hide_password=False), db)
    return list(seen.values())


def recent_runs(dbs: Sequence[LogDatabase], pipeline: str | None, limit: int) -> list[Run]:
    """The ``limit`` most recent runs over every database, newest first."""
    log = pipeline_execution_log
    newest = sa.select(log.c.run_id, sa.func.max(log.c.started_at).label("at")).group_by(
        log.c.run_id)
    if pipeline:
        newest = newest.where(log.c.pipeline == pipeline)
    newest = newest.order_by(sa.desc("at")).limit(limit)
    runs: list[Run] = []
    for db in _databases(dbs):
        ids = [r["run_id"] for r in db.rows(newest, log)]
        if ids:
            rows = db.rows(sa.select(log).where(log.c.run_id.in_(ids))
                           .order_by(log.c.started_at, log.c.execution_id), log)
            runs += _group(rows)
    runs.sort(key=lambda r: r.started_at, reverse=True)
    return runs[:limit]


def task_outcomes(dbs: Sequence[LogDatabase]) -> dict[tuple[str, str, str], int]:
    """``(pipeline, task, status)`` → attempts in the whole log, over every database."""
    log = pipeline_execution_log
    query = sa.select(log.c.pipeline, log.c.task, log.c.status,
                      sa.func.count().label("n")).group_by(log.c.pipeline, log.c.task,
                                                           log.c.status)
    counts: dict[tuple[str, str, str], int] = {}
    for db in _databases(dbs):
        for r in db.rows(query, log):
            key = (r["pipeline"], r["task"], r["status"])
            counts[key] = counts.get(key, 0) + int(r["n"])
    return counts


def _group(rows: list[dict[str, Any]]) -> list[Run]:
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    return [_run(run_id, tasks) for run_id, tasks in by_run.items()]


def _run(run_id: str, rows: list[dict[str, Any]]) -> Run:
    tasks = [_task(r) for r in rows]
    last = {t.task: t for t in tasks}  # the latest attempt of each task decides
    failed = [t for t in last.values() if t.status in FAILED]
    running = any(t.status == "running" for t in last.values())
    status = "failed" if failed else "running" if running else "success"
    start = min(r["started_at"] for r in rows)
    ends = [r["ended_at"] for r in rows if r["ended_at"] is not None]
    end = max(ends) if ends and not running else None
    return Run(run_id=run_id, pipeline=rows[0]["pipeline"], status=status,
               started_at=str(_iso(start)), ended_at=_iso(end),
               duration_s=(end - start).total_seconds() if end else None, tasks=tasks,
               error=failed[0].error if failed else None)


def _task(row: dict[str, Any]) -> TaskRun:
    start, end = row["started_at"], row["ended_at"]
    return TaskRun(task=row["task"], status=row["status"], attempt=row["attempt"],
                   started_at=_iso(start), ended_at=_iso(end),
                   duration_s=(end - start).total_seconds() if end else None,
                   rows_in=row["rows_in"], rows_out=row["rows_out"], error=row["error"])


def quality_results(dbs: Sequence[LogDatabase], pipeline: str | None,
                    limit: int) -> list[QualityResult]:
    """The results of the ``limit`` most recent quality runs, newest run first: of each check
    of a run, its latest result (``lakestream quality show`` shows the same)."""
    q = data_quality_results
    newest = sa.select(q.c.run_id, sa.func.max(q.c.checked_at).label("at")).group_by(q.c.run_id)
    if pipeline:
        newest = newest.where(q.c.pipeline == pipeline)
    newest = newest.order_by(sa.desc("at")).limit(limit)
    results: list[dict[str, Any]] = []
    for db in _databases(dbs):
        ids = [r["run_id"] for r in db.rows(newest, q)]
        if ids:
            results += db.rows(sa.select(q).where(q.c.run_id.in_(ids))
                               .order_by(q.c.checked_at, q.c.result_id), q)
    found = [QualityResult.model_validate({**r, "checked_at": _iso(r["checked_at"])})
             for r in latest_results(results)]
    found.sort(key=lambda r: (r.checked_at or "", r.check_name), reverse=True)
    return found


def _iso(moment: dt.datetime | None) -> str | None:
    """Stored times are UTC without a zone: say so."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC).isoformat(timespec="milliseconds") if \
        moment.tzinfo is None else moment.isoformat(timespec="milliseconds")


def safe(call: Callable[[], T], empty: T) -> tuple[T, str | None]:
    """``call()``, or ``empty`` and the error's message when a database failed."""
    try:
        return call(), None
    except LakestreamError as exc:
        return empty, exc.message
