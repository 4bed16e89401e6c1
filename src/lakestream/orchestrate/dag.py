"""DAGs as code: tasks, their dependencies, and the policy a run follows.

A :class:`Dag` is plain data: named tasks with their upstream tasks, a cron
schedule, and the retry / timeout / SLA policy. The runner
(:mod:`.runner`) executes it; the Airflow writer (:mod:`.airflow`) maps the
same definition onto Airflow. A task is a function of a :class:`TaskContext`
that returns its row counts (:class:`TaskOutput`), or ``None``.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakestream.errors import UsageError

if TYPE_CHECKING:
    from lakestream.orchestrate.facade import TaskApi


@dataclass(frozen=True)
class TaskOutput:
    """What a task reports: rows read and written, and a one-line summary."""

    rows_in: int | None = None
    rows_out: int | None = None
    summary: str = ""


@dataclass
class TaskContext:
    """What a task function gets.

    Attributes:
        pipeline: The DAG's name.
        task: The task's name.
        run_id: The run this attempt belongs to.
        attempt: 1 for the first try, 2 for the first retry, ...
        api: The Lakestream facade (handed down from the layer above; ``None`` for tasks
            that need none); tasks reach it through :attr:`facade`.
        stop: Set when the run is asked to stop; long tasks may look at it.
        say: Progress callback (one line).
    """

    pipeline: str
    task: str
    run_id: str
    attempt: int
    api: TaskApi | None
    stop: threading.Event = field(default_factory=threading.Event)
    say: Callable[[str], None] = lambda _line: None

    @property
    def facade(self) -> TaskApi:
        """The facade, for tasks that call it.

        Raises:
            UsageError: The task runs without one (a runner made for tasks that need none).
        """
        if self.api is None:
            raise UsageError(f"task {self.pipeline}.{self.task} needs the Lakestream facade",
                             "run it with `lakestream run` or `lakestream task`")
        return self.api


TaskFn = Callable[[TaskContext], Any]

RUN_LOG_HOMES = ("warehouse", "gold")
"""The databases a DAG's run log may live in (:attr:`Dag.run_log`)."""


@dataclass(frozen=True)
class DagPolicy:
    """How a DAG runs (the default is the policy in docs/orchestration.md).

    Attributes:
        schedule: Cron expression (UTC) of the scheduler; hourly by default.
        retries: Retries of a failed task (so ``retries + 1`` attempts).
        retry_delay_s: Seconds between two attempts of a task.
        task_timeout_s: Limit of one attempt; ``None`` = only the run's limit applies.
        run_timeout_s: Limit of the whole run; tasks still running then are stopped.
        sla_s: A run not finished this long after its start is an SLA miss (alerted).
    """

    schedule: str = "0 * * * *"
    retries: int = 3
    retry_delay_s: float = 300.0
    task_timeout_s: float | None = None
    run_timeout_s: float = 7200.0
    sla_s: float | None = 1800.0


