"""The silver transformations (docs/weather.md), written once as SQL for DuckDB and Spark.

Both engines run the same statements; a :class:`Dialect` fills in the few
places where their SQL differs (identifier quoting, type names, the first
element of a list, seconds since the epoch as a timestamp).

Results are identical on both engines, bit for bit, because every number is
computed by the same IEEE operations in the same order: constants are parsed
from text, and averages and sums divide exact integer sums of values taken in
hundredths (``floor(x * 100 + 0.5)``), so the order in which an engine adds
rows up cannot change a result.

The rules (docs/weather.md, "Silver: the rules"):

* typed columns from the raw OpenWeather document (``city``, ``timestamp`` =
  ``dt``, ``temperature`` = ``main.temp``, ...);
* rows without city, timestamp or temperature are dropped;
* only temperature within [-100, 60] °C and humidity within [0, 100] (or
  unknown) are kept;
* only plausible observation times are kept: not before a floor (2000-01-01 by
  default) and not later than the run's time plus a tolerance (60 minutes by
  default) — a record dated in the future would otherwise make freshness
  pass for ever;
* every row dropped gets one reason (:data:`REASONS`; silver keeps them in
  ``silver/weather_rejected``, its dead letters);
* one row per (city, timestamp): the latest fetched (then the highest Kafka
  partition and offset, so that ties are settled the same way every time);
* derived ``year``, ``month``, ``day``, ``hour`` (UTC) and ``heat_index``;
* ``quality_score``: 100 minus 10 per missing optional field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

TEMPERATURE_RANGE = (-100, 60)
HUMIDITY_RANGE = (0, 100)

# Optional fields: each one missing costs 10 points of quality_score.
OPTIONAL_COLUMNS = ("feels_like", "humidity", "pressure", "wind_speed", "wind_deg", "clouds",
                    "visibility", "weather_description")  # fmt: skip

# Rothfusz regression (°F, %): the US National Weather Service's heat index.
_ROTHFUSZ = ("-42.379", "2.04901523", "10.14333127", "-0.22475541", "-0.00683783",
             "-0.05481717", "0.00122874", "0.00085282", "-0.00000199")  # fmt: skip
HEAT_INDEX_FROM_C = "26.7"  # 80 °F: below it the heat index is the air temperature

DEDUP_ORDER = ("fetched_at", "_kafka_partition", "_kafka_offset")

REASON = "_reason"
"""The column of a typed row that says why silver drops it (NULL: kept)."""

# reason -> the group it is counted in (SilverReport, the quality checks)
REASONS: dict[str, str] = {
    "missing city": "missing",
    "missing timestamp (dt)": "missing",
    "missing temperature (main.temp)": "missing",
    f"temperature outside [{TEMPERATURE_RANGE[0]}, {TEMPERATURE_RANGE[1]}] °C": "out_of_range",
    f"humidity outside [{HUMIDITY_RANGE[0]}, {HUMIDITY_RANGE[1]}] %": "out_of_range",
    "timestamp in the future": "implausible_time",
    "timestamp before the floor": "implausible_time",
}


@dataclass(frozen=True)
class TimeBounds:
    """The plausible observation times of a run: ``floor`` to ``latest`` (UTC, inclusive)."""

    floor: dt.datetime
    latest: dt.datetime

    @classmethod
    def around(cls, now: dt.datetime, tolerance: dt.timedelta,
               floor: dt.datetime) -> TimeBounds:
        """From ``floor`` to ``now + tolerance``, to the second (both engines see the same)."""
        latest = (now + tolerance).astimezone(dt.UTC).replace(microsecond=0)
        return cls(floor.astimezone(dt.UTC).replace(microsecond=0), latest)


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines' SQL."""

    name: str
    quote: Callable[[str], str]
    timestamp_type: str
    string_type: str
    first_element: Callable[[str], str]
    from_epoch_seconds: Callable[[str], str]


DUCKDB = Dialect(
    name="duckdb",
    quote=lambda n: '"' + n.replace('"', '""') + '"',
    timestamp_type="TIMESTAMPTZ",
    string_type="VARCHAR",
    first_element=lambda e: f"{e}[1]",
    from_epoch_seconds=lambda e: f"to_timestamp({e})",
)

