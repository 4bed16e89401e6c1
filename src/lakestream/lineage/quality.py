"""Quality results as lineage sees them: from a run's report, or from the gold store.

A caller may hand a :class:`~lakestream.quality.QualityReport` over
(:func:`checks_of`); a DAG run's ``quality_check`` may run in a child process,
so the runner's events read its results back from ``data_quality_results`` by
the run's id, where the task stored them (failed checks included) next to the
audits of that run's silver and gold steps: the last result of each check on
each dataset counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.medallion.gold import gold_url
from lakestream.medallion.gold_schema import data_quality_results
from lakestream.warehouse.connection import make_engine


@dataclass(frozen=True)
class Check:
    """One quality check's outcome.

    Attributes:
        blocking: Whether its failure holds a publication back; ``None``: not known
            (results read back from the store do not say).
    """

    name: str
    dataset: str
    status: str  # pass | warn | fail
    observed: float | None = None
    threshold: str = ""
    detail: str = ""
    blocking: bool | None = None


def checks_of(results: Iterable[Any]) -> list[Check]:
    """``CheckResult`` values (:mod:`lakestream.quality`) as :class:`Check` values."""
    return [Check(r.name, r.dataset, r.status, r.observed, r.threshold, r.detail,
                  getattr(r, "blocking", None)) for r in results]


def stored_checks(settings: Settings, run_id: str) -> list[Check]:
    """The results the gold store holds for ``run_id`` (none when it holds none yet)."""
    url = gold_url(settings)
    if url.get_backend_name() == "sqlite" and not (
            url.database and Path(url.database).is_file()):
        return []
    q = data_quality_results
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(q.name):
                return []
            rows = conn.execute(sa.select(q.c.check_name, q.c.dataset, q.c.status, q.c.observed,
                                          q.c.threshold, q.c.detail)
                                .where(q.c.run_id == run_id).order_by(q.c.result_id)).all()
    finally:
        engine.dispose()
    latest = {(r.check_name, r.dataset): r for r in rows}  # a check run twice: its last result
    return [Check(r.check_name, r.dataset, r.status, r.observed, r.threshold or "",
                  r.detail or "") for r in latest.values()]
