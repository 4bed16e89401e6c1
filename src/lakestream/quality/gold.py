"""The checks of a gold load, run inside its transaction before it commits (write-audit-publish).

A load upserts silver into the gold tables; before the transaction commits,
these checks read the gold rows the load's time window now holds, as the
transaction sees them (no other reader does yet):

=====================  ===================================================
check                  passes when
=====================  ===================================================
gold.completeness      every row of the load is in gold_weather_detailed
gold.validity.*        temperature, humidity and timestamp plausible, as
                       in silver (``validity.*``)
gold.uniqueness        no two rows share (city, timestamp)
=====================  ===================================================

A blocking failure rolls the whole load back: gold stays as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from lakestream.medallion.gold_schema import gold_weather_detailed
from lakestream.medallion.sql import HUMIDITY_RANGE, TEMPERATURE_RANGE
from lakestream.quality.checks import CheckResult, Rater, share

DETAILED = gold_weather_detailed.name


def gold_checks(conn: sa.Connection, tables: Mapping[str, pa.Table],
                rater: Rater) -> list[CheckResult]:
    """The checks of the rows a load gave ``gold_weather_detailed``, read through ``conn``."""
    data = tables.get(DETAILED)
    if data is None or data.num_rows == 0:
        return [rater.result("gold.completeness", DETAILED, "pass", 0.0, "every row loaded",
                             "the load held no detailed row")]
    stamps = data.column("timestamp")
    low, high = pc.min(stamps).as_py(), pc.max(stamps).as_py()
    t = gold_weather_detailed
    window = sa.and_(t.c.timestamp >= _naive(low), t.c.timestamp <= _naive(high))
    return [
        _completeness(conn, window, data.num_rows, rater),
        *_validity(conn, window, rater),
        _uniqueness(conn, window, rater),
    ]


def _naive(moment: dt.datetime) -> dt.datetime:
    """A time as the store keeps it: UTC without a zone."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _completeness(conn: sa.Connection, window: sa.ColumnElement[bool], loaded: int,
                  rater: Rater) -> CheckResult:
    held = int(conn.execute(sa.select(sa.func.count()).select_from(gold_weather_detailed)
                            .where(window)).scalar_one())
    status = "pass" if held >= loaded else "fail"
    return rater.result("gold.completeness", DETAILED, status, round(share(min(held, loaded),
                                                                           loaded), 4),
                        "every row loaded", f"{held:,} rows in the load's time window, "
                        f"{loaded:,} loaded")


def _validity(conn: sa.Connection, window: sa.ColumnElement[bool],
              rater: Rater) -> list[CheckResult]:
    t = gold_weather_detailed
    b = rater.bounds
    rules = {
        "temperature": (t.c.temperature.between(*TEMPERATURE_RANGE), "°C range"),
        "humidity": (sa.or_(t.c.humidity.is_(None), t.c.humidity.between(*HUMIDITY_RANGE)),
                     "% range"),
        "timestamp": (t.c.timestamp.between(_naive(b.floor), _naive(b.latest)),
                      "plausible time"),
    }
    results = []
    for column, (rule, what) in rules.items():
        rows, bad = conn.execute(sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((sa.not_(rule), 1), else_=0)),
                                              0)).where(window)).one()
        rows, bad = int(rows), int(bad)
        results.append(rater.result(
            f"gold.validity.{column}", DETAILED, "pass" if bad == 0 else "fail",
            round(share(rows - bad, rows), 4), "= 100 %",
            f"{bad:,} of {rows:,} rows outside the {what}"))
    return results


def _uniqueness(conn: sa.Connection, window: sa.ColumnElement[bool],
                rater: Rater) -> CheckResult:
    t = gold_weather_detailed
    keys = (sa.select(t.c.city, t.c.timestamp).where(window).group_by(t.c.city, t.c.timestamp)
            .having(sa.func.count() > 1).subquery())
    duplicates = int(conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one())
    return rater.result("gold.uniqueness", DETAILED, "pass" if duplicates == 0 else "fail",
                        float(duplicates), "0 duplicate keys",
                        f"{duplicates:,} (city, timestamp) keys appear more than once")