@dataclass(frozen=True)
class Task:
    """One task of a DAG.

    Attributes:
        name: Unique within the DAG.
        fn: What the task does.
        upstream: Tasks that must succeed first.
        description: One line for ``--help`` and the Airflow DAG's docs.
        retries: Overrides the DAG's retries for this task.
        timeout_s: Overrides the DAG's per-attempt limit for this task.
    """

    name: str
    fn: TaskFn
    upstream: tuple[str, ...] = ()
    description: str = ""
    retries: int | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Dag:
    """A pipeline as a graph of tasks, run at most once at a time.

    Attributes:
        name: The pipeline's name (``lakestream run NAME``).
        tasks: The tasks, in any order; dependencies come from ``upstream``.
        policy: Schedule, retries, timeouts, SLA.
        description: One line.
        success_task: A task whose job is to announce success; when the run
            includes it, the runner sends no success notification of its own.
        needs_kafka: Start a temporary embedded broker for a run when no Kafka is set.
        run_log: The database that keeps the DAG's run log (``pipeline_execution_log``):
            ``warehouse``, or ``gold`` for a pipeline whose results live in the gold store
            (weather, SPEC §4). A run is logged in that one database only.
    """

    name: str
    tasks: tuple[Task, ...]
    policy: DagPolicy = DagPolicy()
    description: str = ""
    success_task: str | None = None
    needs_kafka: bool = False
    run_log: str = "warehouse"

    def __post_init__(self) -> None:
        if self.run_log not in RUN_LOG_HOMES:
            raise ValueError(f"DAG {self.name}: run_log must be one of {RUN_LOG_HOMES}, "
                             f"not {self.run_log!r}")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"DAG {self.name}: task names must be unique: {names}")
        for task in self.tasks:
            unknown = set(task.upstream) - set(names)
            if unknown:
                raise ValueError(f"DAG {self.name}: {task.name} depends on unknown {unknown}")
        self.order()  # raises on a cycle

    def task(self, name: str) -> Task:
        """The task called ``name``.

        Raises:
            UsageError: No such task (with the closest name).
        """
        for task in self.tasks:
            if task.name == name:
                return task
        names = [t.name for t in self.tasks]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"tasks: {', '.join(names)}"
        raise UsageError(f"pipeline '{self.name}' has no task '{name}'", hint)

    def order(self) -> list[Task]:
        """The tasks in a dependency order (stable: declaration order breaks ties)."""
        done: list[Task] = []
        placed: set[str] = set()
        pending = list(self.tasks)
        while pending:
            ready = [t for t in pending if set(t.upstream) <= placed]
            if not ready:
                raise ValueError(f"DAG {self.name} has a cycle among {[t.name for t in pending]}")
            done.append(ready[0])
            placed.add(ready[0].name)
            pending.remove(ready[0])
        return done

    def downstream(self, name: str) -> set[str]:
        """Every task that depends on ``name``, directly or not."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            nxt = {t.name for t in self.tasks if set(t.upstream) & frontier} - found
            found |= nxt
            frontier = nxt
        return found

    def select(self, from_task: str | None = None, only: str | None = None) -> list[Task]:
        """The tasks a run executes, in order.

        Args:
            from_task: Start here: this task and everything downstream of it.
            only: Just this one task.

        Raises:
            UsageError: Both given, or an unknown task name.
        """
        if from_task and only:
            raise UsageError("give --from or --only, not both")
        if only:
            return [self.task(only)]
        if from_task:
            keep = {self.task(from_task).name} | self.downstream(from_task)
            return [t for t in self.order() if t.name in keep]
        return self.order()

    def retries_of(self, task: Task) -> int:
        """Retries of ``task`` (its own, else the DAG's)."""
        return self.policy.retries if task.retries is None else task.retries

    def timeout_of(self, task: Task) -> float | None:
        """Per-attempt limit of ``task`` (its own, else the DAG's), before the run's limit."""
        return task.timeout_s if task.timeout_s is not None else self.policy.task_timeout_s


def chain(*tasks: Task) -> tuple[Task, ...]:
    """``tasks`` as a straight line: each depends on the one before it."""
    linked: list[Task] = []
    for i, task in enumerate(tasks):
        upstream = (tasks[i - 1].name,) if i else ()
        linked.append(Task(task.name, task.fn, upstream, task.description, task.retries,
                           task.timeout_s))
    return tuple(linked)


def as_output(value: Any) -> TaskOutput:
    """A task's return value as a :class:`TaskOutput`.

    Accepts ``None``, a :class:`TaskOutput`, an ``int`` (rows written), or any
    report object with ``rows_in`` / ``rows_out`` (and optionally ``summary``).
    """
    if value is None:
        return TaskOutput()
    if isinstance(value, TaskOutput):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return TaskOutput(rows_out=value)
    rows_in = getattr(value, "rows_in", None)
    rows_out = getattr(value, "rows_out", None)
    summary = getattr(value, "summary", "")
    return TaskOutput(
        int(rows_in) if rows_in is not None else None,
        int(rows_out) if rows_out is not None else None,
        str(summary or ""),
    )
