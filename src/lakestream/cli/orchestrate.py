"""Commands of the orchestrator: run, task, schedule, airflow dag|notify."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.cli.streams import on_signals
from lakestream.output import console, err_console, print_rows

FROM = click.option("--from", "from_task", default=None, metavar="TASK",
                    help="Start at this task: it and everything downstream of it.")
ONLY = click.option("--only", default=None, metavar="TASK", help="Run just this task.")


def _say(line: str) -> None:
    err_console.print(line, soft_wrap=True, highlight=False)


def _show_event(kind: str, d: dict[str, Any]) -> None:
    """One line on stderr per task start, end and retry."""
    if kind == "task_start":
        _say(f"▶ {d['task']} (attempt {d['attempt']}/{d['attempts']})")
    elif kind == "task_end" and d["status"] == "success":
        rows = f", {d['rows_out']:,} rows" if d.get("rows_out") is not None else ""
        _say(f"✓ {d['task']} in {d['seconds']:.1f}s{rows}")
    elif kind == "task_end":
        where = f" (output: {d['log_file']})" if d.get("log_file") else ""
        _say(f"✗ {d['task']} {d['status']}: {d.get('error')}{where}")
    elif kind == "note":
        _say(d["text"])
    elif kind == "retry":
        _say(f"↻ {d['task']}: attempt {d['attempt']}/{d['attempts']} in {d['delay_s']:.0f}s")


@contextmanager
def _signals(handler: Callable[..., Any]) -> Iterator[None]:
    """``handler`` for SIGTERM and SIGINT during the block; the previous ones after it."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    on_signals(handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop_handler(control: Any, what: str) -> Callable[..., None]:
    """First SIGTERM/SIGINT: start nothing new; second: stop the running task now."""

    def handler(*_: object) -> None:
        if control.stop.is_set():
            _say(f"stopping the running task of the {what} now")
            control.request_stop(0.0)
        else:
            _say(f"stopping the {what} after the running task (signal again to stop it now)")
            control.request_stop(None)

    return handler


@cli.command("run")
@click.argument("pipeline")
@FROM
@ONLY
@click.option("--in-process", is_flag=True,
              help="Run tasks in threads of this process instead of child processes "
                   "(debugging; a timeout cannot stop a thread).")
@pass_ctx
def run(ctx: Context, pipeline: str, from_task: str | None, only: str | None,
        in_process: bool) -> None:
    """Run a pipeline's DAG once: tasks in order, with retries, timeouts and the run log.

    Each task runs as `lakestream task PIPELINE TASK` in a child process (its
    output in <data_dir>/runs/<run id>/), is retried after the DAG's delay
    (weather and transactions: 3 retries, 5 minutes apart) and stopped at its
    timeout (the run's: 2 hours). Every attempt is a row of the pipeline's run
    log, pipeline_execution_log (weather: in the gold store; transactions: in
    the warehouse). At most one run of a pipeline is active, also across
    machines sharing the warehouse: a second one exits 1. A run taking
    longer than its SLA (30 min) is alerted; success and failure are notified
    (log, and notify_webhook_url if set). Without a configured Kafka or a
    background broker, a temporary embedded broker serves the run.

    \b
    Pipelines:
      weather       check_api → ingest_data → consume_to_s3 → process_silver
                    → load_gold → quality_check → notify_success → cleanup_old_data
      transactions  process → ingest → export_tables → sync → quality → retention
    \b
    Examples:
      lakestream run weather
      lakestream run weather --from process_silver
      lakestream run transactions --only sync
    """
    from lakestream.orchestrate.executors import Control
    from lakestream.orchestrate.runner import DagRunFailed

    control = Control()
    with _signals(_stop_handler(control, "run")):
        report = ctx.api.orchestrator.run(pipeline, from_task, only, in_process, ctx.config,
                                          on_event=_show_event, control=control)
    rows = [(t.name, t.status, t.attempts, t.rows_in, t.rows_out) for t in report.tasks]
    print_rows(["task", "status", "attempts", "rows in", "rows out"], rows, "table")
    if report.status != "success":
        failed = report.failed_task
        cause = f": {failed.name} {failed.status}: {failed.error}" if failed else ""
        raise DagRunFailed(f"run {report.run_id} of {pipeline} {report.status}{cause}",
                           "see pipeline_execution_log and <data_dir>/runs/ for each attempt")
    console.print(f"run {report.run_id} of {pipeline} succeeded in {report.duration_s:.1f}s",
                  soft_wrap=True)


@cli.command("task")
@click.argument("pipeline")
@click.argument("task")
@click.option("--run-id", default=None, help="The run this attempt belongs to (default: new).")
@click.option("--attempt", type=click.IntRange(min=1), default=1, show_default=True,
              help="Which try of the task this is.")
@click.option("--log/--no-log", "log_attempt", default=True, show_default=True,
              help="Record the attempt in pipeline_execution_log (the runner logs its own).")
