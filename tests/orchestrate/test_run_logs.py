"""Where a run is logged: the database its DAG names (weather: the gold store), never two."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.api import Lakestream
from lakestream.config import Settings
from lakestream.errors import UsageError
from lakestream.orchestrate.catalog import builtin_dags, weather_dag
from lakestream.orchestrate.service import Orchestrator
from lakestream.pipelines.weather import WeatherOptions
from lakestream.warehouse.schema import pipeline_execution_log

from .conftest import linear, task


@pytest.fixture
def api(tmp_path: Path) -> Lakestream:
    """A project with SQLite warehouse and gold store, whose Kafka no task here reaches."""
    return Lakestream(Settings.model_validate({
        "data_dir": str(tmp_path / "data"), "feeds_dir": str(tmp_path / "feeds"),
        "lake": {"root": str(tmp_path / "lake")},
        "kafka": {"bootstrap_servers": "127.0.0.1:9"}}))


def test_the_weather_dag_logs_in_the_gold_store_and_the_others_in_the_warehouse() -> None:
    assert {name: dag.run_log for name, dag in builtin_dags().items()} == {
        "weather": "gold", "transactions": "warehouse"}
    assert weather_dag(WeatherOptions(source="simulated")).run_log == "gold"
    with pytest.raises(ValueError, match="run_log must be one of"):
        linear("x", task("a"), run_log="elsewhere")


def test_a_run_is_logged_in_its_dags_database_only(api: Lakestream) -> None:
    dag = linear("weather", task("a"), task("b"), run_log="gold")
    report = api.orchestrator.run(dag)  # a DAG of the caller's: in this process
    assert report.status == "success"
    assert re.fullmatch(r"weather-\d{8}T\d{6}-[0-9a-f]{6}", report.run_id)
    in_gold = api.weather.runlog.rows(report.run_id)
    assert [(r["task"], r["status"]) for r in in_gold] == [("a", "success"), ("b", "success")]
    assert api.orchestrator.warehouse_log.rows(report.run_id) == []
    other = api.orchestrator.run(linear("nightly", task("a")))
    assert [r["task"] for r in api.orchestrator.warehouse_log.rows(other.run_id)] == ["a"]
    assert api.weather.runlog.rows(other.run_id) == []


def test_a_task_run_alone_is_logged_where_its_dag_logs(api: Lakestream) -> None:
    orchestrator = Orchestrator(api.settings, lambda: api.warehouse.engine, api,
                                {"weather": linear("weather", task("a"), run_log="gold")})
    orchestrator.run_task("weather", "a", run_id="manual-1", attempt=2)
    assert [(r["task"], r["attempt"]) for r in api.weather.runlog.rows("manual-1")] == [("a", 2)]


def test_a_gold_log_needs_the_facade(api: Lakestream) -> None:
    # api=None on purpose; Orchestrator checks for it but annotates api as TaskApi (reported)
    orchestrator = Orchestrator(api.settings, lambda: api.warehouse.engine,
                                None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="gold store"):
        orchestrator.runlog(orchestrator.dag("weather"))


def test_the_scheduler_still_sees_weather_runs_an_earlier_version_logged_in_the_warehouse(
        api: Lakestream) -> None:
    orchestrator = api.orchestrator
    weather = orchestrator.dag("weather")
    assert orchestrator.last_started(weather) is None
    old = orchestrator.warehouse_log.started("weather-old", "weather", "load_gold", 1)
    three_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    with api.warehouse.engine.begin() as conn:
        conn.execute(pipeline_execution_log.update()
                     .where(pipeline_execution_log.c.execution_id == old)
                     .values(started_at=three_hours_ago.replace(tzinfo=None)))
    found = orchestrator.last_started(weather)
    assert found is not None and abs(found - three_hours_ago) < dt.timedelta(seconds=1)
    api.weather.runlog.started("weather-new", "weather", "check_api", 1)
    newer = orchestrator.last_started(weather)
    assert newer is not None and newer - three_hours_ago > dt.timedelta(hours=2)


def test_the_gold_log_is_created_with_the_gold_database(api: Lakestream) -> None:
    gold = Path(api.settings.data_dir) / "gold.db"
    assert not gold.exists()
    api.weather.runlog.started("weather-1", "weather", "check_api", 1)
    engine = sa.create_engine(f"sqlite:///{gold}")
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"pipeline_execution_log", "gold_weather_detailed", "data_quality_results"} <= names
