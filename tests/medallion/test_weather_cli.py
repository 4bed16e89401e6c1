"""A run of the weather DAG with options (what `lakestream demo` runs), `produce weather` and the
commands' help, end to end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakestream.api import Lakestream
from lakestream.cli import cli, main
from lakestream.config import load_settings
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.lake.storage import open_storage
from lakestream.medallion.gold_schema import data_quality_results, gold_weather_detailed
from lakestream.orchestrate.catalog import WEATHER_TASKS, weather_dag
from lakestream.pipelines.weather import WeatherOptions
from lakestream.warehouse.runlog import RunLog
from lakestream.warehouse.schema import pipeline_execution_log

from .conftest import make_settings
from .test_silver import rows_of


@pytest.fixture
def weather_project(tmp_path: Path) -> Iterator[Path]:
    """A project with a broker of its own (the topic name is fixed), local lake, SQLite gold."""
    with EmbeddedBroker(tmp_path / "broker") as broker:
        config = {
            "data_dir": str(tmp_path / "data"),
            "feeds_dir": str(tmp_path / "feeds"),
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "session_timeout_ms": 2000,
                      "partitions": 2},
            "lake": {"root": str(tmp_path / "lake"), "flush_interval_s": 0.5},
        }
        (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
        yield tmp_path


@pytest.mark.integration
def test_a_weather_dag_run_with_options_does_every_task_once_in_order(
        weather_project: Path) -> None:
    api = Lakestream(load_settings(weather_project / "lakestream.yaml", environ={}))
    events: list[tuple[str, dict[str, Any]]] = []
    options = WeatherOptions(source="simulated", cities=("Paris", "Tokyo"), hours=3, seed=4)
    report = api.orchestrator.run(weather_dag(options),
                                  on_event=lambda kind, details: events.append((kind, details)))
    assert report.status == "success", report.failed_task
    tasks = [t.name for t in WEATHER_TASKS]
    assert [t.name for t in report.tasks] == tasks
    assert {t.status for t in report.tasks} == {"success"} and {t.attempts for t in report.tasks} \
        == {1}
    assert [d["task"] for kind, d in events if kind == "task_start"] == tasks
    assert report.tasks[1].rows_out == 6  # ingest_data: 2 cities x 3 simulated hours
    storage = open_storage(str(weather_project / "lake"), make_settings(weather_project).s3)
    assert len(rows_of(storage, "bronze/weather")) == 6
    store = api.weather.gold_store
    detailed = store.select(gold_weather_detailed, "city", "timestamp")
    assert {r["city"] for r in detailed} == {"Paris", "Tokyo"} and 4 <= len(detailed) <= 6
    log = store.select(pipeline_execution_log, "execution_id")  # the run log: in the gold store
    assert [r["task"] for r in log] == tasks
    assert {r["run_id"] for r in log} == {report.run_id} and {r["status"] for r in log} == \
        {"success"}
    assert report.run_id.startswith("weather-")
    assert {r["run_id"] for r in store.select(data_quality_results, "result_id")} == \
        {report.run_id}
    store.close()
    warehouse = RunLog(api.warehouse.engine)  # the run is never split between two databases
    assert warehouse.rows(report.run_id) == []


@pytest.mark.integration
def test_openweather_replay_server_feeds_produce_weather(weather_project: Path, replay: Any,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: Any) -> None:
    state, url = replay
    state.script = [(404, {"cod": "404", "message": "city not found"}, 0.0)]
    config = yaml.safe_load((weather_project / "lakestream.yaml").read_text())
    config["weather"] = {"api_url": url}
    (weather_project / "lakestream.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("OPENWEATHER_API_KEY", "replay-key")
    args = ["--config", str(weather_project / "lakestream.yaml")]
    code = main([*args, "produce", "weather", "--cities", "Atlantis,Paris,London"])
    captured = capsys.readouterr()
    assert code == 1 and "'Atlantis'" in captured.err and "sent 2 openweather" in captured.out
    assert main([*args, "ingest", "--pipeline", "weather", "--until-idle",
                 "--idle-timeout", "1.5"]) == 0
    storage = open_storage(str(weather_project / "lake"), make_settings(weather_project).s3)
    bronze = rows_of(storage, "bronze/weather", "city")
    assert [r["city"] for r in bronze] == ["London", "Paris"]
    assert bronze[0]["main"]["temp"] == 12.53 and bronze[0]["_kafka_key"] == "London"
    assert abs(bronze[0]["fetched_at"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


@pytest.mark.parametrize("path", [("produce", "weather"), ("medallion", "silver"),
                                  ("medallion", "gold"), ("quality", "check")])
def test_every_weather_command_has_help_with_examples(path: tuple[str, ...]) -> None:
    group: Any = cli
    for name in path:
        group = group.commands[name]
    assert "Examples:" in (group.help or "")


def test_openweather_without_a_key_is_one_clear_line(tmp_path: Path, capsys: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENWEATHER_API_KEY", raising=False)
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "kafka": {"bootstrap_servers": "127.0.0.1:9"}}))
    code = main(["--config", str(tmp_path / "lakestream.yaml"), "produce", "weather",
                 "--source", "openweather"])
    err = capsys.readouterr().err
    assert code == 1 and "OPENWEATHER_API_KEY" in err and "Traceback" not in err