SPARK = Dialect(
    name="spark",
    quote=lambda n: "`" + n.replace("`", "``") + "`",
    timestamp_type="TIMESTAMP",
    string_type="STRING",
    first_element=lambda e: f"try_element_at({e}, 1)",
    from_epoch_seconds=lambda e: f"timestamp_seconds({e})",
)


def num(text: str) -> str:
    """A DOUBLE constant, parsed from text identically by both engines."""
    return f"CAST('{text}' AS DOUBLE)"


def centi(expr: str) -> str:
    """``expr`` in exact integer hundredths (values beyond ±1e9 are left out of sums)."""
    return (f"CASE WHEN {expr} BETWEEN -1000000000 AND 1000000000 "
            f"THEN CAST(FLOOR({expr} * 100 + {num('0.5')}) AS BIGINT) END")


def exact_avg(expr: str) -> str:
    """The mean of ``expr`` over its hundredths: the same double on every engine."""
    c = centi(expr)
    return f"CAST(SUM({c}) AS DOUBLE) / CAST(NULLIF(COUNT({c}), 0) AS DOUBLE) / 100"


def exact_sum(expr: str) -> str:
    """The sum of ``expr`` over its hundredths."""
    return f"CAST(SUM({centi(expr)}) AS DOUBLE) / 100"


# -- weather_cleaned ---------------------------------------------------------------------------


def _typed_columns(d: Dialect) -> list[tuple[str, str]]:
    """(expression over a bronze row, column name) of the typed silver columns."""
    q, ts, s = d.quote, d.timestamp_type, d.string_type

    def field(obj: str, name: str, kind: str = "DOUBLE") -> str:
        return f"CAST({q(obj)}.{q(name)} AS {kind})"

    weather = d.first_element(q("weather"))
    return [
        (f"NULLIF(TRIM(CAST({q('city')} AS {s})), '')", "city"),
        (field("sys", "country", s), "country"),
        (field("coord", "lat"), "latitude"),
        (field("coord", "lon"), "longitude"),
        (f"CAST({d.from_epoch_seconds(q('dt'))} AS {ts})", "timestamp"),
        (f"CAST({q('fetched_at')} AS {ts})", "fetched_at"),
        (field("main", "temp"), "temperature"),
        (field("main", "feels_like"), "feels_like"),
        (field("main", "temp_min"), "temp_min"),
        (field("main", "temp_max"), "temp_max"),
        (field("main", "humidity"), "humidity"),
        (field("main", "pressure"), "pressure"),
        (field("wind", "speed"), "wind_speed"),
        (field("wind", "deg"), "wind_deg"),
        (field("clouds", "all"), "clouds"),
        (f"CAST({q('visibility')} AS DOUBLE)", "visibility"),
        (f"CAST(COALESCE({q('rain')}.{q('1h')}, 0) AS DOUBLE)", "rain_1h"),
        (f"CAST({weather}.{q('main')} AS {s})", "weather_main"),
        (f"CAST({weather}.{q('description')} AS {s})", "weather_description"),
        (f"CAST({q('_kafka_partition')} AS INT)", "_kafka_partition"),
        (f"CAST({q('_kafka_offset')} AS BIGINT)", "_kafka_offset"),
    ]


def heat_index(d: Dialect) -> str:
    """Heat index in °C: the air temperature below 26.7 °C, else Rothfusz (NULL without RH)."""
    t, rh = d.quote("temperature"), d.quote("humidity")
    f = f"({t} * 9 / 5 + 32)"
    c = [num(x) for x in _ROTHFUSZ]
    terms = (f"{c[0]} + {c[1]} * {f} + {c[2]} * {rh} + {c[3]} * {f} * {rh} "
             f"+ {c[4]} * {f} * {f} + {c[5]} * {rh} * {rh} + {c[6]} * {f} * {f} * {rh} "
             f"+ {c[7]} * {f} * {rh} * {rh} + {c[8]} * {f} * {f} * {rh} * {rh}")
    return (f"CASE WHEN {t} < {num(HEAT_INDEX_FROM_C)} THEN {t} WHEN {rh} IS NULL THEN NULL "
            f"ELSE (({terms}) - 32) * 5 / 9 END")


def quality_score(d: Dialect) -> str:
    """100 minus 10 for each missing optional field."""
    missing = " + ".join(f"CASE WHEN {d.quote(c)} IS NULL THEN 1 ELSE 0 END"
                         for c in OPTIONAL_COLUMNS)
    return f"CAST(100 - 10 * ({missing}) AS INT)"


