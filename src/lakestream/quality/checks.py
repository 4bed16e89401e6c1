"""The weather pipeline's data-quality checks (docs/weather.md), run on the lake with DuckDB.

=================  ===================  ===========================================
check              dataset              passes when
=================  ===================  ===========================================
completeness.*     bronze/weather       ≥ 90 % of raw records have city, timestamp
                                        (``dt``) and temperature (``main.temp``),
                                        read as silver reads them (a blank city
                                        is missing in both)
validity.*         silver/weather_...   every temperature in [-100, 60] °C and
                                        every humidity in [0, 100] %
uniqueness         silver/weather_...   no two rows share (city, timestamp)
freshness          silver/weather_...   newest observation ≤ 2 h old (warn up to
                                        6 h, fail - an alert - beyond)
=================  ===================  ===========================================

Completeness is measured on bronze, where incomplete records still are (silver
drops them); the others check what silver serves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lakestream.errors import TerminalError
from lakestream.lake.storage import Storage
from lakestream.medallion.engines import DuckDBEngine
from lakestream.medallion.silver import BRONZE, CLEANED, bronze_files, dataset_files
from lakestream.medallion.sql import (
    HUMIDITY_RANGE,
    KEY_FIELDS,
    TEMPERATURE_RANGE,
    key_presence_sql,
)

COMPLETENESS_MIN_PCT = 90.0
FRESHNESS_WARN_H = 2.0
FRESHNESS_ALERT_H = 6.0


class QualityCheckFailed(TerminalError):
    """At least one quality check failed (results are stored before this is raised)."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    dataset: str
    status: str  # pass | warn | fail
    observed: float | None
    threshold: str
    detail: str


@dataclass
class QualityReport:
    """Every check of one run."""

    run_id: str
    pipeline: str
    checked_at: dt.datetime
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed."""
        return [r for r in self.results if r.status == "fail"]

    @property
    def ok(self) -> bool:
        """Whether no check failed (warnings allowed)."""
        return not self.failed


def weather_checks(storage: Storage, now: dt.datetime | None = None) -> list[CheckResult]:
    """Run every weather check over the lake."""
    now = now or dt.datetime.now(dt.UTC)
    engine = DuckDBEngine(storage)
    try:
        return [*_completeness(engine, storage), *_silver_checks(engine, storage, now)]
    finally:
        engine.close()


def _completeness(engine: DuckDBEngine, storage: Storage) -> list[CheckResult]:
    files = list(bronze_files(storage))
    threshold = f">= {COMPLETENESS_MIN_PCT:g} %"
    if not files:
        return [CheckResult(f"completeness.{name}", BRONZE, "fail", None, threshold,
                            "bronze holds no weather record yet") for name, _ in KEY_FIELDS]
    engine.register("q_bronze", files)
    total, *present_counts = engine.rows(key_presence_sql(engine.dialect, "q_bronze"))[0]
    results = []
    for (name, source), present in zip(KEY_FIELDS, present_counts, strict=True):
        pct = 100.0 * int(present) / int(total)
        status = "pass" if pct >= COMPLETENESS_MIN_PCT else "fail"
        results.append(CheckResult(f"completeness.{name}", BRONZE, status, round(pct, 2),
                                   threshold, f"{present:,} of {total:,} records have {source}"))
    return results


def _silver_checks(engine: DuckDBEngine, storage: Storage,
                   now: dt.datetime) -> list[CheckResult]:
    files = dataset_files(storage, CLEANED)
    names = ("validity.temperature", "validity.humidity", "uniqueness", "freshness")
    if not files:
        return [CheckResult(n, CLEANED, "fail", None, "-", "silver holds no weather row yet")
                for n in names]
    engine.register("q_silver", files)
    return [
        _validity(engine, "temperature", TEMPERATURE_RANGE, "°C"),
        _validity(engine, "humidity", HUMIDITY_RANGE, "%"),
        _uniqueness(engine),
        _freshness(engine, now),
    ]


def _validity(engine: DuckDBEngine, column: str, bounds: tuple[int, int],
              unit: str) -> CheckResult:
    lo, hi = bounds
    known, valid = engine.rows(
        f'SELECT COUNT("{column}"), COUNT(*) FILTER (WHERE "{column}" BETWEEN {lo} AND {hi}) '
        f"FROM q_silver")[0]
    known, valid = int(known), int(valid)
    pct = 100.0 if known == 0 else 100.0 * valid / known
    status = "pass" if valid == known else "fail"
    detail = f"{known - valid:,} of {known:,} values outside [{lo}, {hi}] {unit}"
    return CheckResult(f"validity.{column}", CLEANED, status, round(pct, 4), "= 100 %", detail)


def _uniqueness(engine: DuckDBEngine) -> CheckResult:
    duplicates, extra = engine.rows(
        'SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM (SELECT city, "timestamp", COUNT(*) AS n '
        'FROM q_silver GROUP BY city, "timestamp" HAVING COUNT(*) > 1) d')[0]
    status = "pass" if int(duplicates) == 0 else "fail"
    return CheckResult("uniqueness", CLEANED, status, float(duplicates), "0 duplicate keys",
                       f"{int(duplicates):,} (city, timestamp) keys appear more than once "
                       f"({int(extra):,} extra rows)")


def _freshness(engine: DuckDBEngine, now: dt.datetime) -> CheckResult:
    newest = engine.rows('SELECT MAX("timestamp") FROM q_silver')[0][0]
    threshold = f"warn > {FRESHNESS_WARN_H:g} h, alert > {FRESHNESS_ALERT_H:g} h"
    if newest is None:
        return CheckResult("freshness", CLEANED, "fail", None, threshold, "no observation")
    age_h = (now - newest.astimezone(dt.UTC)).total_seconds() / 3600
    if age_h > FRESHNESS_ALERT_H:
        status, word = "fail", "alert: "
    elif age_h > FRESHNESS_WARN_H:
        status, word = "warn", "warning: "
    else:
        status, word = "pass", ""
    detail = f"{word}newest observation {newest.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC, " \
             f"{age_h:.1f} h old"
    return CheckResult("freshness", CLEANED, status, round(age_h, 2), threshold, detail)
