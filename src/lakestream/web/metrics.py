"""Prometheus ``/metrics``: the lake, the lag and the runs, read at each scrape.

Nothing is counted in this process: ``serve`` runs beside the pipelines, not
inside them, so every value is read when Prometheus asks, from the lake's
metadata (records, bytes, dead letters, last commit), the broker and the
lake's ledger (lag), and ``pipeline_execution_log`` (runs). The endpoint
serves counts, never rows, and only what the scraper's principal may read:
a token's principal (Prometheus' ``authorization`` scrape config), else the
configured ``metrics.principal``; with ``metrics.open`` and neither, only the
process-level series (broker up, lag approximate).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lakestream.api import Lakestream
from lakestream.observe import DatasetSummary, LagReport, Run
from lakestream.observe.service import MetricsView
from lakestream.web.auth import COOKIE, Api, NotAuthenticatedError, api_principal, bearer

router = APIRouter()


def dataset_metrics(summaries: Iterable[DatasetSummary]) -> list[Metric]:
    """Records, bytes, files, dead letters and last commit per dataset."""
    labels = ["dataset", "area"]
    families = {
        "records": GaugeMetricFamily("lakestream_dataset_records",
                                     "Records committed to the lake", labels=labels),
        "bytes": GaugeMetricFamily("lakestream_dataset_bytes", "Bytes of Parquet in the lake",
                                   labels=labels),
        "files": GaugeMetricFamily("lakestream_dataset_files", "Parquet files in the lake",
                                   labels=labels),
        "dlq": GaugeMetricFamily("lakestream_dataset_dlq_records",
                                 "Records of the dataset's feed sent to the dead-letter dataset",
                                 labels=labels),
        "age": GaugeMetricFamily("lakestream_dataset_last_commit_age_seconds",
                                 "Seconds since the dataset's last commit", labels=labels),
    }
    for s in summaries:
        key = [s.name, s.area]
        families["records"].add_metric(key, s.records)
        families["bytes"].add_metric(key, s.bytes)
        families["files"].add_metric(key, s.files)
        families["dlq"].add_metric(key, s.dlq_records)
        if s.freshness_s is not None:
            families["age"].add_metric(key, s.freshness_s)
    return list(families.values())


def lag_metrics(report: LagReport) -> list[Metric]:
    """Lag, committed position and high watermark per sink and topic-partition."""
    labels = ["sink", "topic", "partition"]
    lag = GaugeMetricFamily("lakestream_consumer_lag_records",
                            "High watermark minus the sink's committed position",
                            labels=labels)
    position = GaugeMetricFamily("lakestream_consumer_position",
                                 "Next offset the sink reads (committed + 1)", labels=labels)
    high = GaugeMetricFamily("lakestream_broker_high_watermark",
                             "The broker's high watermark", labels=labels)
    for p in report.partitions:
        key = [p.sink, p.topic, str(p.partition)]
        position.add_metric(key, p.position)
        if p.lag is not None and p.high is not None:
            lag.add_metric(key, p.lag)
            high.add_metric(key, p.high)
    approximate = GaugeMetricFamily(
        "lakestream_consumer_lag_approximate",
        "1 when the broker's watermarks are unreliable (Tansu) and lag is approximate")
    approximate.add_metric([], 1.0 if report.approximate else 0.0)
    up = GaugeMetricFamily("lakestream_broker_up", "1 when the broker answered")
    up.add_metric([], 0.0 if report.error else 1.0)
    return [lag, position, high, approximate, up]


def run_metrics(runs: Iterable[Run], outcomes: dict[tuple[str, str, str], int]) -> list[Metric]:
    """Task outcomes over the whole run log; durations of the latest runs."""
    attempts = CounterMetricFamily("lakestream_task_runs", "Task attempts in the run log",
                                   labels=["pipeline", "task", "status"])
    for (pipeline, task, status), n in sorted(outcomes.items()):
        attempts.add_metric([pipeline, task, status], n)
    task_s = GaugeMetricFamily("lakestream_task_last_duration_seconds",
                               "Duration of the task's latest finished attempt",
                               labels=["pipeline", "task", "status"])
    run_s = GaugeMetricFamily("lakestream_run_last_duration_seconds",
                              "Duration of the pipeline's latest finished run",
                              labels=["pipeline"])
    run_ok = GaugeMetricFamily("lakestream_run_last_success",
                               "1 when the pipeline's latest finished run succeeded",
                               labels=["pipeline"])
    seen: set[tuple[str, str]] = set()
    latest: dict[str, Run] = {}
    for run in runs:  # newest first
        if run.duration_s is not None:
            latest.setdefault(run.pipeline, run)
        for t in reversed(run.tasks):
            if t.duration_s is not None and (run.pipeline, t.task) not in seen:
                seen.add((run.pipeline, t.task))
                task_s.add_metric([run.pipeline, t.task, t.status], t.duration_s)
    for pipeline, run in sorted(latest.items()):
        run_s.add_metric([pipeline], run.duration_s or 0.0)
        run_ok.add_metric([pipeline], 1.0 if run.status == "success" else 0.0)
    return [attempts, task_s, run_s, run_ok]


class LakestreamCollector(Collector):
    """Yields the metric families of one scrape's (already filtered) figures."""

    def __init__(self, view: MetricsView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        """The metric families of this scrape."""
        view = self.view
        yield from dataset_metrics(view.summaries)
        yield from lag_metrics(view.lag)
        yield from run_metrics(view.runs, view.outcomes)
        checks = GaugeMetricFamily("lakestream_quality_check_passed",
                                   "1 when the check passed in the latest quality run",
                                   labels=["pipeline", "check", "status"])
        for c in view.quality:
            checks.add_metric([c.pipeline, c.check_name, c.status],
                              1.0 if c.status == "pass" else 0.0)
        yield checks


def scraper(request: Request, api: Lakestream,
            credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """Whose view a scrape gets: the token's principal, the configured one, or ``None``.

    ``None`` (process-level series only) needs ``metrics.open``; without it, a
    scrape with no token and no configured principal is refused (401, audited).
    """
    settings = api.settings.metrics
    if credentials is None and request.cookies.get(COOKIE) is None:
        if settings.principal:
            return settings.principal
        if settings.open:
            return None
        api.monitor.refuse_metrics("no token")
        raise NotAuthenticatedError(
            "no token: /metrics needs 'Authorization: Bearer <token>' (Prometheus: the "
            "scrape config's `authorization` block), or metrics.principal / metrics.open "
            "in the configuration (docs/api.md)")
    try:
        return api_principal(request, credentials)
    except NotAuthenticatedError:
        api.monitor.refuse_metrics("invalid token")
        raise


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, api: Api,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
            ) -> Response:
    """Prometheus text exposition of what the scraper may see of the lake, lag and runs."""
    view = api.monitor.metrics(scraper(request, api, credentials))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LakestreamCollector(view))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
