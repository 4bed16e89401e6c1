"""Runs as the dashboard shows them: grouped from ``pipeline_execution_log`` rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from lakestream.observe.runs import LogDatabase, recent_runs, task_outcomes
from lakestream.warehouse.schema import pipeline_execution_log as log

T0 = dt.datetime(2025, 1, 15, 8, 0, 0)


def row(run: str, task: str, status: str, start_s: int, end_s: int | None, attempt: int = 1,
        error: str | None = None, pipeline: str = "weather") -> dict[str, object]:
    return {"run_id": run, "pipeline": pipeline, "task": task, "status": status,
            "attempt": attempt, "started_at": T0 + dt.timedelta(seconds=start_s),
            "ended_at": None if end_s is None else T0 + dt.timedelta(seconds=end_s),
            "error": error}


def database(tmp_path: Path, rows: list[dict[str, object]]) -> LogDatabase:
    url = sa.make_url(f"sqlite:///{tmp_path / 'log.db'}")
    engine = sa.create_engine(url)
    log.create(engine)
    with engine.begin() as conn:
        conn.execute(log.insert(), rows)
    engine.dispose()
    return LogDatabase("test", url)


def test_a_database_that_does_not_exist_has_no_runs_and_is_not_created(tmp_path: Path) -> None:
    missing = LogDatabase("gold", sa.make_url(f"sqlite:///{tmp_path / 'gold.db'}"))
    assert recent_runs([missing], None, 10) == []
    assert not (tmp_path / "gold.db").exists()


def test_runs_are_grouped_newest_first_with_durations(tmp_path: Path) -> None:
    db = database(tmp_path, [
        row("r1", "ingest", "success", 0, 5), row("r1", "silver", "success", 5, 7),
        row("r2", "ingest", "success", 100, 104),
    ])
    runs = recent_runs([db], None, 10)
    assert [r.run_id for r in runs] == ["r2", "r1"]
    assert runs[1].status == "success" and runs[1].duration_s == 7
    assert [t.duration_s for t in runs[1].tasks] == [5, 2]


def test_a_retried_task_that_succeeded_leaves_a_successful_run(tmp_path: Path) -> None:
    db = database(tmp_path, [
        row("r", "gold", "failed", 0, 1, attempt=1, error="db down"),
        row("r", "gold", "success", 2, 3, attempt=2),
    ])
    (run,) = recent_runs([db], None, 10)
    assert run.status == "success" and run.error is None and len(run.tasks) == 2


def test_a_failed_or_running_run_says_so(tmp_path: Path) -> None:
    db = database(tmp_path, [
        row("f", "gold", "failed", 0, 1, error="boom"),
        row("f", "quality", "upstream_failed", 1, 1, attempt=0, error="gold failed"),
        row("w", "ingest", "running", 10, None),
    ])
    runs = {r.run_id: r for r in recent_runs([db], None, 10)}
    assert runs["f"].status == "failed" and runs["f"].error == "boom"
    assert runs["w"].status == "running" and runs["w"].ended_at is None


def test_filters_limits_and_outcome_counts(tmp_path: Path) -> None:
    db = database(tmp_path, [row(f"r{i}", "t", "success", i * 10, i * 10 + 1) for i in range(5)]
                  + [row("x", "sync", "failed", 100, 101, pipeline="transactions")])
    assert [r.run_id for r in recent_runs([db], "weather", 2)] == ["r4", "r3"]
    assert [r.run_id for r in recent_runs([db, db], "transactions", 5)] == ["x"]  # no repeats
    assert task_outcomes([db]) == {("weather", "t", "success"): 5,
                                   ("transactions", "sync", "failed"): 1}
