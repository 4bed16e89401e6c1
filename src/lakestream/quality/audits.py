"""The audits of write-audit-publish: the checks a silver or gold run must pass to publish.

Each audit is a callable the medallion calls with what a run wrote and has
not yet published (a staged silver run; a gold load inside its open
transaction). It runs the checks, keeps them as a :class:`QualityReport`
(``report``), and returns the blocking failures (or ``None``: publish).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pyarrow as pa
import sqlalchemy as sa

from lakestream.config import QualitySettings
from lakestream.lake.storage import Storage
from lakestream.medallion.silver import SilverReport, SilverStage
from lakestream.quality.checks import QualityCheckFailed, QualityReport, Rater
from lakestream.quality.gold import gold_checks
from lakestream.quality.weather import audit_stage


class SilverHeldBack(QualityCheckFailed):
    """A silver run's blocking checks failed: nothing was published.

    Attributes:
        silver: What the run read, dropped and staged.
    """

    def __init__(self, silver: SilverReport) -> None:
        super().__init__(
            f"silver run {silver.run_id} was held back, nothing was published: "
            f"{silver.held_back}",
            f"see `lakestream quality show {silver.run_id}`; its files are kept in "
            f"{silver.staging}; the next run checks these records again")
        self.silver = silver


class SilverAudit:
    """The weather checks of a staged silver run.

    Args:
        storage: The lake.
        policy: Thresholds and which checks block.
        run_id: The run (its results are stored under it).
        now: The run's time (the same the silver run's time bounds were made from).
        warn_only: No check blocks: publish whatever the checks say (they are recorded).
    """

    def __init__(self, storage: Storage, policy: QualitySettings, run_id: str,
                 now: dt.datetime, warn_only: bool = False) -> None:
        self.storage = storage
        self.rater = Rater(policy, now, warn_only)
        self.report = QualityReport(run_id, "weather", now)

    def __call__(self, stage: SilverStage) -> str | None:
        """Check ``stage``; why it must not be published, or ``None``."""
        self.report.results = audit_stage(self.storage, stage, self.rater)
        return self.report.verdict()


class GoldAudit:
    """The checks of a gold load, inside its transaction.

    Args:
        policy: Thresholds and which checks block.
        run_id: The run (its results are stored under it).
        now: The run's time.
    """

    def __init__(self, policy: QualitySettings, run_id: str, now: dt.datetime) -> None:
        self.rater = Rater(policy, now)
        self.report = QualityReport(run_id, "weather", now)

    def __call__(self, conn: sa.Connection, tables: Mapping[str, pa.Table]) -> str | None:
        """Check the load through ``conn``; why it must not commit, or ``None``."""
        self.report.results = gold_checks(conn, tables, self.rater)
        return self.report.verdict()
