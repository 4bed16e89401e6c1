"""The orchestrator as the facade exposes it: run, task, schedule, Airflow, notify.

Every run of a pipeline goes through here and :class:`~.runner.DagRunner`:
``lakestream run``, the scheduler, ``lakestream task`` (Airflow's tasks) and
``lakestream demo`` (the weather DAG with options, in-process). Each run is
logged in its DAG's run log (:attr:`~.dag.Dag.run_log`): the gold store's
``pipeline_execution_log`` for weather, the warehouse's for the others.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lakestream.config import Settings, env_name
from lakestream.errors import LakestreamError, UsageError
from lakestream.lineage import Lineage
from lakestream.orchestrate.catalog import builtin_dags
from lakestream.orchestrate.dag import Dag, TaskContext, TaskOutput, as_output
from lakestream.orchestrate.executors import (
    Control,
    Executor,
    ProcessExecutor,
    ThreadExecutor,
    lakestream_command,
)
from lakestream.orchestrate.facade import TaskApi
from lakestream.orchestrate.lock import DagLock
from lakestream.orchestrate.notify import Notifier
from lakestream.orchestrate.runner import DagRunner, Event, LineageOf, RunReport
from lakestream.orchestrate.scheduler import Scheduler
from lakestream.warehouse.runlog import RunLog, SafeRunLog, new_run_id

log = logging.getLogger(__name__)

BOOTSTRAP_ENV = env_name("kafka.bootstrap_servers")


class Orchestrator:
    """DAG runs of one configuration.

    Args:
        settings: Lakestream settings (``notify_webhook_url``, ``data_dir``).
        engine: The warehouse engine, on demand (the DAG locks live there, and the run
            log of every DAG whose :attr:`~.dag.Dag.run_log` is ``warehouse``).
        api: The facade, handed to in-process tasks (and the way to the gold store's run
            log: ``api.weather.runlog``).
        dags: The DAGs by name (default: the built-in ones).
        lineage: Where runs emit their OpenLineage events (``None``: nowhere).
    """

    def __init__(self, settings: Settings, engine: Callable[[], sa.Engine], api: TaskApi,
                 dags: dict[str, Dag] | None = None, lineage: Lineage | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self.api = api
        self.dags = dags if dags is not None else builtin_dags()
        self.lineage = lineage

    @cached_property
    def notifier(self) -> Notifier:
        """Notifications to the log and the configured webhook."""
        return Notifier(self.settings.notify_webhook_url)

    @cached_property
    def warehouse_log(self) -> RunLog:
        """``pipeline_execution_log`` in the warehouse (its engine made on first use)."""
        return RunLog(self._engine)

    def runlog(self, dag: Dag) -> RunLog:
        """The run log of ``dag``: the database its :attr:`~.dag.Dag.run_log` names.

        Raises:
            UsageError: The log is the gold store's and this orchestrator has no facade.
        """
        if dag.run_log == "warehouse":
            return self.warehouse_log
        if self.api is None:
            raise UsageError(f"DAG {dag.name} logs its runs in the gold store, which an "
                             "orchestrator without the facade cannot reach",
                             "make the Orchestrator with the Lakestream facade as api")
        return self.api.weather.runlog

    def dag(self, name: str) -> Dag:
        """The DAG called ``name``.

        Raises:
            UsageError: Unknown pipeline (with the closest name).
        """
        if name in self.dags:
            return self.dags[name]
        close = difflib.get_close_matches(name, list(self.dags), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"pipelines: {', '.join(self.dags)}"
        raise UsageError(f"unknown pipeline '{name}'", hint)

    # -- one run -------------------------------------------------------------------------------

    def run(self, pipeline: str | Dag, from_task: str | None = None, only: str | None = None,
            in_process: bool = False, config_path: str | None = None,
            on_event: Event | None = None, control: Control | None = None) -> RunReport:
        """Run a pipeline once; at most one run of it is active at a time.

        Args:
            pipeline: The name of a DAG of this orchestrator, or a DAG of the caller's,
                such as ``weather_dag(WeatherOptions(...))``: it takes the lock of its
                name, and runs in-process (a child process would build the DAG of
                that name, not the caller's).
            from_task: Start at this task (and run everything downstream of it).
            only: Run this task only.
            in_process: Run the tasks in threads of this process, not child processes.
            config_path: The configuration file the child processes read.
            on_event: Progress callback (see :class:`~.runner.DagRunner`).
            control: Stops the run (a signal handler sets it).

        Raises:
            DagLockedError: A run of the pipeline is active (here or on another machine).
            UsageError: Unknown pipeline or task.
        """
        dag = pipeline if isinstance(pipeline, Dag) else self.dag(pipeline)
        in_process = in_process or dag is pipeline
        dag.select(from_task, only)  # unknown task names fail before anything starts
        run_id = new_run_id(dag.name)
        try:
            with (DagLock(self._engine(), dag.name, run_id),
                  self._kafka(dag, in_process, on_event) as env):
                executor: Executor = (
                    ThreadExecutor(self.api) if in_process else ProcessExecutor(
                        Path(self.settings.data_dir) / "runs", lakestream_command(config_path),
                        env))
                runner = DagRunner(dag, executor, SafeRunLog(self.runlog(dag)), self.notifier,
                                   on_event=on_event,
                                   lineage=self._lineage_of(env.get(BOOTSTRAP_ENV)))
                return runner.run(from_task, only, run_id, control)
        finally:
            self.notifier.flush()

    def _lineage_of(self, bootstrap: str | None) -> LineageOf | None:
        """The runs' lineage, naming topics on ``bootstrap`` (else the configured Kafka)."""
        lineage = self.lineage
        if lineage is None:
            return None
        if bootstrap is None:
            from lakestream.kafka.client import bootstrap_servers

            try:
                bootstrap = bootstrap_servers(self.settings)
            except LakestreamError:
                bootstrap = None  # no Kafka: the runs' topics go unnamed
        servers = bootstrap
        return lambda pipeline, run_id: lineage.run(pipeline, run_id, servers)

    @contextmanager
    def _kafka(self, dag: Dag, in_process: bool,
               on_event: Event | None) -> Iterator[dict[str, str]]:
        """The child environment; a temporary embedded broker when no Kafka is set up."""
        if not dag.needs_kafka or in_process or self._kafka_configured():
            yield {}
            return
        note = "no Kafka configured: a temporary embedded broker serves this run"
        log.info(note)
        if on_event:
            on_event("note", {"text": note})
        with self.api.embedded_kafka() as bootstrap:
            yield {BOOTSTRAP_ENV: bootstrap}

    def _kafka_configured(self) -> bool:
        from lakestream.kafka.broker import read_state

        return bool(self.settings.kafka.bootstrap_servers) or (
            read_state(Path(self.settings.data_dir)) is not None)

    def run_task(self, pipeline: str, task: str, run_id: str | None = None, attempt: int = 1,
                 log_attempt: bool = True,
                 say: Callable[[str], None] | None = None) -> TaskOutput:
        """Run one task in this process (what the process executor and Airflow call).

        Args:
            pipeline: The DAG.
            task: The task.
            run_id: The run it belongs to (default: a new one).
            attempt: Which try this is.
            log_attempt: Record the attempt in the run log (off when a runner does).
            say: Progress callback.
        """
        dag = self.dag(pipeline)
        chosen = dag.task(task)
        run_id = run_id or new_run_id(dag.name)
        context = TaskContext(dag.name, chosen.name, run_id, attempt, self.api,
                              say=say or (lambda _line: None))
        runlog = SafeRunLog(self.runlog(dag)) if log_attempt else None
        row = runlog.started(run_id, dag.name, chosen.name, attempt) if runlog else None
        try:
            output = as_output(chosen.fn(context))
        except BaseException as exc:
            if runlog:
                runlog.finished(row, "failed", error=str(exc) or type(exc).__name__)
            raise
        finally:
            self.notifier.flush()
        if runlog:
            runlog.finished(row, "success", output.rows_in, output.rows_out)
        return output

    # -- scheduling ----------------------------------------------------------------------------

    def last_started(self, dag: Dag) -> dt.datetime | None:
        """When a task of ``dag`` last started, from its run log.

        A DAG logged in the gold store is also looked up in the warehouse, where
        earlier versions logged every DAG run (their rows still count).
        """
        tasks = [t.name for t in dag.tasks]
        logs = [self.runlog(dag)]
        if dag.run_log != "warehouse":
            logs.append(self.warehouse_log)
        found = [at for runlog in logs if (at := runlog.last_started(dag.name, tasks))]
        return max(found, default=None)

    def scheduler(self, pipelines: Sequence[str] = (), catch_up: bool = True,
                  config_path: str | None = None, on_event: Event | None = None) -> Scheduler:
        """A scheduler of ``pipelines`` (default: every DAG); call ``run()``, ``stop()``."""
        dags = [self.dag(name) for name in pipelines] or list(self.dags.values())

        def start_run(dag: Dag, control: Control, reason: str) -> RunReport:
            if on_event:
                on_event("note", {"text": f"{dag.name}: run starts ({reason})"})
            report = self.run(dag.name, config_path=config_path, on_event=on_event,
                              control=control)
            if on_event:
                on_event("note", {"text": f"{dag.name}: run {report.run_id} {report.status} "
                                          f"in {report.duration_s:.0f}s"})
            return report

        return Scheduler(dags, start_run, self.last_started, catch_up)

    # -- notifications and Airflow -------------------------------------------------------------

    def notify_success(self, pipeline: str, run_id: str) -> bool:
        """Send ``pipeline``'s success notification for ``run_id``; ``False``: log only."""
        rows = self.runlog(self.dag(pipeline)).rows(run_id)
        finished = [r for r in rows if r["status"] == "success"]
        tasks = [{"task": r["task"], "status": r["status"], "attempts": r["attempt"],
                  "rows_out": r["rows_out"]} for r in finished]
        started = min((r["started_at"] for r in rows), default=None)
        duration = ((dt.datetime.now(dt.UTC).replace(tzinfo=None) - started).total_seconds()
                    if started else None)
        self.notify("success", pipeline, run_id, status="success", tasks=tasks,
                    duration_s=duration)
        return bool(self.settings.notify_webhook_url)

    def notify(self, event: str, pipeline: str, run_id: str | None, **details: Any) -> None:
        """Send one notification now (Airflow's callbacks call this through the CLI)."""
        self.notifier.notify({"event": event, "pipeline": pipeline, "run_id": run_id,
                              "sla_s": self.dag(pipeline).policy.sla_s, **details})
        self.notifier.flush()

    def airflow_dag(self, pipeline: str, lakestream_bin: str = "lakestream",
                    config_path: str | None = None, sla_as: str = "deadline") -> str:
        """The Airflow DAG file of ``pipeline`` (see :mod:`.airflow`)."""
        from lakestream.orchestrate.airflow import render_dag

        return render_dag(self.dag(pipeline), lakestream_bin, config_path, sla_as)
