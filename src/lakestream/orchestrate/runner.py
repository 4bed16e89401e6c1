"""One DAG run: tasks in order, retries with a delay, timeouts, SLA, lock, log, notifications.

Under the DAG's lock (:mod:`.lock`, taken by the orchestrator), the runner
runs the selected tasks in dependency order. Each attempt is logged (the run
log, :mod:`lakestream.warehouse.runlog`) and executed by an
:class:`~.executors.Executor`. A failed attempt is retried after the DAG's
delay; a task that fails for good fails the run, and the tasks downstream of
it are not run. The run's time limit caps every attempt; an SLA timer alerts
once when the run takes longer than its SLA. Success, failure and SLA misses
go to the :class:`~.notify.Notifier`. The run and each attempt emit their
OpenLineage events (:mod:`lakestream.lineage`) when the runner is given lineage.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lakestream.errors import LakestreamError, TerminalError
from lakestream.lineage import RunLineage, TaskResult
from lakestream.orchestrate.dag import Dag, Task
from lakestream.orchestrate.executors import Attempt, Control, Executor, Outcome
from lakestream.orchestrate.notify import Notifier
from lakestream.warehouse.runlog import SafeRunLog, new_run_id

log = logging.getLogger(__name__)


class DagRunFailed(LakestreamError, TerminalError):
    """A DAG run ended without success."""


@dataclass
class TaskReport:
    """How one task of a run went (its last attempt)."""

    name: str
    status: str = "pending"
    attempts: int = 0
    rows_in: int | None = None
    rows_out: int | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunReport:
    """One DAG run: ``status`` is ``success``, ``failed``, ``timeout`` or ``cancelled``."""

    pipeline: str
    run_id: str
    started_at: dt.datetime
    status: str = "running"
    ended_at: dt.datetime | None = None
    tasks: list[TaskReport] = field(default_factory=list)
    sla_missed: bool = False

    @property
    def failed_task(self) -> TaskReport | None:
        """The task that ended the run, if it did not succeed."""
        return next((t for t in self.tasks if t.status in ("failed", "timeout", "cancelled")),
                    None)

    @property
    def duration_s(self) -> float:
        """Seconds from start to end (or to now while running)."""
        end = self.ended_at or dt.datetime.now(dt.UTC)
        return (end - self.started_at).total_seconds()


Event = Callable[[str, dict[str, Any]], None]
LineageOf = Callable[[str, str], RunLineage]
"""The lineage of one run: ``(pipeline, run_id)`` → its :class:`RunLineage`."""


class DagRunner:
    """Runs one DAG.

    Args:
        dag: The DAG.
        executor: Where attempts run.
        runlog: The run log.
        notifier: Where notifications go.
        on_event: Progress callback: ``(kind, details)`` with kind ``task_start``,
            ``task_end``, ``retry``.
        lineage: Where the run's OpenLineage events go (``None``: none are emitted).
    """

    def __init__(self, dag: Dag, executor: Executor, runlog: SafeRunLog, notifier: Notifier,
                 on_event: Event | None = None, lineage: LineageOf | None = None) -> None:
        self.dag = dag
        self.executor = executor
        self.runlog = runlog
        self.notifier = notifier
        self.on_event = on_event or (lambda _kind, _details: None)
        self.lineage = lineage or RunLineage.silent
        self._tracker = RunLineage.silent(dag.name, "")

    def run(self, from_task: str | None = None, only: str | None = None,
            run_id: str | None = None, control: Control | None = None) -> RunReport:
        """Run the DAG (or the part ``from_task`` / ``only`` select) once.

        Raises:
            UsageError: An unknown task name.
        """
        tasks = self.dag.select(from_task, only)
        run_id = run_id or new_run_id(self.dag.name)
        control = control or Control()
        report = RunReport(self.dag.name, run_id, dt.datetime.now(dt.UTC))
        report.tasks = [TaskReport(t.name) for t in tasks]
        self._tracker = self.lineage(self.dag.name, run_id)
        self._tracker.started()
        sla = self._start_sla_timer(report)
        try:
            self._run_tasks(tasks, report, control)
        finally:
            if sla is not None:
                sla.cancel()
            report.ended_at = dt.datetime.now(dt.UTC)
            failed = report.failed_task
            self._tracker.ended(report.status, failed.error if failed else None)
        self._notify_end(report, tasks)
        return report

    # -- tasks -------------------------------------------------------------------------------

    def _run_tasks(self, tasks: list[Task], report: RunReport, control: Control) -> None:
        deadline = time.monotonic() + self.dag.policy.run_timeout_s
        for index, task in enumerate(tasks):
            if control.stop.is_set():
                report.status = "cancelled"
                self._skip(tasks[index:], report, "not run: the run was stopped")
                return
            task_report = report.tasks[index]
            self._run_task(task, task_report, report.run_id, deadline, control)
            if task_report.status != "success":
                report.status = task_report.status
                self._skip(tasks[index + 1:], report,
                           f"not run: {task.name} {task_report.status}")
                return
        report.status = "success"

    def _run_task(self, task: Task, out: TaskReport, run_id: str, deadline: float,
                  control: Control) -> None:
        attempts = self.dag.retries_of(task) + 1
        for number in range(1, attempts + 1):
            remaining = max(deadline - time.monotonic(), 0.0)
            limit = self.dag.timeout_of(task)
            run_limited = limit is None or remaining <= limit
            attempt = Attempt(self.dag.name, task.name, run_id, number,
                              remaining if run_limited else limit)
            outcome = self._attempt(task, attempt, control, run_limited)
            self._record(out, number, outcome)
            if outcome.status == "timeout" and run_limited:
                return  # the run's time is up: no retry
            if outcome.status in ("success", "cancelled") or number == attempts:
                return
            if not self._wait_to_retry(task, number, attempts, outcome, deadline, control):
                return

    def _attempt(self, task: Task, attempt: Attempt, control: Control,
                 run_limited: bool) -> Outcome:
        self.on_event("task_start", {"task": task.name, "attempt": attempt.attempt,
                                     "attempts": self.dag.retries_of(task) + 1})
        row = self.runlog.started(attempt.run_id, self.dag.name, task.name, attempt.attempt)
        self._tracker.task_started(task.name, attempt.attempt)
        started = time.monotonic()
        try:
            outcome = self.executor.execute(self.dag, task, attempt, control)
        except Exception as exc:  # an executor that cannot start the task: a failed attempt
            outcome = Outcome("failed", error=f"could not start the task: {exc}")
        if outcome.status == "timeout" and run_limited:
            limit = self.dag.policy.run_timeout_s
            outcome = replace(outcome, error=f"run timed out after {limit:.3g}s")
        seconds = time.monotonic() - started
        self.runlog.finished(row, outcome.status, outcome.output.rows_in,
                             outcome.output.rows_out, outcome.error)
        self._tracker.task_ended(task.name, attempt.attempt, TaskResult(
            outcome.status, outcome.output.rows_in, outcome.output.rows_out, outcome.error))
        self.on_event("task_end", {"task": task.name, "attempt": attempt.attempt,
                                   "status": outcome.status, "seconds": seconds,
                                   "rows_out": outcome.output.rows_out, "error": outcome.error,
                                   "log_file": outcome.log_file})
        return outcome

    @staticmethod
    def _record(out: TaskReport, number: int, outcome: Outcome) -> None:
        out.status, out.attempts, out.error = outcome.status, number, outcome.error
        out.rows_in, out.rows_out = outcome.output.rows_in, outcome.output.rows_out

    def _wait_to_retry(self, task: Task, number: int, attempts: int, outcome: Outcome,
                       deadline: float, control: Control) -> bool:
        delay = self.dag.policy.retry_delay_s
        if time.monotonic() + delay >= deadline:
            log.warning("%s: no time left in the run for another attempt", task.name)
            return False
        self.on_event("retry", {"task": task.name, "attempt": number + 1, "attempts": attempts,
                                "delay_s": delay, "error": outcome.error})
        return not control.stop.wait(delay)

    def _skip(self, rest: list[Task], report: RunReport, reason: str) -> None:
        status = "upstream_failed" if report.status in ("failed", "timeout") else "cancelled"
        names = {t.name for t in rest}
        for task_report in report.tasks:
            if task_report.name in names:
                task_report.status = status
        self.runlog.not_run(report.run_id, self.dag.name, [t.name for t in rest], status, reason)

    # -- SLA and notifications ---------------------------------------------------------------

    def _start_sla_timer(self, report: RunReport) -> threading.Timer | None:
        sla = self.dag.policy.sla_s
        if sla is None:
            return None
        timer = threading.Timer(sla, self._sla_missed, args=(report,))
        timer.daemon = True
        timer.start()
        return timer

    def _sla_missed(self, report: RunReport) -> None:
        if report.sla_missed:
            return
        report.sla_missed = True
        self.notifier.notify(payload("sla_miss", report, self.dag.policy.sla_s))

    def _notify_end(self, report: RunReport, tasks: list[Task]) -> None:
        sla = self.dag.policy.sla_s
        if sla is not None and report.duration_s > sla and not report.sla_missed:
            self._sla_missed(report)
        if report.status != "success":
            self.notifier.notify(payload("failure", report, sla))
        elif self.dag.success_task not in {t.name for t in tasks}:
            self.notifier.notify(payload("success", report, sla))


def payload(event: str, report: RunReport, sla_s: float | None = None) -> dict[str, Any]:
    """The notification of ``event`` for ``report``."""
    failed = report.failed_task
    return {
        "event": event,
        "pipeline": report.pipeline,
        "run_id": report.run_id,
        "status": report.status,
        "started_at": report.started_at.isoformat(),
        "ended_at": report.ended_at.isoformat() if report.ended_at else None,
        "duration_s": round(report.duration_s, 3),
        "sla_s": sla_s,
        "failed_task": failed.name if failed else None,
        "error": failed.error if failed else None,
        "tasks": [{"task": t.name, "status": t.status, "attempts": t.attempts,
                   "rows_out": t.rows_out} for t in report.tasks],
    }
