"""An independent, plain-Python computation of what silver must hold (for comparisons)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .bronze import record

T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def rule_cases() -> list[dict[str, Any]]:
    """Hand-written bronze records covering every silver rule, in Kafka order."""
    return [
        # duplicate (city, timestamp) with two fetch times; the later fetch arrives first
        record("Paris", T0, temp=13.0, fetched=T0 + 5 * M),
        record("Paris", T0, temp=12.5, fetched=T0 + 1 * M),
        record("London", T0, temp=None),  # no temperature: dropped
        record("London", T0 + H, temp=61.0),  # too hot: dropped
        record("Tokyo", T0, humidity=101),  # humidity out of range: dropped
        record("Tokyo", T0 + H, humidity=None),  # humidity unknown: kept, score 90
        record(None, T0),  # no city: dropped
        record("   ", T0 + H),  # blank city: dropped
        {k: v for k, v in record("Berlin", T0).items() if k != "dt"},  # no timestamp: dropped
        record("Sydney", T0, drop=("wind.speed", "visibility", "weather")),  # score 70
        record("Oslo", T0, temp=-100.0, humidity=0),  # lower bounds: kept
        record("Dubai", T0, temp=60.0, humidity=100),  # upper bounds: kept, heat index
        record("New York", T0 + 2 * H, temp=30.0, humidity=80),  # heat index
        record("New York", T0 + 2 * H + 20 * M, temp=31.0, humidity=75),
        record("Paris", dt.datetime(2025, 4, 1, 0, 30, tzinfo=dt.UTC), temp=9.0),  # April
    ]


# (city, timestamp) -> (temperature, humidity, quality_score) after the rules
RULE_EXPECTED: dict[tuple[str, dt.datetime], tuple[float, float | None, int]] = {
    ("Paris", T0): (13.0, 70.0, 100),
    ("Tokyo", T0 + H): (12.5, None, 90),
    ("Sydney", T0): (12.5, 70.0, 70),
    ("Oslo", T0): (-100.0, 0.0, 100),
    ("Dubai", T0): (60.0, 100.0, 100),
    ("New York", T0 + 2 * H): (30.0, 80.0, 100),
    ("New York", T0 + 2 * H + 20 * M): (31.0, 75.0, 100),
    ("Paris", dt.datetime(2025, 4, 1, 0, 30, tzinfo=dt.UTC)): (9.0, 70.0, 100),
}


def heat_index(t: float, rh: float | None) -> float | None:
    """NWS Rothfusz heat index in °C (air temperature below 26.7 °C)."""
    if t < 26.7:
        return t
    if rh is None:
        return None
    f = t * 9 / 5 + 32
    hi = (-42.379 + 2.04901523 * f + 10.14333127 * rh - 0.22475541 * f * rh
          - 0.00683783 * f * f - 0.05481717 * rh * rh + 0.00122874 * f * f * rh
          + 0.00085282 * f * rh * rh - 0.00000199 * f * f * rh * rh)
    return (hi - 32) * 5 / 9


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def aggregates(rows: list[dict[str, Any]], hourly: bool) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Daily (or hourly) aggregates of cleaned rows, keyed by (city, date[, hour])."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        ts = r["timestamp"]
        key = (r["city"], ts.date(), ts.hour) if hourly else (r["city"], ts.date())
        groups[key].append(r)
    out = {}
    for key, members in groups.items():
        temps = [m["temperature"] for m in members]
        agg = {
            "observations": len(members),
            "temperature_avg": statistics.fmean(temps),
            "temperature_min": min(temps),
            "temperature_max": max(temps),
            "humidity_avg": _mean(m["humidity"] for m in members),
            "wind_speed_avg": _mean(m["wind_speed"] for m in members),
            "rain_total": sum(m["rain_1h"] or 0 for m in members),
        }
        if not hourly:
            agg["pressure_avg"] = _mean(m["pressure"] for m in members)
            agg["quality_score_avg"] = statistics.fmean(m["quality_score"] for m in members)
        out[key] = agg
    return out
