"""The weather gold store's tables (docs/weather.md): PostgreSQL ``weather_dw`` in production.

One definition serves PostgreSQL, MySQL/MariaDB and SQLite. Each gold table
is unique on its natural key, the key of the upsert that loads it, so loading
the same silver data twice changes nothing. ``loaded_at`` is set by the
database when a row is first inserted and is not part of what a load writes.
``data_quality_results`` holds each quality check's result, per run. The
weather pipeline's run log, ``pipeline_execution_log`` (SPEC §4), is in the
gold database too, but it is not defined here: it is the one run-log table
(:mod:`lakestream.warehouse.runlog`), created where a run is first logged.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from lakestream.warehouse.schema import ID, MYSQL_OPTIONS, STAMP

DOUBLE: sa.Double[float] = sa.Double()

gold_metadata = sa.MetaData()


def _loaded_at() -> sa.Column[Any]:
    return sa.Column("loaded_at", sa.DateTime(), server_default=sa.func.current_timestamp(),
                     comment="when the row was first loaded (UTC on PostgreSQL and SQLite)")


gold_weather_detailed = sa.Table(
    "gold_weather_detailed",
    gold_metadata,
    sa.Column("detail_id", ID, primary_key=True, autoincrement=True),
    sa.Column("city", sa.String(128), nullable=False),
    sa.Column("timestamp", STAMP, nullable=False, comment="observation time (UTC)"),
    sa.Column("country", sa.String(8)),
    sa.Column("latitude", DOUBLE),
    sa.Column("longitude", DOUBLE),
    sa.Column("temperature", DOUBLE, nullable=False, comment="°C"),
    sa.Column("feels_like", DOUBLE),
    sa.Column("temp_min", DOUBLE),
    sa.Column("temp_max", DOUBLE),
    sa.Column("humidity", DOUBLE, comment="%"),
    sa.Column("pressure", DOUBLE, comment="hPa"),
    sa.Column("wind_speed", DOUBLE, comment="m/s"),
    sa.Column("wind_deg", DOUBLE),
    sa.Column("clouds", DOUBLE, comment="%"),
    sa.Column("visibility", DOUBLE, comment="m"),
    sa.Column("rain_1h", DOUBLE, comment="mm in the last hour"),
    sa.Column("weather_main", sa.String(64)),
    sa.Column("weather_description", sa.String(255)),
    sa.Column("heat_index", DOUBLE, comment="°C"),
    sa.Column("quality_score", sa.Integer()),
    sa.Column("fetched_at", STAMP),
    _loaded_at(),
    sa.UniqueConstraint("city", "timestamp", name="uq_gold_weather_detailed"),
    sa.Index("ix_gold_weather_detailed_time", "timestamp"),
    comment="One cleaned observation per city and time (silver weather_cleaned).",
    **MYSQL_OPTIONS,
)

_AGGREGATES = (
    ("observations", sa.BigInteger()),
    ("temperature_avg", DOUBLE),
    ("temperature_min", DOUBLE),
    ("temperature_max", DOUBLE),
    ("humidity_avg", DOUBLE),
)


def _measures(*extra: tuple[str, Any]) -> list[sa.Column[Any]]:
    pairs = (*_AGGREGATES, *extra)
    return [sa.Column(name, kind) for name, kind in pairs]


gold_weather_daily_aggregates = sa.Table(
    "gold_weather_daily_aggregates",
    gold_metadata,
    sa.Column("daily_id", ID, primary_key=True, autoincrement=True),
    sa.Column("city", sa.String(128), nullable=False),
    sa.Column("date", sa.Date(), nullable=False, comment="UTC day"),
    *_measures(("pressure_avg", DOUBLE), ("wind_speed_avg", DOUBLE), ("rain_total", DOUBLE),
               ("wind_speed_max", DOUBLE), ("heat_index_max", DOUBLE),
               ("quality_score_avg", DOUBLE)),
    _loaded_at(),
    sa.UniqueConstraint("city", "date", name="uq_gold_weather_daily"),
    comment="Per city and day (silver weather_daily_agg).",
    **MYSQL_OPTIONS,
)

gold_weather_hourly_aggregates = sa.Table(
    "gold_weather_hourly_aggregates",
    gold_metadata,
    sa.Column("hourly_id", ID, primary_key=True, autoincrement=True),
    sa.Column("city", sa.String(128), nullable=False),
    sa.Column("date", sa.Date(), nullable=False, comment="UTC day"),
    sa.Column("hour", sa.Integer(), nullable=False, comment="UTC hour, 0-23"),
    *_measures(("wind_speed_avg", DOUBLE), ("rain_total", DOUBLE)),
    _loaded_at(),
    sa.UniqueConstraint("city", "date", "hour", name="uq_gold_weather_hourly"),
    comment="Per city, day and hour (silver weather_hourly_agg).",
    **MYSQL_OPTIONS,
)

data_quality_results = sa.Table(
    "data_quality_results",
    gold_metadata,
    sa.Column("result_id", ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("pipeline", sa.String(64), nullable=False),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(128), nullable=False),
    sa.Column("status", sa.String(8), nullable=False, comment="pass, warn or fail"),
    sa.Column("observed", DOUBLE, comment="the measured value (%, count or hours)"),
    sa.Column("threshold", sa.String(64)),
    sa.Column("detail", sa.Text()),
    sa.Column("checked_at", STAMP, nullable=False),
    sa.Index("ix_quality_results_run", "run_id"),
    sa.Index("ix_quality_results_pipeline", "pipeline", "checked_at"),
    comment="One row per quality check of a run.",
    **MYSQL_OPTIONS,
)

GOLD_TABLES = (gold_weather_detailed, gold_weather_daily_aggregates,
               gold_weather_hourly_aggregates)  # fmt: skip

# gold table -> (silver dataset, natural key)
GOLD_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gold_weather_detailed": ("silver/weather_cleaned", ("city", "timestamp")),
    "gold_weather_daily_aggregates": ("silver/weather_daily_agg", ("city", "date")),
    "gold_weather_hourly_aggregates": ("silver/weather_hourly_agg", ("city", "date", "hour")),
}


def load_columns(table: sa.Table) -> tuple[str, ...]:
    """The columns a load writes: all but the surrogate key and ``loaded_at``."""
    return tuple(c.name for c in table.columns if not c.primary_key and c.name != "loaded_at")
