"""``lakestream sync``: the lake's dimensions and current table versions into the warehouse.

Order: ``dim_users`` and ``dim_payment_methods`` from the flattened stream,
then each fact from its lake table's current version. Each load is one
transaction, retried whole when the connection drops, and each fact's
transaction also inserts the inferred dimension members it needs, so a
foreign key never breaks, even between two loads. Every load leaves a row
(task ``sync:<table>``) in the run log, ``pipeline_execution_log``
(:mod:`.runlog`), under the sync's run id: the DAG run's when the sync is a
task of one, else a new one.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import pyarrow as pa
import sqlalchemy as sa

from lakestream.errors import LakestreamError, UsageError
from lakestream.lake.storage import Storage
from lakestream.warehouse import facts, lake_source
from lakestream.warehouse.failures import RetryPolicy, run_in_transaction
from lakestream.warehouse.loaders import BulkLoader, Target
from lakestream.warehouse.runlog import RunLog, SafeRunLog, new_run_id
from lakestream.warehouse.schema import (
    DIMENSION_COLUMNS,
    FACTS,
    FACTS_BY_LAKE_TABLE,
    FactSpec,
    dim_payment_methods,
    dim_users,
)

T = TypeVar("T")

PIPELINE = "transactions"


@dataclass
class TaskResult:
    """What one load of a sync did."""

    table: str
    source: str
    version: str = ""
    rows_in: int = 0
    rows_loaded: int = 0
    inferred: int = 0
    rejected: int = 0
    attempts: int = 0
    seconds: float = 0.0
    note: str = ""


@dataclass
class SyncReport:
    """All loads of one sync, and the foreign-key check that followed."""

    run_id: str
    tasks: list[TaskResult] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)


class Syncer:
    """Runs one sync against one warehouse engine and one lake.

    Args:
        engine: The warehouse.
        storage: The lake.
        loader: The bulk loader of the warehouse's dialect.
        policy: Patience with a warehouse that goes away.
        run_id: The run the sync is a task of; default: a run of its own (a new id).
    """

    def __init__(
        self,
        engine: sa.Engine,
        storage: Storage,
        loader: BulkLoader,
        policy: RetryPolicy,
        run_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.storage = storage
        self.loader = loader
        self.policy = policy
        self.run_id = run_id or new_run_id(PIPELINE)
        self.runlog = SafeRunLog(RunLog(engine))

    def run(self, tables: Sequence[str] | None = None) -> SyncReport:
        """Load the dimensions, then the facts of ``tables`` (default: all four)."""
        specs = _select(tables)
        report = SyncReport(self.run_id)
        report.tasks += self._dimensions()
        for spec in specs:
            report.tasks.append(self._fact(spec))
        report.orphans = self._in_transaction(orphan_counts, "checking foreign keys")[0]
        return report

    # -- dimensions --------------------------------------------------------------------

    def _dimensions(self) -> list[TaskResult]:
        found = lake_source.latest_dimensions(self.storage)
        source = self.storage.url(lake_source.FLATTENED_STREAM)
        if found is None:
            note = "no flattened stream in the lake: members are inferred from the facts"
            return [TaskResult(t.name, source, note=note) for t in (dim_users, dim_payment_methods)]
        results = []
        for table, rows in zip((dim_users, dim_payment_methods), found, strict=True):
            columns = (*DIMENSION_COLUMNS[table.name], "last_event_time")
            target = Target(table, (columns[0],), columns)
            result = TaskResult(table.name, source, rows_in=rows.num_rows)
            results.append(self._task(result, partial(self._upsert, target=target, rows=rows)))
        return results

    def _upsert(self, conn: sa.Connection, target: Target, rows: pa.Table) -> int:
        empty = conn.execute(sa.select(sa.literal(1)).select_from(target.table).limit(1)).first()
        return self.loader.load(conn, target, rows, expect_new=empty is None)

    # -- facts -------------------------------------------------------------------------

    def _fact(self, spec: FactSpec) -> TaskResult:
        version = lake_source.current_version(self.storage, spec.lake_table)
        if version is None:
            source = self.storage.url(f"tables/{spec.lake_table}")
            return TaskResult(spec.table.name, source, note="no version in the lake yet")
        rows = facts.shape(spec, lake_source.read_version(self.storage, version), version)
        good, rejected, reasons = facts.split_rejects(spec, rows)
        result = TaskResult(
            spec.table.name,
            self.storage.url(version.path),
            version=version.version,
            rows_in=rows.num_rows,
            rejected=rejected.num_rows,
        )
        if rejected.num_rows:
            where = facts.write_rejects(self.storage, spec, version, rejected, reasons)
            plural = "s" if rejected.num_rows != 1 else ""
            result.note = f"{rejected.num_rows} row{plural} to {self.storage.url(where)}"
        load = partial(self._load_fact, spec=spec, version=version.version, rows=good)
        return self._task(result, partial(load, result=result))

    def _load_fact(
        self,
        conn: sa.Connection,
        spec: FactSpec,
        version: str,
        rows: pa.Table,
        result: TaskResult,
    ) -> int:
        members = facts.inferred_members(spec, rows)
        if members is not None:
            target, member_rows = members
            before = _count(conn, target.table)
            self.loader.load(conn, target, member_rows)
            result.inferred = _count(conn, target.table) - before
        table = spec.table
        present = conn.execute(
            sa.select(sa.literal(1)).where(table.c.snapshot_version == version).limit(1)
        ).first()
        fact = Target(table, spec.key, spec.columns)
        return self.loader.load(conn, fact, rows, expect_new=present is None)

    # -- plumbing ----------------------------------------------------------------------

    def _task(self, result: TaskResult, work: Callable[[sa.Connection], int]) -> TaskResult:
        started = dt.datetime.now(dt.UTC)
        clock = time.perf_counter()
        try:
            what = f"loading {result.table}"
            result.rows_loaded, result.attempts = self._in_transaction(work, what)
        except LakestreamError as exc:
            result.seconds = time.perf_counter() - clock
            self._log_run(result, started, "failed", str(exc))
            raise
        result.seconds = time.perf_counter() - clock
        self._log_run(result, started, "success", None)
        return result

    def _in_transaction(self, work: Callable[[sa.Connection], T], what: str) -> tuple[T, int]:
        return run_in_transaction(self.engine, work, self.policy, what)

    def _log_run(
        self, result: TaskResult, started: dt.datetime, status: str, error: str | None
    ) -> None:
        """One row per load; a row that cannot be written never hides the load's outcome."""
        self.runlog.record(self.run_id, PIPELINE, f"sync:{result.table}",
                           max(result.attempts, 1), status, started, result.rows_in,
                           result.rows_loaded, error)


def orphan_counts(conn: sa.Connection) -> dict[str, int]:
    """Fact rows whose dimension row is missing, per fact table (all zero when sound)."""
    counts: dict[str, int] = {}
    for spec in FACTS:
        if spec.dimension is None:
            continue
        fact, dim = spec.table, spec.dimension.table
        key = spec.dimension.fact_columns[0]
        query = (
            sa.select(sa.func.count())
            .select_from(fact.outerjoin(dim, fact.c[key] == dim.c[key]))
            .where(dim.c[key].is_(None))
        )
        counts[fact.name] = int(conn.execute(query).scalar_one())
    return counts


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _select(tables: Sequence[str] | None) -> list[FactSpec]:
    if not tables:
        return list(FACTS)
    unknown = [t for t in tables if t not in FACTS_BY_LAKE_TABLE]
    if unknown:
        raise UsageError(
            f"unknown lake table '{unknown[0]}'",
            f"choose from {', '.join(FACTS_BY_LAKE_TABLE)}",
        )
    return [FACTS_BY_LAKE_TABLE[t] for t in tables]
