"""What ``lakestream quality show RUN`` shows: a run's stored checks and its unpublished files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lakestream.errors import UnknownNameError
from lakestream.lake.storage import Storage
from lakestream.medallion.gold import GoldStore
from lakestream.medallion.gold_schema import data_quality_results
from lakestream.medallion.silver import held_back_stage


@dataclass(frozen=True)
class QualityRun:
    """The checks of one run (the latest result of each), and what it left unpublished."""

    run_id: str
    pipeline: str
    checked_at: dt.datetime
    results: list[dict[str, Any]] = field(default_factory=list)
    held_back: dict[str, Any] | None = None
    """The mark of the run's kept staging folder: ``reason``, ``folder``, ``created_at``."""

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The stored results that failed."""
        return [r for r in self.results if r["status"] == "fail"]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"run_id": self.run_id, "pipeline": self.pipeline,
                "checked_at": self.checked_at.isoformat(), "held_back": self.held_back,
                "results": [{k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                             for k, v in r.items() if k != "result_id"} for r in self.results]}


def latest_results(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of each check of each run, its last stored result (``rows`` in storage order).

    A run's audit and its quality task, and every retry of a task, store their
    results under the run's id: the last one of each check is what counts.
    """
    return list({(r["run_id"], r["check_name"], r["dataset"]): r for r in rows}.values())


def quality_run(store: GoldStore, storage: Storage, run_id: str | None) -> QualityRun:
    """The latest stored result of each check of run ``run_id`` (default: the latest run).

    Raises:
        UnknownNameError: No result of that run is stored.
    """
    rows = store.select(data_quality_results, "result_id")
    if run_id is None and rows:
        run_id = max(rows, key=lambda r: (r["checked_at"], r["result_id"]))["run_id"]
    found = [r for r in rows if r["run_id"] == run_id]
    if not found or run_id is None:
        recent = sorted({r["run_id"] for r in rows})[-5:]
        raise UnknownNameError(
            f"no quality results for run '{run_id}'" if run_id else
            "no quality results are stored yet",
            f"recent runs: {', '.join(recent)}" if recent else
            "run `lakestream quality check` or a pipeline run first")
    return QualityRun(run_id, str(found[0]["pipeline"]), found[-1]["checked_at"],
                      latest_results(found), held_back_stage(storage, run_id))
