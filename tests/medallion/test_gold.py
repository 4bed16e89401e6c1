"""Silver → gold on SQLite and PostgreSQL: upserts, idempotence, the run log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from lakestream.feeds import FeedRegistry
from lakestream.lake.storage import open_storage
from lakestream.medallion.gold_schema import (
    gold_weather_daily_aggregates,
    gold_weather_detailed,
    gold_weather_hourly_aggregates,
)
from lakestream.pipelines.weather import WeatherService
from lakestream.warehouse.schema import pipeline_execution_log

from .bronze import BronzeWriter
from .conftest import make_settings
from .test_silver import _history, rows_of

TABLES = ((gold_weather_detailed, ("city", "timestamp")),
          (gold_weather_daily_aggregates, ("city", "date")),
          (gold_weather_hourly_aggregates, ("city", "date", "hour")))


def test_gold_loaded_twice_holds_the_same_rows_and_logs_each_run(tmp_path: Path,
                                                                 gold_url: str) -> None:
    settings = make_settings(tmp_path, gold_url=gold_url)
    storage = open_storage(settings.lake.root, settings.s3)
    service = WeatherService(settings, storage, FeedRegistry(tmp_path / "feeds"))
    history = _history(50, ("Paris", "Tokyo"), dt.datetime(2025, 8, 30, tzinfo=dt.UTC))
    BronzeWriter(storage).write(history)
    service.silver()
    store = service.gold_store
    try:
        first = service.gold()
        assert first.rows_in["gold_weather_detailed"] == len(rows_of(storage,
                                                                      "silver/weather_cleaned"))
        snapshot = {t.name: store.select(t, *key) for t, key in TABLES}
        assert all(snapshot.values())
        second = service.gold()
        assert second.rows_in == first.rows_in
        assert {t.name: store.select(t, *key) for t, key in TABLES} == snapshot  # no change

        silver_rows = rows_of(storage, "silver/weather_cleaned", "city", "timestamp")
        detailed = snapshot["gold_weather_detailed"]
        assert [(r["city"], r["temperature"], r["quality_score"]) for r in detailed] == [
            (r["city"], r["temperature"], r["quality_score"]) for r in silver_rows]
        assert detailed[0]["timestamp"] == silver_rows[0]["timestamp"].replace(tzinfo=None)

        # a later fetch of a known observation updates that row in place
        refetch = {**history[0], "main": {**history[0]["main"], "temp": -3.25},
                   "fetched_at": "2025-08-30T00:30:00.000Z"}
        BronzeWriter(storage).write([refetch])
        service.silver()
        service.gold()
        after = store.select(gold_weather_detailed, "city", "timestamp")
        assert len(after) == len(detailed)
        changed = [(a, b) for a, b in zip(detailed, after, strict=True) if a != b]
        assert len(changed) == 1 and changed[0][1]["temperature"] == -3.25
        assert changed[0][1]["detail_id"] == changed[0][0]["detail_id"]

        log = store.select(pipeline_execution_log, "execution_id")
        assert [(r["pipeline"], r["task"], r["status"]) for r in log] == \
            [("weather", "load_gold", "success")] * 3
        assert all(r["rows_in"] and r["ended_at"] >= r["started_at"] for r in log)
        assert len({r["run_id"] for r in log}) == 3  # each load alone is a run of its own
        assert all(r["run_id"].startswith("weather-") for r in log)
    finally:
        store.close()


def test_gold_without_silver_is_a_clear_error_and_is_logged(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    service = WeatherService(settings, open_storage(settings.lake.root, settings.s3),
                             FeedRegistry(tmp_path / "feeds"))
    with pytest.raises(Exception, match="silver holds no weather data"):
        service.gold()
    log = service.gold_store.select(pipeline_execution_log, "execution_id")
    assert [(r["task"], r["status"]) for r in log] == [("load_gold", "failed")]
    assert "silver holds no weather data" in log[0]["error"]
