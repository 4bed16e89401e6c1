"""A DAG run as a user sees it: retries, failures, timeouts, SLA, the run log, notifications."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from lakestream.orchestrate.dag import TaskContext, TaskOutput
from lakestream.orchestrate.executors import Control

from .conftest import FAST, Receiver, linear, log_rows, make_runner, task


def flaky(failures: int) -> Any:
    """A task that fails ``failures`` times, then writes 7 rows."""
    calls = {"n": 0}

    def run(ctx: TaskContext) -> TaskOutput:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError(f"boom {calls['n']}")
        return TaskOutput(5, 7)

    return run


def test_a_task_failing_twice_then_succeeding_is_logged_three_times_and_the_run_succeeds(
    engine: sa.Engine, receiver: Receiver
) -> None:
    dag = linear("flaky", task("extract"), task("load", flaky(2)), task("report"))
    report = make_runner(dag, engine, receiver.url).run()

    assert report.status == "success"
    rows = [(r["task"], r["attempt"], r["status"]) for r in log_rows(engine, report.run_id)]
    assert rows == [("extract", 1, "success"), ("load", 1, "failed"), ("load", 2, "failed"),
                    ("load", 3, "success"), ("report", 1, "success")]
    load = [r for r in log_rows(engine, report.run_id) if r["task"] == "load"]
    assert [r["error"] for r in load] == ["boom 1", "boom 2", None]
    assert load[-1]["rows_in"] == 5 and load[-1]["rows_out"] == 7
    assert all(r["ended_at"] >= r["started_at"] for r in load)
    assert receiver.wait_for(1)[0]["event"] == "success"


def test_a_task_always_failing_fails_the_run_skips_downstream_and_notifies(
    engine: sa.Engine, receiver: Receiver
) -> None:
    ran: list[str] = []

    def downstream(ctx: TaskContext) -> None:
        ran.append(ctx.task)

    dag = linear("broken", task("extract"), task("load", flaky(99)), task("report", downstream),
                 task("cleanup", downstream))
    report = make_runner(dag, engine, receiver.url).run()

    assert report.status == "failed"
    assert ran == []
    rows = [(r["task"], r["attempt"], r["status"]) for r in log_rows(engine, report.run_id)]
    assert rows[1:5] == [("load", n, "failed") for n in (1, 2, 3, 4)]
    assert rows[5:] == [("report", 0, "upstream_failed"), ("cleanup", 0, "upstream_failed")]
    body = receiver.wait_for(1)[0]
    assert body["event"] == "failure" and body["failed_task"] == "load"
    assert body["error"] == "boom 4" and body["pipeline"] == "broken"
    assert "load" in body["text"] and "boom 4" in body["text"]


def test_the_retry_delay_is_waited_between_attempts(engine: sa.Engine) -> None:
    policy = replace(FAST, retry_delay_s=0.15, retries=2)
    dag = linear("slow-retry", task("load", flaky(2)), policy=policy)
    started = time.monotonic()
    report = make_runner(dag, engine).run()
    assert report.status == "success"
    assert time.monotonic() - started >= 0.3


def test_a_task_over_its_timeout_is_stopped_and_retried(engine: sa.Engine) -> None:
    calls: list[int] = []

    def slow_once(ctx: TaskContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            ctx.stop.wait(5)

    dag = linear("timeouts", task("load", slow_once, timeout_s=0.3))
    report = make_runner(dag, engine).run()
    assert report.status == "success"
    rows = log_rows(engine, report.run_id)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "timeout"), (2, "success")]
    assert rows[0]["error"] == "timed out after 0.3s"


def test_the_run_timeout_ends_the_run_without_retrying(
    engine: sa.Engine, receiver: Receiver
) -> None:
    ran: list[str] = []
    dag = linear("run-limit", task("hang", lambda ctx: ctx.stop.wait(10)),
                 task("after", lambda ctx: ran.append("after")),
                 policy=replace(FAST, run_timeout_s=0.4))
    started = time.monotonic()
    report = make_runner(dag, engine, receiver.url).run()
    assert time.monotonic() - started < 3
    assert report.status == "timeout" and ran == []
    rows = log_rows(engine, report.run_id)
    assert [(r["task"], r["status"]) for r in rows] == [("hang", "timeout"),
                                                        ("after", "upstream_failed")]
    assert "run timed out" in rows[0]["error"]
    assert receiver.wait_for(1)[0]["status"] == "timeout"


def test_a_run_over_its_sla_is_alerted_once_while_it_runs(
    engine: sa.Engine, receiver: Receiver
) -> None:
    seen_during_run: list[list[str]] = []

    def slow(ctx: TaskContext) -> None:
        time.sleep(0.5)
        seen_during_run.append(receiver.events())

    dag = linear("sla", task("slow", slow), task("slow2", slow),
                 policy=replace(FAST, sla_s=0.2))
    report = make_runner(dag, engine, receiver.url).run()
    assert report.status == "success" and report.sla_missed
    assert "sla_miss" in seen_during_run[-1]  # alerted before the run ended
    events = [b["event"] for b in receiver.wait_for(2)]
    assert sorted(events) == ["sla_miss", "success"]


def test_a_dag_with_its_own_success_task_gets_no_second_success_notification(
    engine: sa.Engine, receiver: Receiver
) -> None:
    dag = linear("own-notify", task("work"), task("announce"), success_task="announce")
    make_runner(dag, engine, receiver.url).run()
    make_runner(dag, engine, receiver.url).run(only="work")
    assert receiver.wait_for(1) and receiver.events() == ["success"]
    time.sleep(0.2)
    assert receiver.events() == ["success"]  # only the run without the announce task


def test_from_and_only_select_the_tasks_to_run(engine: sa.Engine) -> None:
    ran: list[str] = []

    def record(ctx: TaskContext) -> None:
        ran.append(ctx.task)

    dag = linear("pick", *(task(n, record) for n in ("a", "b", "c", "d")))
    make_runner(dag, engine).run(from_task="c")
    make_runner(dag, engine).run(only="b")
    assert ran == ["c", "d", "b"]


def test_a_stop_lets_the_running_task_finish_and_starts_nothing_new(engine: sa.Engine) -> None:
    control = Control()
    ran: list[str] = []

    def first(ctx: TaskContext) -> None:
        control.request_stop()  # as SIGTERM would, while this task runs
        time.sleep(0.1)
        ran.append("first")

    dag = linear("stopping", task("first", first), task("second", lambda c: ran.append("x")))
    report = make_runner(dag, engine).run(control=control)
    assert ran == ["first"] and report.status == "cancelled"
    statuses = [(r["task"], r["status"]) for r in log_rows(engine, report.run_id)]
    assert statuses == [("first", "success"), ("second", "cancelled")]


def test_a_kill_stops_the_running_task_at_once(engine: sa.Engine) -> None:
    control = Control()
    threading.Timer(0.2, control.request_stop, args=(0.0,)).start()

    def hang(ctx: TaskContext) -> None:
        if ctx.stop.wait(10):  # told to stop, it hangs on: only a kill ends it at once
            time.sleep(10)

    dag = linear("killed", task("hang", hang))
    started = time.monotonic()
    report = make_runner(dag, engine).run(control=control)
    assert time.monotonic() - started < 3
    assert report.status == "cancelled"
    assert [r["status"] for r in log_rows(engine, report.run_id)] == ["cancelled"]