def _derived_columns(d: Dialect) -> list[tuple[str, str]]:
    ts = d.quote("timestamp")
    return [
        (heat_index(d), "heat_index"),
        (quality_score(d), "quality_score"),
        (f"CAST(year({ts}) AS INT)", "year"),
        (f"CAST(month({ts}) AS INT)", "month"),
        (f"CAST(day({ts}) AS INT)", "day"),
        (f"CAST(hour({ts}) AS INT)", "hour"),
    ]


def cleaned_columns(d: Dialect) -> list[str]:
    """Column names of ``weather_cleaned`` rows (``year`` and ``month`` included)."""
    return [name for _, name in _typed_columns(d)] + [name for _, name in _derived_columns(d)]


def _typed_sql(d: Dialect, bronze: str) -> str:
    typed = ", ".join(f"{expr} AS {d.quote(name)}" for expr, name in _typed_columns(d))
    return f"SELECT {typed} FROM {d.quote(bronze)}"


def timestamp_literal(d: Dialect, moment: dt.datetime) -> str:
    """A UTC instant as a constant both engines read alike (their sessions run in UTC)."""
    return f"CAST('{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}' AS {d.timestamp_type})"


def reason_sql(d: Dialect, bounds: TimeBounds) -> str:
    """Why a typed row is dropped (one of :data:`REASONS`, the first that applies), or NULL."""
    q = d.quote
    lo_t, hi_t = TEMPERATURE_RANGE
    lo_h, hi_h = HUMIDITY_RANGE
    reasons = list(REASONS)
    rules = [
        f"{q('city')} IS NULL",
        f"{q('timestamp')} IS NULL",
        f"{q('temperature')} IS NULL",
        f"{q('temperature')} NOT BETWEEN {lo_t} AND {hi_t}",
        f"{q('humidity')} IS NOT NULL AND {q('humidity')} NOT BETWEEN {lo_h} AND {hi_h}",
        f"{q('timestamp')} > {timestamp_literal(d, bounds.latest)}",
        f"{q('timestamp')} < {timestamp_literal(d, bounds.floor)}",
    ]
    whens = " ".join(f"WHEN {rule} THEN '{reason}'" for rule, reason in zip(rules, reasons,
                                                                           strict=True))
    return f"CASE {whens} END"


def reasoned_sql(d: Dialect, bronze: str, bounds: TimeBounds) -> str:
    """The typed rows of the bronze view ``bronze``, each with its :data:`REASON` (or NULL)."""
    return (f"SELECT t.*, {reason_sql(d, bounds)} AS {d.quote(REASON)} "
            f"FROM ({_typed_sql(d, bronze)}) t")


def clean_sql(d: Dialect, reasoned: str) -> str:
    """The kept rows of the view ``reasoned`` (:func:`reasoned_sql`), derived, not deduplicated."""
    q = d.quote
    typed = ", ".join(q(name) for _, name in _typed_columns(d))
    derived = ", ".join(f"{expr} AS {q(name)}" for expr, name in _derived_columns(d))
    return (f"SELECT t.*, {derived} FROM (SELECT {typed} FROM {q(reasoned)} "
            f"WHERE {q(REASON)} IS NULL) t")


def rejected_sql(d: Dialect, reasoned: str) -> str:
    """The dropped rows of the view ``reasoned``: their typed columns and ``reason``."""
    q = d.quote
    typed = ", ".join(q(name) for _, name in _typed_columns(d))
    return (f"SELECT {typed}, {q(REASON)} AS {q('reason')} FROM {q(reasoned)} "
            f"WHERE {q(REASON)} IS NOT NULL")


def reason_counts_sql(d: Dialect, reasoned: str) -> str:
    """``(reason, rows)`` of the view ``reasoned``; the kept rows under a NULL reason."""
    q = d.quote
    return f"SELECT {q(REASON)}, COUNT(*) FROM {q(reasoned)} GROUP BY {q(REASON)}"


KEY_FIELDS = (("city", "city"), ("timestamp", "dt"), ("temperature", "main.temp"))
"""Silver's key columns and the raw fields they come from: a row missing one is dropped."""


