"""The transactions pipeline's data-quality checks (docs/quality.md), run on the lake with DuckDB.

==========================  ==========================  ==============================
check                       dataset                     passes when
==========================  ==========================  ==============================
uniqueness.transaction_id   streams/transaction_        no ``transaction_id`` twice in
                            flattened                   one UTC day of ``event_time``
completeness.required       streams/transaction_        ≥ 90 % of rows have every
                            flattened                   required field
validity.currency           streams/transaction_        every currency is in the rates
                            flattened                   table in force
freshness.<stream>          each stream that gets       newest plausible ``event_time``
                            every event                 ≤ 2 h old (warn up to 6 h)
==========================  ==========================  ==============================

``transaction_stream_blacklisted`` gets an event only when one matches the
blacklist, so a long quiet spell there is no sign of trouble: it has no
freshness check.
"""

from __future__ import annotations

from collections.abc import Iterable

from lakestream.lake.storage import Storage
from lakestream.medallion.delta_tables import snapshot_files
from lakestream.medallion.engines import DuckDBEngine
from lakestream.medallion.sql import timestamp_literal
from lakestream.quality.checks import CheckResult, Rater, freshness_result, share

FLAT = "streams/transaction_flattened"
FRESH_STREAMS = ("streams/transaction_stream", FLAT, "streams/transaction_stream_anonymized")
REQUIRED = ("transaction_id", "event_time", "transaction_type", "status", "amount", "currency",
            "user_id", "payment_method_id", "product_id")


def transactions_checks(storage: Storage, rater: Rater,
                        currencies: Iterable[str]) -> list[CheckResult]:
    """Every transactions check over the lake; ``currencies``: those the rates table knows."""
    engine = DuckDBEngine(storage)
    try:
        flat = list(snapshot_files(storage, FLAT))
        if flat:
            engine.register("q_flat", flat)
            results = [_unique_per_day(engine, rater), _complete(engine, rater),
                       _currency(engine, rater, sorted(currencies))]
        else:
            results = [rater.result(n, FLAT, "warn", None, "-", "the lake holds no "
                                    "transaction_flattened row yet: nothing to check")
                       for n in ("uniqueness.transaction_id", "completeness.required",
                                 "validity.currency")]
        return results + [_freshness(engine, storage, stream, rater) for stream in FRESH_STREAMS]
    finally:
        engine.close()


def _unique_per_day(engine: DuckDBEngine, rater: Rater) -> CheckResult:
    keys, extra = engine.rows(
        "SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM q_flat "
        "WHERE transaction_id IS NOT NULL GROUP BY CAST(event_time AS DATE), transaction_id "
        "HAVING COUNT(*) > 1) d")[0]
    return rater.result("uniqueness.transaction_id", FLAT, "pass" if int(keys) == 0 else "fail",
                        float(keys), "0 per day", f"{int(keys):,} transaction ids appear more "
                        f"than once in a day ({int(extra):,} extra rows)")


def _complete(engine: DuckDBEngine, rater: Rater) -> CheckResult:
    columns = ", ".join(f'COUNT("{c}")' for c in REQUIRED)
    complete = " AND ".join(f'"{c}" IS NOT NULL' for c in REQUIRED)
    total, full, *present = engine.rows(
        f"SELECT COUNT(*), COUNT(*) FILTER (WHERE {complete}), {columns} FROM q_flat")[0]
    pct = share(int(full), int(total))
    least = rater.policy.completeness_min_pct
    missing = ", ".join(f"{c} {int(total) - int(n):,}" for c, n in zip(REQUIRED, present,
                                                                      strict=True)
                        if int(n) < int(total))
    detail = f"{int(full):,} of {int(total):,} rows have every required field"
    if missing:
        detail += f" (missing: {missing})"
    return rater.result("completeness.required", FLAT, "pass" if pct >= least else "fail",
                        round(pct, 2), f">= {least:g} %", detail)


def _currency(engine: DuckDBEngine, rater: Rater, currencies: list[str]) -> CheckResult:
    known = ", ".join("'" + c.replace("'", "''") + "'" for c in currencies) or "NULL"
    rows, valid = engine.rows(
        f"SELECT COUNT(currency), COUNT(*) FILTER (WHERE currency IN ({known})) FROM q_flat")[0]
    rows, valid = int(rows), int(valid)
    unknown = engine.rows(f"SELECT DISTINCT currency FROM q_flat WHERE currency IS NOT NULL "
                          f"AND currency NOT IN ({known}) ORDER BY 1 LIMIT 5")
    detail = f"{rows - valid:,} of {rows:,} rows in a currency the rates table lacks"
    if unknown:
        detail += f" ({', '.join(str(u[0]) for u in unknown)})"
    return rater.result("validity.currency", FLAT, "pass" if valid == rows else "fail",
                        round(share(valid, rows), 4), "= 100 %", detail)


def _freshness(engine: DuckDBEngine, storage: Storage, stream: str,
               rater: Rater) -> CheckResult:
    """The age of the newest plausible ``event_time`` of ``stream``."""
    newest = None
    files = list(snapshot_files(storage, stream))
    if files:
        view = "q_" + stream.split("/", 1)[1]
        engine.register(view, files)
        latest = timestamp_literal(engine.dialect, rater.bounds.latest)
        newest = engine.rows(f"SELECT MAX(t) FROM (SELECT TRY_CAST(event_time AS TIMESTAMPTZ) "
                             f"AS t FROM {view}) e WHERE t <= {latest}")[0][0]
    return freshness_result(rater, f"freshness.{stream.split('/', 1)[1]}", stream, newest,
                            "event")
