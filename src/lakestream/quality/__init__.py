"""Data-quality checks, the audits of write-audit-publish, and where results are kept.

Results are kept per run in ``data_quality_results`` of the gold store
(docs/quality.md), for every pipeline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from lakestream.config import QualitySettings
from lakestream.errors import UsageError
from lakestream.lake.storage import Storage
from lakestream.medallion.gold import GoldStore
from lakestream.medallion.gold_schema import data_quality_results
from lakestream.quality.checks import (
    CheckResult,
    QualityCheckFailed,
    QualityReport,
    Rater,
)
from lakestream.quality.transactions import transactions_checks
from lakestream.quality.weather import lake_checks
from lakestream.warehouse.runlog import new_run_id

PIPELINES = ("weather", "transactions")

__all__ = [
    "CheckResult",
    "QualityCheckFailed",
    "QualityReport",
    "Rater",
    "check_pipeline",
    "save_results",
]


def check_pipeline(pipeline: str, storage: Storage, policy: QualitySettings | None = None,
                   run_id: str | None = None, now: dt.datetime | None = None,
                   currencies: Iterable[str] = ()) -> QualityReport:
    """Run the checks of ``pipeline`` over the lake (nothing is stored).

    Args:
        run_id: The run the checks belong to; default: a new run id of ``pipeline``.
        currencies: The currencies of the rates table (the transactions checks).
    """
    if pipeline not in PIPELINES:
        raise UsageError(f"no quality checks are defined for pipeline '{pipeline}'",
                         f"known: {', '.join(PIPELINES)}")
    checked_at = now or dt.datetime.now(dt.UTC)
    rater = Rater(policy or QualitySettings(), checked_at)
    report = QualityReport(run_id or new_run_id(pipeline, checked_at), pipeline, checked_at)
    if pipeline == "weather":
        report.results = lake_checks(storage, rater)
    else:
        report.results = transactions_checks(storage, rater, currencies)
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
