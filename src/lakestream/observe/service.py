"""The monitor: what the dashboard, the JSON API and ``/metrics`` show, per principal.

Every method that serves a principal checks the governance permissions of
the datasets it reads and records the read in the audit log (through the
gate), so the web layer only parses requests and renders what comes back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lakestream.errors import UsageError
from lakestream.feeds import Feed, FeedRegistry
from lakestream.governance.sqlguard import AccessDeniedError
from lakestream.lake import browse
from lakestream.lake.metadata import read_metadata
from lakestream.lake.reader import Dataset
from lakestream.lake.storage import Storage
from lakestream.lineage import LineageGraph
from lakestream.observe import runs as runlog
from lakestream.observe.charts import CHARTS
from lakestream.observe.charts import chart as find_chart
from lakestream.observe.datasets import LakeCatalog, UnknownDatasetError
from lakestream.observe.jsonable import plain, plain_rows
from lakestream.observe.lag import LagMonitor
from lakestream.observe.lineage import visible_lineage
from lakestream.observe.models import (
    ChartData,
    ChartInfo,
    DatasetDetail,
    DatasetSummary,
    DeadLetters,
    LagReport,
    Overview,
    PartitionDetail,
    PartitionList,
    QualityList,
    QualityResult,
    RowsPage,
    Run,
    RunList,
)
from lakestream.observe.visibility import Visibility

MAX_RUNS = 200
ANONYMOUS = "(anonymous)"
"""The principal the audit log names for a request without a token."""


class Gate(Protocol):
    """Governance as the monitor needs it (``lakestream.governance.access.AccessGate``)."""

    def readable(self, principal: str) -> list[str]:
        """Datasets ``principal`` may read."""
        ...

    def authorize_read(self, principal: str, dataset: str, via: str = "api") -> object:
        """Allow and audit one read, or raise an access-denied error (audited too)."""
        ...


class Monitor:
    """Read models (:mod:`.models`) of the lake, the broker and the run logs.

    Args:
        storage: The lake.
        feeds: The feed registry.
        gate: Permission checks and the audit log.
        lag: Lag of the lake's sinks.
        log_dbs: Databases holding ``pipeline_execution_log`` / quality results.
        audit: Records a list or a refusal: ``(principal, action, dataset, detail)``.
        lineage: Reads the lineage graph (default: an empty one).
    """

    def __init__(self, storage: Storage, feeds: FeedRegistry, gate: Gate, lag: LagMonitor,
                 log_dbs: list[runlog.LogDatabase],
                 audit: Callable[[str, str, str | None, dict[str, Any]], None],
                 lineage: Callable[[], LineageGraph] = LineageGraph) -> None:
        self.catalog = LakeCatalog(storage, feeds)
        self.storage = storage
        self.feeds = feeds
        self.gate = gate
        self.lag_monitor = lag
        self.log_dbs = log_dbs
        self.audit = audit
        self.lineage_graph = lineage

    # -- datasets -------------------------------------------------------------------------

    def readable(self, principal: str) -> list[str]:
        """The datasets ``principal`` may read."""
        return sorted(self.gate.readable(principal))

    def datasets(self, principal: str) -> list[DatasetSummary]:
        """Summaries of the datasets ``principal`` may read."""
        readable = set(self.gate.readable(principal))
        now = _now()
        found = [self.catalog.summary(ds, feed, now)
                 for name, (ds, feed) in self.catalog.datasets().items() if name in readable]
        self.audit(principal, "list", None, {"via": "api:datasets", "datasets": len(found)})
        return found

    def dataset(self, principal: str, name: str) -> DatasetDetail:
        """One dataset's page: totals, schema, partitions, versions."""
        ds, feed = self._authorized(principal, name, "dataset")
        return self.catalog.detail(ds, feed, _now())

    def partitions(self, principal: str, name: str) -> PartitionList:
        """The dataset's partitions (read, and audited, as its page is)."""
        return PartitionList(dataset=name, partitions=self.dataset(principal, name).partitions)

    def metadata(self, principal: str, name: str) -> dict[str, Any]:
        """The dataset's ``_metadata.json`` (empty before its first commit)."""
        ds, _ = self._authorized(principal, name, "metadata")
        found: dict[str, Any] = plain(read_metadata(self.storage, ds.path) or {})
        return found

    def partition(self, principal: str, name: str, partition: str) -> PartitionDetail:
        """One partition's files, sizes and record count."""
        ds, _ = self._authorized(principal, name, "partition")
        return self.catalog.partition(ds, partition)

    def rows(self, principal: str, name: str, columns: list[str] | None, day: dt.date | None,
             limit: int, offset: int) -> RowsPage:
        """A page of rows, read from the matching date partition only."""
        ds, _ = self._authorized(principal, name, "rows")
        page = browse.read_rows(self.storage, ds, columns, day, limit, offset)
        return RowsPage(dataset=name, columns=page.columns, rows=plain_rows(page.rows),
                        total=page.total, limit=limit, offset=offset,
                        date=day.isoformat() if day else None, files_read=len(page.files_read))

    def dlq(self, principal: str, name: str, limit: int) -> DeadLetters:
        """The dead letters of a feed's dataset: their count, the first ``limit``, the
        groups by reason and the command that replays them."""
        _, feed = self._authorized(principal, name, "dlq")
        if feed is None:
            raise UsageError(f"dataset '{name}' is not written by a feed: it has no DLQ")
        self._authorize(principal, f"dlq_{feed.name}", "api:dlq")
        count, samples = self.catalog.dlq_samples(feed, limit)
        return DeadLetters(dataset=name, count=count, samples=samples,
                           reasons=self.catalog.dlq_reasons(feed),
                           replay=f"lakestream dlq replay --feed {feed.name} --dry-run")

    def _authorized(self, principal: str, name: str,
                    what: str) -> tuple[Dataset, Feed | None]:
        known = self.catalog.datasets()
        self._authorize(principal, name, f"api:{what}", name in known)
        return known[name]

    def _authorize(self, principal: str, name: str, via: str, exists: bool = True) -> None:
        """Allow one read, or refuse it the same way whether ``name`` exists or not (audited)."""
        if not exists:
            self.audit(principal, "read_denied", name, {"via": via, "reason": "unknown dataset"})
            raise refusal(principal, name)
        try:
            self.gate.authorize_read(principal, name, via)
        except AccessDeniedError:
            raise refusal(principal, name) from None

    # -- charts, lag, runs, quality ----------------------------------------------------------

    def charts(self, principal: str) -> list[ChartInfo]:
        """The charts of datasets ``principal`` may read."""
        readable = set(self.gate.readable(principal))
        return [ChartInfo(name=c.name, title=c.title, dataset=c.dataset)
                for c in CHARTS.values() if c.dataset in readable]

    def chart(self, principal: str, name: str) -> ChartData:
        """The rows behind one chart (its dataset must be readable)."""
        spec = find_chart(name)
        found = self.catalog.datasets().get(spec.dataset)
        self._authorize(principal, spec.dataset, f"api:chart:{name}", found is not None)
        assert found is not None
        columns, rows = browse.query_dataset(self.storage, found[0], spec.sql)
        return ChartData(chart=spec.name, title=spec.title, dataset=spec.dataset,
                         kind=spec.kind, x=spec.x, y=list(spec.y), series=spec.series,
                         columns=columns, rows=plain_rows(rows))

    def lag(self, principal: str) -> LagReport:
        """Lag of the lake sinks of the feeds ``principal`` may read."""
        readable = set(self.gate.readable(principal))
        feeds = [f for name, (_, f) in self.catalog.datasets().items()
                 if f is not None and name in readable]
        self.audit(principal, "list", None, {"via": "api:lag"})
        return self.lag_monitor.report(feeds)

    def visibility(self, principal: str) -> Visibility:
        """What ``principal`` may see of the run logs."""
        return Visibility.of(self.gate.readable(principal), self.catalog.datasets())

    def runs(self, principal: str, pipeline: str | None, limit: int) -> RunList:
        """The most recent runs (newest first) the principal may see, with their tasks."""
        _check_limit(limit, MAX_RUNS)
        seen = self.visibility(principal)
        found, error = self._recent_runs(pipeline, MAX_RUNS)
        shown = seen.runs(found)[:limit]
        self._audit_list(principal, "api:runs", len(found), len(shown))
        return RunList(runs=shown, error=error)

    def quality(self, principal: str, pipeline: str | None, limit: int) -> QualityList:
        """Quality results (of readable datasets) of the most recent ``limit`` check runs."""
        _check_limit(limit, MAX_RUNS)
        found, error = self._quality_results(pipeline, limit)
        shown = self.visibility(principal).quality(found)
        self._audit_list(principal, "api:quality", len(found), len(shown))
        return QualityList(results=shown, error=error)

    def lineage(self, principal: str, job: str | None = None,
                dataset: str | None = None) -> LineageGraph:
        """The lineage graph (of ``job`` / a ``dataset`` name) as the principal may see it."""
        graph = self.lineage_graph()
        shown = visible_lineage(graph, self.visibility(principal),
                                set(self.gate.readable(principal)), self.storage, self.feeds)
        chosen = shown.select(job, dataset)
        self._audit_list(principal, "api:lineage", len(graph.jobs), len(shown.jobs))
        return chosen

    def overview(self, principal: str) -> Overview:
        """The overview page: datasets, lag, the last runs and the failing quality checks."""
        readable = set(self.gate.readable(principal))
        now = _now()
        known = self.catalog.datasets()
        seen = Visibility.of(readable, known)
        summaries = [self.catalog.summary(ds, feed, now)
                     for name, (ds, feed) in known.items() if name in readable]
        feeds = [f for name, (_, f) in known.items() if f is not None and name in readable]
        runs, runs_error = self._recent_runs(None, MAX_RUNS)
        checks, quality_error = self._quality_results(None, 1)
        shown_checks = seen.quality(checks)
        self.audit(principal, "list", None, {"via": "api:overview", "datasets": len(summaries)})
        return Overview(datasets=summaries, lag=self.lag_monitor.report(feeds),
                        runs=seen.runs(runs)[:8],
                        failing_checks=[c for c in shown_checks if c.status != "pass"],
                        checks=len(shown_checks),
                        errors=[e for e in (runs_error, quality_error) if e])

    def _recent_runs(self, pipeline: str | None, limit: int) -> tuple[list[Run], str | None]:
        return runlog.safe(lambda: runlog.recent_runs(self.log_dbs, pipeline, limit), [])

    def _quality_results(self, pipeline: str | None,
                         limit: int) -> tuple[list[QualityResult], str | None]:
        return runlog.safe(lambda: runlog.quality_results(self.log_dbs, pipeline, limit), [])

    def _audit_list(self, principal: str, via: str, found: int, shown: int) -> None:
        detail: dict[str, Any] = {"via": via, "shown": shown}
        if shown < found:
            detail["withheld"] = found - shown
        self.audit(principal, "list", None, detail)

    # -- /metrics ---------------------------------------------------------------------------

    def metrics(self, principal: str | None, via: str = "metrics") -> MetricsView:
        """What a scrape of ``/metrics`` shows: ``None`` gets the process-level series only."""
        if principal is None:
            return MetricsView([], self.lag_monitor.report([]), [], {}, [])
        readable = set(self.gate.readable(principal))
        known = self.catalog.datasets()
        seen = Visibility.of(readable, known)
        now = _now()
        summaries = [self.catalog.summary(ds, feed, now)
                     for name, (ds, feed) in known.items() if name in readable]
        feeds = [f for name, (_, f) in known.items() if f is not None and name in readable]
        runs, _ = self._recent_runs(None, 50)
        no_outcomes: dict[tuple[str, str, str], int] = {}
        outcomes, _ = runlog.safe(lambda: runlog.task_outcomes(self.log_dbs), no_outcomes)
        checks, _ = self._quality_results(None, 1)
        self.audit(principal, "list", None, {"via": via, "datasets": len(summaries)})
        return MetricsView(summaries, self.lag_monitor.report(feeds), seen.runs(runs),
                           seen.outcomes(outcomes), seen.quality(checks))

    def refuse_metrics(self, reason: str) -> None:
        """Record a refused scrape of ``/metrics``."""
        self.audit(ANONYMOUS, "read_denied", None, {"via": "metrics", "reason": reason})


@dataclass(frozen=True)
class MetricsView:
    """The figures of one ``/metrics`` scrape, already filtered for its principal."""

    summaries: list[DatasetSummary]
    lag: LagReport
    runs: list[Run]
    outcomes: dict[tuple[str, str, str], int]
    quality: list[QualityResult]


def refusal(principal: str, name: str) -> UnknownDatasetError:
    """The one answer to a dataset that does not exist and to one ``principal`` may not read."""
    return UnknownDatasetError(
        f"no dataset '{name}' that '{principal}' may read",
        f"GET /api/datasets lists the datasets you may read; an admin can grant one: "
        f"lakestream permissions grant {principal} {name} --level read")


def _check_limit(limit: int, most: int) -> None:
    if not 1 <= limit <= most:
        raise UsageError(f"limit must be within 1..{most}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