@click.option("--result-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the task's row counts to this JSON file.")
@pass_ctx
def task(ctx: Context, pipeline: str, task: str, run_id: str | None, attempt: int,
         log_attempt: bool, result_json: Path | None) -> None:
    """Run one task of a pipeline in this process, once (no retries).

    This is what `lakestream run` starts in a child process for every attempt,
    and what the Airflow DAG's tasks call. SIGTERM stops it cleanly.

    \b
    Examples:
      lakestream task weather check_api
      lakestream task transactions sync --run-id manual-1
    """
    with _signals(lambda *_: sys.exit(143)):
        output = ctx.api.orchestrator.run_task(pipeline, task, run_id, attempt, log_attempt,
                                               _say)
    if result_json is not None:
        result_json.write_text(json.dumps({"rows_in": output.rows_in,
                                           "rows_out": output.rows_out,
                                           "summary": output.summary}))
    console.print(f"{pipeline}.{task}: success" + (f": {output.summary}" if output.summary
                                                   else ""), soft_wrap=True)


@cli.command("schedule")
@click.option("--pipeline", "-p", "pipelines", multiple=True,
              help="Schedule this pipeline (repeatable; default: all).")
@click.option("--catch-up/--no-catch-up", default=True, show_default=True,
              help="On start, run once a pipeline whose scheduled run was missed while down.")
@click.option("--grace", type=click.FloatRange(min=0), default=None,
              help="On SIGTERM, stop a running task after this many seconds "
                   "(default: let it finish or reach its timeout).")
@pass_ctx
def schedule(ctx: Context, pipelines: tuple[str, ...], catch_up: bool,
             grace: float | None) -> None:
    """Run the pipelines on their cron schedules (UTC), in the foreground, until stopped.

    Weather and transactions run hourly ('0 * * * *'), each run as with
    `lakestream run`. A run missed while the scheduler was down (per the run
    log) is run once on start, unless --no-catch-up. SIGTERM or Ctrl-C starts
    nothing new and lets the running task finish (or reach its timeout); a
    second signal stops it at once.

    \b
    Examples:
      lakestream schedule
      lakestream schedule --pipeline weather --no-catch-up
    """
    scheduler = ctx.api.orchestrator.scheduler(pipelines, catch_up, ctx.config, _show_event)
    for name, at in scheduler.next_fires().items():
        _say(f"{name}: next run {at:%Y-%m-%d %H:%M} UTC" if at else f"{name}: never fires")
    for missed in scheduler.catch_ups():
        _say(f"{missed.dag.name}: missed the run of {missed.fire_time:%Y-%m-%d %H:%M} UTC; "
             "running it now")

    def handler(*_: object) -> None:
        _say("scheduler stopping: no new runs; waiting for the running task")
        scheduler.stop(grace)

    with _signals(handler):
        scheduler.run()
    _say("scheduler stopped")


@cli.group()
def airflow() -> None:
    """Run the pipelines under Apache Airflow 3 instead of `lakestream schedule`."""


@airflow.command("dag")
@click.option("--pipeline", "-p", required=True, help="The pipeline to write a DAG for.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the DAG file here (e.g. into Airflow's dags folder); default: stdout.")
@click.option("--lakestream-bin", default="lakestream", show_default=True,
              help="The lakestream command as Airflow's workers find it.")
@click.option("--task-config", default=None, metavar="FILE",
              help="A --config file every task is run with.")
@click.option("--sla-as", type=click.Choice(["deadline", "callback"]), default="deadline",
              show_default=True,
              help="deadline: a Deadline Alert fired while the run is late; callback: checked "
                   "when the run ends (works with `airflow dags test` on Airflow 3.3.2).")
@pass_ctx
def airflow_dag(ctx: Context, pipeline: str, out: Path | None, lakestream_bin: str,
                task_config: str | None, sla_as: str) -> None:
    """Write the pipeline's DAG as an Airflow 3 DAG file.

    Same tasks (BashOperators running `lakestream task PIPELINE TASK`), same
    policy: schedule, max_active_runs=1, retries, retry_delay,
    execution_timeout, dagrun_timeout, the SLA as a Deadline Alert, failure
    and SLA-miss notifications through `lakestream airflow notify`.

    \b
    Examples:
      lakestream airflow dag --pipeline weather --out $AIRFLOW_HOME/dags/lakestream_weather.py
      lakestream airflow dag -p transactions --lakestream-bin /opt/lakestream/bin/lakestream
    """
    text = ctx.api.orchestrator.airflow_dag(pipeline, lakestream_bin, task_config, sla_as)
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}", soft_wrap=True)


@airflow.command("notify")
@click.argument("event", type=click.Choice(["success", "failure", "sla_miss"]))
@click.option("--pipeline", "-p", required=True, help="The pipeline the run belongs to.")
@click.option("--run-id", default=None, help="Airflow's run id.")
@click.option("--task", default=None, help="The task that failed.")
@click.option("--error", default=None, help="What went wrong.")
@pass_ctx
def airflow_notify(ctx: Context, event: str, pipeline: str, run_id: str | None,
                   task: str | None, error: str | None) -> None:
    """Send a run notification (log and webhook); the Airflow DAG's callbacks call this.

    \b
    Examples:
      lakestream airflow notify failure --pipeline weather --task load_gold --error "boom"
      lakestream airflow notify sla_miss --pipeline weather --run-id scheduled__2025-01-01
    """
    status = {"success": "success", "failure": "failed", "sla_miss": "running"}[event]
    ctx.api.orchestrator.notify(event, pipeline, run_id, status=status, failed_task=task,
                                error=error)
    console.print(f"{event} notification of {pipeline} sent", soft_wrap=True)
