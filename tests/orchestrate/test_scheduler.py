"""Schedule decisions on a fake clock: next fires, missed runs, catch-up once, stopping."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from lakestream.errors import ConfigError
from lakestream.orchestrate.dag import DagPolicy
from lakestream.orchestrate.executors import Control
from lakestream.orchestrate.lock import DagLockedError
from lakestream.orchestrate.scheduler import Scheduler, missed_fire, next_fire

from .conftest import linear, task

HOURLY = "0 * * * *"


def at(hour: int, minute: int = 0, second: int = 0, day: int = 15) -> dt.datetime:
    return dt.datetime(2025, 1, day, hour, minute, second, tzinfo=dt.UTC)


def test_an_hourly_dag_fires_on_the_hour() -> None:
    assert next_fire(HOURLY, at(10, 30)) == at(11)
    assert next_fire(HOURLY, at(10, 59, 59)) == at(11)
    assert next_fire(HOURLY, at(11)) == at(12)  # strictly after
    assert next_fire("*/15 * * * *", at(10, 16)) == at(10, 30)
    assert next_fire(HOURLY, at(23, 30)) == at(0, day=16)


def test_nothing_is_missed_while_the_last_run_is_recent() -> None:
    assert missed_fire(at(10, 30), at(10, 0, 2), HOURLY) is None
    assert missed_fire(at(10, 59, 59), at(10, 0, 2), HOURLY) is None


def test_a_fire_after_the_last_run_is_missed_and_caught_up_once_at_the_latest_time() -> None:
    assert missed_fire(at(11, 0, 1), at(10, 0, 2), HOURLY) == at(11)
    assert missed_fire(at(14, 20), at(10, 0, 2), HOURLY) == at(14)  # four missed: one run
    assert missed_fire(at(3, day=18), at(10, 0, 2), HOURLY) == at(3, day=18)


def test_a_dag_that_never_ran_missed_nothing() -> None:
    assert missed_fire(at(14), None, HOURLY) is None


def test_a_bad_cron_expression_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a cron expression"):
        next_fire("every hour", at(10))


class FakeRuns:
    """Records the runs a scheduler starts; plays the run log."""

    def __init__(self, last: dict[str, dt.datetime | None]) -> None:
        self.last = last
        self.started: list[tuple[str, str]] = []

    def start(self, dag: Any, control: Control, reason: str) -> None:
        self.started.append((dag.name, reason))

    def last_started(self, dag: Any) -> dt.datetime | None:
        return self.last.get(dag.name)


def make_scheduler(runs: FakeRuns, now: dt.datetime, catch_up: bool = True) -> Scheduler:
    dags = [linear("weather", task("a")), linear("transactions", task("b"),
                                                  policy=DagPolicy(schedule="30 */6 * * *"))]
    return Scheduler(dags, runs.start, runs.last_started, catch_up, clock=lambda: now)


def test_catch_up_runs_only_the_dags_that_missed_a_fire() -> None:
    runs = FakeRuns({"weather": at(9, 0, 5), "transactions": at(6, 30, 1)})
    scheduler = make_scheduler(runs, now=at(11, 45))
    assert [(c.dag.name, c.fire_time) for c in scheduler.catch_ups()] == [("weather", at(11))]
    assert make_scheduler(runs, now=at(11, 45), catch_up=False).catch_ups() == []


def test_the_apscheduler_jobs_follow_each_dags_cron_and_run_one_instance() -> None:
    runs = FakeRuns({"weather": at(9, 0, 5), "transactions": None})
    built = make_scheduler(runs, now=at(11, 45)).build()
    jobs = {job.id: job for job in built.get_jobs()}
    assert set(jobs) == {"weather", "transactions", "weather-catch-up"}
    assert jobs["weather"].max_instances == 1 and jobs["weather"].coalesce is True
    assert jobs["weather"].trigger.get_next_fire_time(None, at(11, 45)) == at(12)
    assert jobs["transactions"].trigger.get_next_fire_time(None, at(11, 45)) == at(12, 30)


def test_the_scheduler_runs_the_catch_up_at_start_and_stops_on_request() -> None:
    runs = FakeRuns({"weather": at(9, 0, 5)})
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    runs.last["weather"] = now - dt.timedelta(hours=3)
    scheduler = make_scheduler(runs, now=now)
    scheduler.dags = scheduler.dags[:1]
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    for _ in range(200):
        if runs.started:
            break
        threading.Event().wait(0.02)
    scheduler.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert runs.started and runs.started[0][0] == "weather"
    assert runs.started[0][1].startswith("catch-up of ")


def test_a_stop_reaches_the_running_run_and_the_scheduler_waits_for_it() -> None:
    seen: list[str] = []
    entered = threading.Event()

    def start(dag: Any, control: Control, reason: str) -> None:
        entered.set()
        control.stop.wait(10)
        seen.append("stop requested")

    dag = linear("weather", task("a"))
    scheduler = Scheduler([dag], start, lambda d: None)
    thread = threading.Thread(target=scheduler._fire, args=(dag, "cron"))
    thread.start()
    assert entered.wait(5)
    scheduler.stop(grace_s=30)
    scheduler.run()  # returns once the running run has ended
    assert seen == ["stop requested"]
    thread.join(5)


def test_a_run_refused_by_the_lock_does_not_stop_the_scheduler() -> None:
    def start(dag: Any, control: Control, reason: str) -> None:
        raise DagLockedError("pipeline 'weather' is already running")

    dag = linear("weather", task("a"))
    Scheduler([dag], start, lambda d: None)._fire(dag, "cron")  # logged, not raised
