"""The transactions pipeline as the steps of its DAG (docs/orchestration.md).

Each step is one bounded run of a feature the facade exposes, the same work
as its command with ``--until-idle``:

=============  =================================================================
process        ``lakestream process --until-idle``: derived streams and tables
ingest         ``lakestream ingest --pipeline transactions --until-idle``: the lake
export_tables  ``lakestream export --table T`` for each table: a new lake version
sync           ``lakestream sync``: the lake's tables and dimensions → warehouse
quality        ``lakestream quality check --pipeline transactions`` (the lake's streams)
               and ``lakestream warehouse check`` (every fact row has its dimension row)
retention      ``lakestream retention`` for the pipeline's feeds
=============  =================================================================

The functions take the facade (this layer sits below :mod:`lakestream.api`)
and the DAG run's id, and return a :class:`StepReport`; the orchestrator
(:mod:`lakestream.orchestrate.catalog`) wires them into a DAG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lakestream.errors import DataQualityError

if TYPE_CHECKING:
    from lakestream.batchload.batch import BatchService
    from lakestream.derive.processor import Processor
    from lakestream.feeds import Feed
    from lakestream.governance.service import Governance
    from lakestream.ingest.engine import IngestEngine
    from lakestream.quality import QualityReport
    from lakestream.warehouse import WarehouseService

PIPELINE = "transactions"
IDLE_TIMEOUT_S = 3.0


class TransactionsApi(Protocol):
    """What the steps need of the facade (:class:`lakestream.api.Lakestream`)."""

    @property
    def warehouse(self) -> WarehouseService:
        """The star-schema warehouse."""

    @property
    def batch(self) -> BatchService:
        """Batch export."""

    @property
    def governance(self) -> Governance:
        """Retention and the audit log."""

    def processor(self, until_idle: bool = False, idle_timeout_s: float = 3.0) -> Processor:
        """The ksqlDB-equivalent processor."""

    def select_feeds(self, pipeline: str | None, feed: str | None) -> list[Feed]:
        """The enabled feeds of a pipeline."""

    def check_quality(self, pipeline: str, run_id: str | None = None) -> QualityReport:
        """A pipeline's data-quality checks over the lake, stored."""

    def ingest_engine(self, feeds: list[Feed], until_idle: bool = False,
                      idle_timeout_s: float = 3.0) -> IngestEngine:
        """The lake ingest of some feeds."""


class IntegrityCheckFailed(DataQualityError):
    """The warehouse has fact rows without their dimension row."""


@dataclass(frozen=True)
class StepReport:
    """What one step did: rows read and written, and one line for people."""

    rows_in: int | None
    rows_out: int | None
    summary: str


def process(api: TransactionsApi, _run_id: str | None = None) -> StepReport:
    """Derive the streams and aggregate tables from ``transactions`` until drained."""
    report = api.processor(until_idle=True, idle_timeout_s=IDLE_TIMEOUT_S).run()
    return StepReport(report.consumed, report.published,
                      f"{report.processed:,} events processed, {report.rejected:,} to the DLQ, "
                      f"{report.published:,} records published")


def ingest(api: TransactionsApi, _run_id: str | None = None) -> StepReport:
    """Land every enabled transactions feed in the lake until the topics are drained."""
    feeds = api.select_feeds(PIPELINE, None)
    report = api.ingest_engine(feeds, until_idle=True, idle_timeout_s=IDLE_TIMEOUT_S).run()
    return StepReport(report.consumed, report.written,
                      f"{report.written:,} records landed in {len(feeds)} feeds, "
                      f"{report.rejected:,} to the DLQ")


def export_tables(api: TransactionsApi, _run_id: str | None = None) -> StepReport:
    """Export each aggregate table from its Kafka changelog as a new lake version."""
    tables = [f.name for f in api.select_feeds(PIPELINE, None) if f.kind == "table"]
    results = [r for name in tables for r in api.batch.export(table=name)]
    records = sum(r.records for r in results)
    versions = ", ".join(f"{r.feed} {r.version}" for r in results if r.version)
    return StepReport(records, records, f"{len(results)} tables exported: {versions or 'none'}")


def sync(api: TransactionsApi, run_id: str | None = None) -> StepReport:
    """Load the lake's dimensions and current table versions into the warehouse (each
    table's load logged under the DAG run's id)."""
    api.warehouse.init()
    report = api.warehouse.sync(run_id=run_id)
    rows_in = sum(t.rows_in for t in report.tasks)
    rows_out = sum(t.rows_loaded for t in report.tasks)
    return StepReport(rows_in, rows_out,
                      f"{rows_out:,} rows loaded into {len(report.tasks)} warehouse tables")


def quality(api: TransactionsApi, run_id: str | None = None) -> StepReport:
    """Fail when a fact row of the warehouse lacks its dimension row, or a blocking check of
    the lake's streams fails."""
    orphans = api.warehouse.orphans()
    broken = {table: n for table, n in orphans.items() if n}
    if broken:
        detail = ", ".join(f"{table}: {n}" for table, n in broken.items())
        raise IntegrityCheckFailed(f"fact rows without their dimension row: {detail}",
                                   "run `lakestream sync` again")
    report = api.check_quality(PIPELINE, run_id)  # stored under the DAG run's id
    if report.blocked:
        raise IntegrityCheckFailed(f"{len(report.blocked)} blocking quality check(s) failed: "
                                   + "; ".join(r.line for r in report.blocked),
                                   f"see `lakestream quality show {report.run_id}`")
    warned = [r.name for r in report.results if r.status != "pass"]
    return StepReport(len(orphans), 0,
                      f"{len(orphans)} fact tables checked: no orphan rows; "
                      f"{len(report.results)} lake checks, {len(warned)} warned or failed "
                      f"without blocking{': ' + ', '.join(warned) if warned else ''}")


def retention(api: TransactionsApi, _run_id: str | None = None) -> StepReport:
    """Delete what the retention policies of the pipeline's feeds let go (audited)."""
    governance = api.governance
    partitions = rows = 0
    feeds = api.select_feeds(PIPELINE, None)
    for feed in feeds:
        outcomes = governance.retention_run(governance.retention_plan(feed=feed.name),
                                            actor=f"lakestream run {PIPELINE}")
        partitions += sum(o.partitions for o in outcomes)
        rows += sum(o.rows for o in outcomes)
    return StepReport(None, rows, f"{partitions} partitions/versions ({rows:,} rows) past "
                                  f"retention removed from {len(feeds)} feeds")


Step = Callable[[TransactionsApi, str], StepReport]
"""A step: the facade and the run's id give its report."""

STEPS: tuple[tuple[str, Step, str], ...] = (
    ("process", process, "derived streams and aggregate tables (lakestream process)"),
    ("ingest", ingest, "the transactions feeds into the lake (lakestream ingest)"),
    ("export_tables", export_tables, "each table as a new lake version (lakestream export)"),
    ("sync", sync, "lake tables and dimensions into the warehouse (lakestream sync)"),
    ("quality", quality, "data quality of the lake's streams and referential integrity of the "
                         "warehouse (lakestream quality check, lakestream warehouse check)"),
    ("retention", retention, "partitions past retention deleted (lakestream retention)"),
)
"""The DAG's steps in order: (task name, function, description)."""
