"""The weather pipeline's data-quality checks (docs/quality.md), run with DuckDB.

They measure what came in (bronze, and the rows silver dropped) and what
went out (silver), and report both:

==================  ====================  =========================================
check               dataset               passes when
==================  ====================  =========================================
completeness.*      bronze/weather        ≥ 90 % of incoming records have city,
                                          timestamp (``dt``) and temperature
                                          (``main.temp``), read as silver reads them
validity.in         bronze/weather        every complete incoming record is kept:
                                          values in range, a plausible time (warn:
                                          some are dead-lettered; fail: < 90 % kept)
uniqueness.in       bronze/weather        no two incoming records share (city,
                                          timestamp) (warn only: silver keeps the
                                          latest fetched)
validity.*          silver/weather_...    every temperature in [-100, 60] °C, every
                                          humidity in [0, 100] %, every timestamp
                                          plausible
uniqueness          silver/weather_...    no two rows share (city, timestamp)
freshness           silver/weather_...    newest plausible observation ≤ 2 h old
                                          (warn up to 6 h, fail - an alert - beyond)
==================  ====================  =========================================

A silver run's audit (:func:`audit_stage`) checks the new bronze files it
read and the rows it staged; ``lakestream quality check`` checks the whole
lake (:func:`lake_checks`). Observation times later than the run plus
``quality.future_tolerance_min`` or before ``quality.timestamp_floor`` are
invalid: a record dated in the future can never make freshness pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lakestream.lake.storage import Storage
from lakestream.medallion.engines import DuckDBEngine
from lakestream.medallion.silver import (
    BRONZE,
    CLEANED,
    REJECTED,
    SilverStage,
    bronze_files,
    dataset_files,
)
from lakestream.medallion.sql import (
    HUMIDITY_RANGE,
    KEY_FIELDS,
    REASON,
    REASONS,
    TEMPERATURE_RANGE,
    key_presence_sql,
    reason_counts_sql,
    reasoned_sql,
    timestamp_literal,
)
from lakestream.quality.checks import CheckResult, Rater, freshness_result, share


@dataclass(frozen=True)
class Incoming:
    """What a set of bronze records holds, read as silver reads it."""

    rows: int
    present: dict[str, int]
    """Key column → records that have it."""
    rejected: dict[str, int]
    """Reason → records silver drops for it."""
    duplicates: int
    """Kept records that share (city, timestamp) with an earlier one."""

    def dropped(self, group: str) -> int:
        """Records dropped for a reason of ``group`` (missing, out_of_range, implausible_time)."""
        return sum(n for r, n in self.rejected.items() if REASONS.get(r) == group)


def lake_checks(storage: Storage, rater: Rater) -> list[CheckResult]:
    """Every weather check over the whole lake: all of bronze in, all of silver out."""
    engine = DuckDBEngine(storage)
    try:
        results = incoming_checks(engine, list(bronze_files(storage)), rater)
        silver = dataset_files(storage, CLEANED)
        return results + output_checks(engine, silver, silver, rater)
    finally:
        engine.close()


def audit_stage(storage: Storage, stage: SilverStage, rater: Rater) -> list[CheckResult]:
    """The checks of a staged silver run: its new bronze files in, its staged rows out.

    Freshness looks at silver as it would be once published: the staged rows
    and the published ones.
    """
    engine = DuckDBEngine(storage)
    try:
        results = incoming_checks(engine, stage.bronze, rater)
        staged = stage.files.get(CLEANED, [])
        after = staged + dataset_files(storage, CLEANED)
        return results + output_checks(engine, staged, after, rater)
    finally:
        engine.close()


def measure_incoming(engine: DuckDBEngine, files: Sequence[str], rater: Rater) -> Incoming:
    """Count what the bronze ``files`` hold: key fields present, reasons to drop, duplicates."""
    q, d = engine.dialect.quote, engine.dialect
    engine.register("q_bronze", files)
    total, *present = engine.rows(key_presence_sql(d, "q_bronze"))[0]
    engine.materialize("q_typed", reasoned_sql(d, "q_bronze", rater.bounds))
    rejected = {str(r): int(n) for r, n in engine.rows(reason_counts_sql(d, "q_typed"))
                if r is not None}
    duplicates = engine.rows(
        f"SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM q_typed "
        f"WHERE {q(REASON)} IS NULL GROUP BY city, {q('timestamp')} HAVING COUNT(*) > 1) d")[0][0]
    return Incoming(int(total), {name: int(n) for (name, _), n in zip(KEY_FIELDS, present,
                                                                       strict=True)},
                    rejected, int(duplicates))


def incoming_checks(engine: DuckDBEngine, files: Sequence[str],
                    rater: Rater) -> list[CheckResult]:
    """Completeness, validity and uniqueness of what came in."""
    names = [f"completeness.{name}" for name, _ in KEY_FIELDS] + ["validity.in",
                                                                   "uniqueness.in"]
    if not files:
        return [rater.result(n, BRONZE, "fail", None, "-", "bronze holds no weather record yet")
                for n in names]
    incoming = measure_incoming(engine, files, rater)
    return [*_completeness(incoming, rater), _validity_in(incoming, rater),
            _uniqueness_in(incoming, rater)]


def _completeness(incoming: Incoming, rater: Rater) -> list[CheckResult]:
    least = rater.policy.completeness_min_pct
    results = []
    for name, source in KEY_FIELDS:
        present = incoming.present[name]
        pct = share(present, incoming.rows)
        results.append(rater.result(
            f"completeness.{name}", BRONZE, "pass" if pct >= least else "fail", round(pct, 2),
            f">= {least:g} %", f"{present:,} of {incoming.rows:,} records have {source}"))
    return results


def _validity_in(incoming: Incoming, rater: Rater) -> CheckResult:
    complete = incoming.rows - incoming.dropped("missing")
    invalid = incoming.dropped("out_of_range") + incoming.dropped("implausible_time")
    pct = share(complete - invalid, complete)
    least = rater.policy.validity_min_pct
    status = "pass" if invalid == 0 else "warn" if pct >= least else "fail"
    reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(incoming.rejected.items())
                        if REASONS[r] != "missing")
    detail = f"{complete - invalid:,} of {complete:,} complete records kept"
    if invalid:
        detail += f"; {reasons} (dead letters in {REJECTED})"
    return rater.result("validity.in", BRONZE, status, round(pct, 2),
                        f"= 100 %, warn >= {least:g} %", detail)


def _uniqueness_in(incoming: Incoming, rater: Rater) -> CheckResult:
    status = "pass" if incoming.duplicates == 0 else "warn"
    return rater.result("uniqueness.in", BRONZE, status, float(incoming.duplicates),
                        "0 (warn)", f"{incoming.duplicates:,} record(s) repeat a (city, "
                        "timestamp) key; silver keeps the latest fetched")


def output_checks(engine: DuckDBEngine, files: Sequence[str], after: Sequence[str],
                  rater: Rater) -> list[CheckResult]:
    """Validity and uniqueness of the silver rows ``files``; freshness of silver ``after``."""
    if files:
        engine.register("q_silver", files)
        results = [
            _range(engine, "temperature", TEMPERATURE_RANGE, "°C", rater),
            _range(engine, "humidity", HUMIDITY_RANGE, "%", rater),
            _times(engine, rater),
            _uniqueness(engine, rater),
        ]
    else:
        results = [rater.result(n, CLEANED, "pass", None, "-", "no silver row to check")
                   for n in ("validity.temperature", "validity.humidity", "validity.timestamp",
                             "uniqueness")]
    return [*results, _freshness(engine, after, rater)]


def _range(engine: DuckDBEngine, column: str, bounds: tuple[int, int], unit: str,
           rater: Rater) -> CheckResult:
    lo, hi = bounds
    known, valid = engine.rows(
        f'SELECT COUNT("{column}"), COUNT(*) FILTER (WHERE "{column}" BETWEEN {lo} AND {hi}) '
        f"FROM q_silver")[0]
    known, valid = int(known), int(valid)
    detail = f"{known - valid:,} of {known:,} values outside [{lo}, {hi}] {unit}"
    return rater.result(f"validity.{column}", CLEANED, "pass" if valid == known else "fail",
                        round(share(valid, known), 4), "= 100 %", detail)


def _times(engine: DuckDBEngine, rater: Rater) -> CheckResult:
    d, b = engine.dialect, rater.bounds
    rows, valid = engine.rows(
        f'SELECT COUNT(*), COUNT(*) FILTER (WHERE "timestamp" BETWEEN '
        f"{timestamp_literal(d, b.floor)} AND {timestamp_literal(d, b.latest)}) FROM q_silver")[0]
    rows, valid = int(rows), int(valid)
    detail = (f"{rows - valid:,} of {rows:,} timestamps outside {b.floor:%Y-%m-%d} .. "
              f"{b.latest:%Y-%m-%d %H:%M} UTC")
    return rater.result("validity.timestamp", CLEANED, "pass" if valid == rows else "fail",
                        round(share(valid, rows), 4), "= 100 %", detail)


def _uniqueness(engine: DuckDBEngine, rater: Rater) -> CheckResult:
    duplicates, extra = engine.rows(
        'SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM (SELECT city, "timestamp", COUNT(*) AS n '
        'FROM q_silver GROUP BY city, "timestamp" HAVING COUNT(*) > 1) d')[0]
    status = "pass" if int(duplicates) == 0 else "fail"
    return rater.result("uniqueness", CLEANED, status, float(duplicates), "0 duplicate keys",
                        f"{int(duplicates):,} (city, timestamp) keys appear more than once "
                        f"({int(extra):,} extra rows)")


def _freshness(engine: DuckDBEngine, files: Sequence[str], rater: Rater) -> CheckResult:
    """The age of the newest plausible observation (a future one does not count)."""
    newest = None
    if files:
        engine.register("q_fresh", files)
        latest = timestamp_literal(engine.dialect, rater.bounds.latest)
        newest = engine.rows(f'SELECT MAX("timestamp") FROM q_fresh '
                             f'WHERE "timestamp" <= {latest}')[0][0]
    return freshness_result(rater, "freshness", CLEANED, newest, "observation")
