"""`lakestream lineage` on a recorded run's events: the graph as text and JSON, filters,
and what it says about a missing file, bad lines and events sent elsewhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lakestream.cli import main
from lakestream.lineage import Check, TaskResult

from .conftest import project_lineage, project_settings

RECORDED = Path(__file__).parent / "data" / "weather_run.jsonl"
"""The events of one `WeatherService.run` (simulated source, Paris and Tokyo, 3 hours)."""
LAKE = "/tmp/rec/proj/lake"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose events file holds the recorded run."""
    root = tmp_path / "project"
    settings = project_settings(root)
    events = Path(settings.data_dir) / "lineage" / "events.jsonl"
    events.parent.mkdir(parents=True)
    shutil.copy(RECORDED, events)
    return root


def lineage(project: Path, capsys: pytest.CaptureFixture[str], *args: str
            ) -> tuple[int, str, str]:
    code = main(["--config", str(project / "lakestream.yaml"), "lineage", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_text_shows_each_task_of_the_run_with_what_it_read_and_wrote(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = lineage(project, capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("12 event(s) in ") and lines[0].endswith(
        ": 6 job(s), 9 dataset(s)")
    assert lines[1] == ("weather (DAG)  COMPLETE  2026-12-05 08:09:52 UTC  "
                        "run 20261205T080946-5d9725")
    tasks = [ln.strip().split()[0] for ln in lines if ln.startswith("  weather.")]
    assert tasks == ["weather.ingest_data", "weather.consume_to_s3", "weather.process_silver",
                     "weather.load_gold", "weather.quality_check"]
    consume = lines.index(next(ln for ln in lines if "weather.consume_to_s3" in ln))
    assert lines[consume + 1] == "    ← weather-data  [kafka://127.0.0.1:37021]  6 rows"
    assert lines[consume + 2].startswith(f"    → {LAKE}/bronze/weather  [file]  6 rows")
    assert f"    → {LAKE}/silver/weather_cleaned  [file]  6 rows  checks: 5 of 5 passed" in lines
    assert "    → gold_weather_detailed  [sqlite:///tmp/rec/proj/data/gold.db]" in lines
    assert "    → data_quality_results  [sqlite:///tmp/rec/proj/data/gold.db]" in lines


def test_the_json_is_the_graph_with_its_edges(project: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lineage(project, capsys, "--format", "json")
    assert code == 0
    graph: dict[str, Any] = json.loads(out)
    assert graph["events"] == 12 and graph["skipped_lines"] == 0
    assert graph["destination"].endswith("/data/lineage/events.jsonl")
    jobs = {j["name"]: j for j in graph["jobs"]}
    assert set(jobs) == {"weather", "weather.ingest_data", "weather.consume_to_s3",
                         "weather.process_silver", "weather.load_gold",
                         "weather.quality_check"}
    assert {j["state"] for j in jobs.values()} == {"COMPLETE"}
    assert jobs["weather.load_gold"]["parent"] == "lakestream/weather"
    datasets = {d["key"]: d for d in graph["datasets"]}
    bronze = datasets[f"file/{LAKE}/bronze/weather"]
    assert bronze["rows"] == 6 and len(bronze["checks"]) == 5
    assert {"from": f"file/{LAKE}/bronze/weather", "to": "lakestream/weather.process_silver"} \
        in graph["edges"]
    assert len(graph["edges"]) == sum(len(j["inputs"]) + len(j["outputs"])
                                      for j in jobs.values()) == 16


def test_filters_select_a_pipeline_a_job_or_the_jobs_of_a_dataset(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def names(*args: str) -> set[str]:
        code, out, _ = lineage(project, capsys, "--format", "json", *args)
        assert code == 0
        return {j["name"] for j in json.loads(out)["jobs"]}

    assert len(names("--job", "weather")) == 6
    assert names("--job", "weather.load_gold") == {"weather", "weather.load_gold"}
    assert names("--dataset", "weather_daily") == {"weather", "weather.process_silver",
                                                   "weather.load_gold"}
    assert names("--job", "transactions") == set()
    code, out, _ = lineage(project, capsys, "--dataset", "no_such_name")
    assert code == 0 and out.splitlines()[-1] == "no job matches"


def test_bad_lines_are_skipped_and_counted_never_a_crash(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = project / "data" / "lineage" / "events.jsonl"
    good = json.loads(RECORDED.read_text().splitlines()[1])
    with events.open("a") as log:
        log.write("{not json\n")
        log.write('"a string"\n')
        log.write(json.dumps({"eventType": "START"}) + "\n")  # no job, no run
        log.write(json.dumps({**good, "eventTime": "yesterday"}) + "\n")
        log.write("\n")  # blank lines are not counted
        # an event whose facets are malformed: read, the malformed parts ignored
        log.write(json.dumps({**good, "job": {"namespace": "other", "name": "odd",
                                              "facets": "x"},
                              "run": {"runId": 7, "facets": {"tags": {"tags": "x"}}},
                              "outputs": [{"namespace": "n", "name": "d",
                                           "outputFacets": {"outputStatistics": []}}, 5]})
                  + "\n")
    code, out, err = lineage(project, capsys, "--format", "json")
    assert code == 0
    assert "warning: 4 line(s) of" in err and "skipped" in err
    graph = json.loads(out)
    assert graph["skipped_lines"] == 4 and graph["events"] == 13
    odd = next(j for j in graph["jobs"] if j["name"] == "odd")
    assert odd["kind"] is None and odd["run_id"] == "7" and odd["outputs"] == ["n/d"]


def test_no_events_file_is_one_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "empty"
    project_settings(root)
    code, out, err = lineage(root, capsys)
    assert code == 1 and out == ""
    assert "error: no lineage events at" in err and "events.jsonl yet" in err
    assert "lakestream run weather" in err and "Traceback" not in err


def test_events_sent_to_an_endpoint_are_said_to_be_kept_there(
        project: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", "http://user:pw@marquez.example.com:5000")
    code, out, err = lineage(project, capsys)
    assert code == 0 and out.startswith("12 event(s)")
    assert "note: events go to http://marquez.example.com:5000; only those in" in err
    assert "pw" not in err

    (project / "data" / "lineage" / "events.jsonl").unlink()
    code, _, err = lineage(project, capsys)
    assert code == 1
    assert "the graph is kept there (Marquez: its web UI)" in err


def test_a_failed_run_shows_its_errors_and_failed_checks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "failed"
    recorder = project_lineage(project_settings(root, "127.0.0.1:9092"))
    run = recorder.run("weather", "weather-1", "127.0.0.1:9092")
    run.started()
    run.task_started("quality_check")
    run.task_ended("quality_check", 1, TaskResult("failed", error="1 check failed", checks=[
        Check("validity.temperature", "silver/weather_cleaned", "fail"),
        Check("uniqueness", "silver/weather_cleaned", "pass")]))
    run.task_started("cleanup_old_data")  # still running when the file was read
    code, out, _ = lineage(root, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("weather (DAG)  RUNNING  ")
    quality = lines.index(next(ln for ln in lines if "weather.quality_check" in ln))
    assert lines[quality].startswith("  weather.quality_check (TASK)  FAIL  ")
    assert lines[quality + 1] == "    error: 1 check failed"
    assert any(ln.endswith("silver/weather_cleaned  [file]  checks: 1 of 2 passed (failed: "
                           "validity.temperature)") for ln in lines[quality:])
    assert any(ln.startswith("  weather.cleanup_old_data (TASK)  RUNNING") for ln in lines)

