"""Where a task attempt runs: a child process (the default) or a thread (tests).

:class:`ProcessExecutor` runs ``python -m lakestream task PIPELINE TASK`` in a
new process group, so a task that hangs or leaks memory cannot take the
runner down, and a timeout stops it for sure: SIGTERM to the group (the task
flushes and exits), then SIGKILL after a grace period. The child's output
goes to ``<data_dir>/runs/<run_id>/<task>.<attempt>.log``.

:class:`ThreadExecutor` calls the task function in a thread of this process.
A thread cannot be killed: on timeout the attempt is abandoned (reported as
``timeout``) and left to finish in the background. It exists for tests and
debugging with in-process (fake) tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lakestream.orchestrate.dag import Dag, Task, TaskContext, TaskOutput, as_output
from lakestream.orchestrate.facade import TaskApi


@dataclass(eq=False)
class Control:
    """How a run tells a running attempt to stop.

    Attributes:
        stop: Set when the run should start nothing new (SIGTERM): the running
            attempt may finish, or run into its timeout.
        kill_at: ``time.monotonic()`` at which the running attempt is stopped
            anyway (a second SIGTERM, or a shutdown grace period).
    """

    stop: threading.Event = field(default_factory=threading.Event)
    kill_at: float | None = None

    def request_stop(self, grace_s: float | None = None) -> None:
        """Start nothing new; stop the running attempt after ``grace_s`` (``None``: never)."""
        self.stop.set()
        if grace_s is not None:
            at = time.monotonic() + grace_s
            self.kill_at = at if self.kill_at is None else min(self.kill_at, at)


@dataclass(frozen=True)
class Attempt:
    """One try of one task."""

    pipeline: str
    task: str
    run_id: str
    attempt: int
    timeout_s: float | None


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: ``success``, ``failed``, ``timeout`` or ``cancelled``."""

    status: str
    output: TaskOutput = field(default_factory=TaskOutput)
    error: str | None = None
    log_file: Path | None = None


class Executor(Protocol):
    """Runs one attempt of a task and reports how it ended."""

    def execute(self, dag: Dag, task: Task, attempt: Attempt, control: Control) -> Outcome:
        """Run ``attempt``; honour its timeout and ``control``."""


def _deadline(attempt: Attempt) -> float | None:
    return None if attempt.timeout_s is None else time.monotonic() + attempt.timeout_s


def _expired(deadline: float | None, control: Control) -> str | None:
    now = time.monotonic()
    if deadline is not None and now >= deadline:
        return "timeout"
    if control.kill_at is not None and now >= control.kill_at:
        return "cancelled"
    return None


class ThreadExecutor:
    """Runs task functions in a thread of this process (tests, debugging).

    Args:
        api: The facade handed to task functions.
        say: Progress callback handed to task functions.
    """

    def __init__(self, api: TaskApi | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.say = say or (lambda _line: None)

    def execute(self, dag: Dag, task: Task, attempt: Attempt, control: Control) -> Outcome:
        """Call ``task.fn`` in a daemon thread and wait for it, its timeout, or a kill."""
        result: dict[str, Any] = {}
        context = TaskContext(dag.name, task.name, attempt.run_id, attempt.attempt, self.api,
                              control.stop, self.say)

        def target() -> None:
            try:
                result["output"] = as_output(task.fn(context))
            except BaseException as exc:
                result["error"] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)

        thread = threading.Thread(target=target, name=f"task-{task.name}", daemon=True)
        thread.start()
        deadline = _deadline(attempt)
        while thread.is_alive():
            thread.join(0.02)
            ended = _expired(deadline, control) if thread.is_alive() else None
            if ended:
                return Outcome(ended, error=_limit_message(ended, attempt))
        if "error" in result:
            return Outcome("failed", error=result["error"])
        return Outcome("success", result.get("output", TaskOutput()))


CommandBuilder = Callable[[Attempt, Path], Sequence[str]]


