"""Data-quality checks, and where their results are kept (the gold store, per run)."""

from __future__ import annotations

import datetime as dt
import uuid

from lakestream.lake.storage import Storage
from lakestream.medallion.gold import GoldStore
from lakestream.medallion.gold_schema import data_quality_results
from lakestream.quality.checks import (
    CheckResult,
    QualityCheckFailed,
    QualityReport,
    weather_checks,
)

PIPELINES = ("weather",)

__all__ = [
    "CheckResult",
    "QualityCheckFailed",
    "QualityReport",
    "check_pipeline",
    "save_results",
]


def check_pipeline(pipeline: str, storage: Storage, run_id: str | None = None,
                   now: dt.datetime | None = None) -> QualityReport:
    """Run the checks of ``pipeline`` over the lake (nothing is stored)."""
    from lakestream.errors import UsageError

    if pipeline not in PIPELINES:
        raise UsageError(f"no quality checks are defined for pipeline '{pipeline}'",
                         f"known: {', '.join(PIPELINES)}")
    checked_at = now or dt.datetime.now(dt.UTC)
    report = QualityReport(run_id or uuid.uuid4().hex[:16], pipeline, checked_at)
    report.results = weather_checks(storage, checked_at)
    return report


def save_results(store: GoldStore, report: QualityReport) -> None:
    """Store every result of ``report`` in ``data_quality_results``."""
    at = report.checked_at.astimezone(dt.UTC).replace(tzinfo=None)
    store.insert(data_quality_results, [
        {"run_id": report.run_id, "pipeline": report.pipeline, "check_name": r.name,
         "dataset": r.dataset, "status": r.status, "observed": r.observed,
         "threshold": r.threshold, "detail": r.detail, "checked_at": at}
        for r in report.results
    ])