def key_presence_sql(d: Dialect, bronze: str) -> str:
    """Rows of ``bronze`` and how many have each key column, read exactly as silver reads it.

    One definition of "missing" for silver and the completeness check: a blank
    city (``"   "``) is missing in both. Returns one row: (rows, then one count
    per :data:`KEY_FIELDS`).
    """
    typed = {name: expr for expr, name in _typed_columns(d)}
    counts = ", ".join(f"COUNT({typed[name]})" for name, _ in KEY_FIELDS)
    return f"SELECT COUNT(*), {counts} FROM {d.quote(bronze)}"


def existing_sql(d: Dialect, view: str) -> str:
    """Rows of existing ``weather_cleaned`` files (which hold no year/month) in column order."""
    q = d.quote
    ts = q("timestamp")
    columns = [
        f"CAST(year({ts}) AS INT) AS {q(c)}" if c == "year"
        else f"CAST(month({ts}) AS INT) AS {q(c)}" if c == "month"
        else q(c)
        for c in cleaned_columns(d)
    ]
    return f"SELECT {', '.join(columns)} FROM {q(view)}"


def dedup_sql(d: Dialect, source: str) -> str:
    """One row per (city, timestamp) of ``source``: the latest fetched."""
    q = d.quote
    columns = ", ".join(q(c) for c in cleaned_columns(d))
    order = ", ".join(f"{q(c)} DESC" for c in DEDUP_ORDER)
    return (
        f"SELECT {columns} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {q('city')}, "
        f"{q('timestamp')} ORDER BY {order}) AS {q('_rank')} FROM ({source}) u) r "
        f"WHERE {q('_rank')} = 1"
    )


# -- aggregates ------------------------------------------------------------------------------


def daily_sql(d: Dialect, cleaned: str) -> str:
    """``weather_daily_agg``: one row per city and UTC day."""
    q = d.quote
    return (
        f"SELECT {q('city')}, make_date({q('year')}, {q('month')}, {q('day')}) AS {q('date')}, "
        f"{q('day')}, COUNT(*) AS {q('observations')}, "
        f"{_measures(d, with_pressure=True)}, "
        f"MAX({q('wind_speed')}) AS {q('wind_speed_max')}, "
        f"MAX({q('heat_index')}) AS {q('heat_index_max')}, "
        f"CAST(SUM({q('quality_score')}) AS DOUBLE) / CAST(COUNT(*) AS DOUBLE) "
        f"AS {q('quality_score_avg')}, {q('year')}, {q('month')} "
        f"FROM {q(cleaned)} GROUP BY {q('city')}, {q('year')}, {q('month')}, {q('day')}"
    )


def hourly_sql(d: Dialect, cleaned: str) -> str:
    """``weather_hourly_agg``: one row per city, UTC day and hour."""
    q = d.quote
    return (
        f"SELECT {q('city')}, make_date({q('year')}, {q('month')}, {q('day')}) AS {q('date')}, "
        f"{q('hour')}, {q('day')}, COUNT(*) AS {q('observations')}, "
        f"{_measures(d, with_pressure=False)}, {q('year')}, {q('month')} "
        f"FROM {q(cleaned)} "
        f"GROUP BY {q('city')}, {q('year')}, {q('month')}, {q('day')}, {q('hour')}"
    )


def _measures(d: Dialect, with_pressure: bool) -> str:
    q = d.quote
    parts = [
        f"{exact_avg(q('temperature'))} AS {q('temperature_avg')}",
        f"MIN({q('temperature')}) AS {q('temperature_min')}",
        f"MAX({q('temperature')}) AS {q('temperature_max')}",
        f"{exact_avg(q('humidity'))} AS {q('humidity_avg')}",
    ]
    if with_pressure:
        parts.append(f"{exact_avg(q('pressure'))} AS {q('pressure_avg')}")
    parts += [
        f"{exact_avg(q('wind_speed'))} AS {q('wind_speed_avg')}",
        f"{exact_sum(q('rain_1h'))} AS {q('rain_total')}",
    ]
    return ", ".join(parts)


def ordered(sql: str, d: Dialect, *keys: str) -> str:
    """``sql`` sorted by ``keys`` (files are written in a stable order)."""
    return f"SELECT * FROM ({sql}) o ORDER BY {', '.join(d.quote(k) for k in keys)}"
