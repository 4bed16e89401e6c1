"""Attempts in child processes: results, errors, and timeouts enforced by PID."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from lakestream.orchestrate.catalog import transactions_dag
from lakestream.orchestrate.dag import Task
from lakestream.orchestrate.executors import (
    Attempt,
    CommandBuilder,
    Control,
    ProcessExecutor,
    lakestream_command,
)

from .conftest import linear, task

DAG = linear("proc", task("work"))
TASK: Task = DAG.tasks[0]


def python(code: str) -> CommandBuilder:
    """A command builder running ``code`` with ``sys.executable``."""
    return lambda attempt, result: [sys.executable, "-c", code]


def attempt(timeout_s: float | None = 5.0) -> Attempt:
    return Attempt("proc", "work", "run-1", 1, timeout_s)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_child_over_its_timeout_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    executor = ProcessExecutor(tmp_path / "runs", python(code), grace_s=2)
    started = time.monotonic()
    outcome = executor.execute(DAG, TASK, attempt(timeout_s=1.0), Control())
    assert time.monotonic() - started < 5
    assert outcome.status == "timeout" and outcome.error == "timed out after 1s"
    parent, grandchild = (int(p) for p in pids.read_text().split())
    assert parent == executor.last_pid
    assert gone(parent) and gone(grandchild)


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    code = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\ntime.sleep(60)\n")
    executor = ProcessExecutor(tmp_path / "runs", python(code), grace_s=0.5)
    outcome = executor.execute(DAG, TASK, attempt(timeout_s=0.5), Control())
    assert outcome.status == "timeout"
    assert executor.last_pid is not None and gone(executor.last_pid)


def test_a_failing_child_reports_its_error_line_and_keeps_its_output(tmp_path: Path) -> None:
    code = ("import sys\nprint('working...')\n"
            "print('error: the warehouse refused the login', file=sys.stderr)\n"
            "print('  hint: check the password', file=sys.stderr)\nsys.exit(1)\n")
    executor = ProcessExecutor(tmp_path / "runs", python(code))
    outcome = executor.execute(DAG, TASK, attempt(), Control())
    assert outcome.status == "failed"
    assert outcome.error == "the warehouse refused the login"
    assert outcome.log_file is not None and "working..." in outcome.log_file.read_text()


def test_a_cancelled_run_stops_its_child(tmp_path: Path) -> None:
    control = Control()
    control.request_stop(0.3)
    executor = ProcessExecutor(tmp_path / "runs", python("import time; time.sleep(60)"))
    outcome = executor.execute(DAG, TASK, attempt(timeout_s=None), control)
    assert outcome.status == "cancelled"
    assert executor.last_pid is not None and gone(executor.last_pid)


@pytest.mark.integration
def test_the_default_command_runs_a_real_task_and_returns_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [v for v in os.environ if v.startswith("LAKESTREAM_")]:
        monkeypatch.delenv(var)
    config = tmp_path / "lakestream.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                      "lake": {"root": str(tmp_path / "lake")}}))
    dag = transactions_dag()
    executor = ProcessExecutor(tmp_path / "runs", lakestream_command(str(config)))
    for name in ("sync", "quality"):
        outcome = executor.execute(dag, dag.task(name), Attempt("transactions", name, "r1", 1, 60),
                                   Control())
        assert outcome.status == "success", outcome.log_file and outcome.log_file.read_text()
    assert outcome.output.rows_in == 3 and "no orphan rows" in outcome.output.summary
    assert (tmp_path / "runs" / "r1" / "quality.1.log").is_file()


def test_a_grandchild_that_ignores_sigterm_is_killed_when_its_parent_exits(
        tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['python3', '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    executor = ProcessExecutor(tmp_path / "runs", python(code), grace_s=1)
    outcome = executor.execute(DAG, TASK, attempt(timeout_s=1.5), Control())
    assert outcome.status == "timeout"
    parent, grandchild = (int(p) for p in pids.read_text().split())
    assert gone(parent) and gone(grandchild)