def lakestream_command(config: str | None = None) -> CommandBuilder:
    """The default child command: ``python -m lakestream [--config C] task P T ...``."""

    def build(attempt: Attempt, result_file: Path) -> list[str]:
        head = [sys.executable, "-m", "lakestream"]
        if config:
            head += ["--config", config]
        return [*head, "task", attempt.pipeline, attempt.task, "--run-id", attempt.run_id,
                "--attempt", str(attempt.attempt), "--no-log", "--result-json", str(result_file)]

    return build


class ProcessExecutor:
    """Runs each attempt as a child process, stopped by its PID on timeout.

    Args:
        logs_dir: Folder of the attempts' output files (``<run_id>/<task>.<n>.log``).
        command: Builds the child's command line (default: ``lakestream task``).
        env: Extra environment for the child.
        grace_s: Seconds between SIGTERM and SIGKILL when an attempt is stopped.
    """

    def __init__(self, logs_dir: Path, command: CommandBuilder | None = None,
                 env: Mapping[str, str] | None = None, grace_s: float = 10.0) -> None:
        self.logs_dir = logs_dir
        self.command = command or lakestream_command()
        self.env = dict(env or {})
        self.grace_s = grace_s
        self.last_pid: int | None = None

    def execute(self, dag: Dag, task: Task, attempt: Attempt, control: Control) -> Outcome:
        """Start the child, wait for it (or its timeout, or a kill), read its result."""
        folder = self.logs_dir / attempt.run_id
        folder.mkdir(parents=True, exist_ok=True)
        log_file = folder / f"{task.name}.{attempt.attempt}.log"
        result_file = folder / f"{task.name}.{attempt.attempt}.json"
        result_file.unlink(missing_ok=True)
        with log_file.open("wb") as out:
            child = subprocess.Popen(
                list(self.command(attempt, result_file)), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True)
        self.last_pid = child.pid
        ended = self._wait(child, _deadline(attempt), control)
        if ended:
            self._stop(child)
            return Outcome(ended, error=_limit_message(ended, attempt), log_file=log_file)
        if child.returncode == 0:
            return Outcome("success", _read_result(result_file), log_file=log_file)
        return Outcome("failed", error=_error_line(log_file, child.returncode), log_file=log_file)

    @staticmethod
    def _wait(child: subprocess.Popen[bytes], deadline: float | None,
              control: Control) -> str | None:
        while True:
            try:
                child.wait(timeout=0.05)
                return None
            except subprocess.TimeoutExpired:
                ended = _expired(deadline, control)
                if ended:
                    return ended

    def _stop(self, child: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the child's process group, SIGKILL after the grace period; returns once
        every process of the group ended (a grandchild that ignores SIGTERM is killed too)."""
        for sig, wait_s in ((signal.SIGTERM, self.grace_s), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, sig)
            if _group_ended(child, time.monotonic() + wait_s):
                return


def _group_ended(child: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait until ``child`` and every other live process of its group ended (zombies, which
    only their parent can reap, count as ended); whether that happened by ``deadline``."""
    import psutil

    try:
        child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    while True:
        alive = []
        for process in psutil.process_iter(["status"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(process.pid) == child.pid and \
                        process.info["status"] != psutil.STATUS_ZOMBIE:
                    alive.append(process.pid)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _limit_message(ended: str, attempt: Attempt) -> str:
    if ended == "timeout":
        return f"timed out after {attempt.timeout_s:.3g}s"
    return "stopped: the run was cancelled"


def _read_result(path: Path) -> TaskOutput:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return TaskOutput()
    return TaskOutput(data.get("rows_in"), data.get("rows_out"), data.get("summary", ""))


def _error_line(log_file: Path, code: int) -> str:
    """The child's ``error: ...`` line, else its last line, else its exit status."""
    try:
        lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines()]
    except OSError:
        lines = []
    lines = [ln for ln in lines if ln]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    if code < 0:
        return f"killed by signal {-code}"
    return lines[-1] if lines else f"exited with status {code}"
