"""The scheduler: DAGs on their cron schedules, in the foreground, until stopped.

APScheduler 3 (``BlockingScheduler`` with one ``CronTrigger`` per DAG, in
UTC) decides when to fire; each fire starts one DAG run in a worker thread.
Two runs of a DAG never overlap: APScheduler keeps one instance per job, and
the run itself takes the DAG's lock in the warehouse (so two schedulers on two
machines do not overlap either).

On start, a run missed while the scheduler was down is run once (catch-up,
on by default): :func:`missed_fire` compares the last start recorded in the
run log with the cron schedule. It is a pure function of (now, last start,
cron), so the decision is tested with a fake clock.

:meth:`Scheduler.stop` (SIGTERM) starts nothing new; a running task finishes
or runs into its timeout (or into the grace period, if one is given).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from lakestream.errors import ConfigError, LakestreamError
from lakestream.orchestrate.dag import Dag
from lakestream.orchestrate.executors import Control

log = logging.getLogger(__name__)

_TINY = dt.timedelta(microseconds=1)
_MAX_STEPS = 100_000


def cron_trigger(expression: str) -> CronTrigger:
    """The APScheduler trigger of a five-field cron expression, in UTC.

    Raises:
        ConfigError: The expression is not valid cron.
    """
    try:
        return CronTrigger.from_crontab(expression, timezone=dt.UTC)
    except ValueError as exc:
        raise ConfigError(f"schedule '{expression}' is not a cron expression: {exc}",
                          "use five fields, e.g. '0 * * * *' for hourly") from None


def next_fire(cron: str, after: dt.datetime) -> dt.datetime | None:
    """The first time ``cron`` fires strictly after ``after`` (aware UTC)."""
    fire: dt.datetime | None = cron_trigger(cron).get_next_fire_time(None, after + _TINY)
    return fire


def missed_fire(now: dt.datetime, last_started: dt.datetime | None,
                cron: str) -> dt.datetime | None:
    """The fire time a catch-up run stands for, or ``None`` when nothing was missed.

    A fire was missed when the schedule fired (at or before ``now``) after the
    DAG last started. However many were missed, one run catches up; its time
    is the latest missed fire. A DAG that never ran has missed nothing.

    Args:
        now: Current time (aware).
        last_started: When a task of the DAG last started (aware), ``None`` if never.
        cron: The DAG's schedule.
    """
    if last_started is None:
        return None
    trigger = cron_trigger(cron)
    fire = trigger.get_next_fire_time(None, last_started + _TINY)
    if fire is None or fire > now:
        return None
    for _ in range(_MAX_STEPS):
        following = trigger.get_next_fire_time(fire, fire + _TINY)
        if following is None or following > now:
            break
        fire = following
    return fire


@dataclass(frozen=True)
class CatchUp:
    """A run to start at once because ``fire_time`` was missed."""

    dag: Dag
    fire_time: dt.datetime


StartRun = Callable[[Dag, Control, str], Any]


class Scheduler:
    """Runs DAGs on their schedules until :meth:`stop`.

    Args:
        dags: The DAGs to schedule.
        start_run: Runs one DAG once: ``(dag, control, reason)``; may raise.
        last_started: When a DAG last started (from the run log).
        catch_up: Run a missed run once on start.
        clock: Current aware UTC time (tests pass a fake).
    """

    def __init__(self, dags: Sequence[Dag], start_run: StartRun,
                 last_started: Callable[[Dag], dt.datetime | None], catch_up: bool = True,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.dags = list(dags)
        self.start_run = start_run
        self.last_started = last_started
        self.catch_up = catch_up
        self.clock = clock
        self._active: set[Control] = set()
        self._changed = threading.Condition()
        self._stopping = False
        self._apscheduler: BlockingScheduler | None = None

    def catch_ups(self) -> list[CatchUp]:
        """The runs missed while down, one per DAG at most (empty without catch-up)."""
        if not self.catch_up:
            return []
        now = self.clock()
        found = []
        for dag in self.dags:
            fire = missed_fire(now, self.last_started(dag), dag.policy.schedule)
            if fire is not None:
                found.append(CatchUp(dag, fire))
        return found

    def next_fires(self) -> dict[str, dt.datetime | None]:
        """When each DAG fires next."""
        now = self.clock()
        return {dag.name: next_fire(dag.policy.schedule, now) for dag in self.dags}

    def build(self) -> BlockingScheduler:
        """The APScheduler scheduler with one cron job per DAG and the catch-up runs."""
        scheduler = BlockingScheduler(timezone=dt.UTC)
        for dag in self.dags:
            scheduler.add_job(self._fire, cron_trigger(dag.policy.schedule), args=(dag, "cron"),
                              id=dag.name, name=f"{dag.name} ({dag.policy.schedule})",
                              coalesce=True, max_instances=1, misfire_grace_time=300)
        for missed in self.catch_ups():
            reason = f"catch-up of {missed.fire_time:%Y-%m-%d %H:%M} UTC"
            scheduler.add_job(self._fire, "date", run_date=self.clock(), args=(missed.dag, reason),
                              id=f"{missed.dag.name}-catch-up", misfire_grace_time=None)
        return scheduler

    def run(self) -> None:
        """Block until :meth:`stop`, then until the running DAG runs ended."""
        self._apscheduler = self.build()
        if not self._stopping:
            try:
                self._apscheduler.start()
            except Exception:
                if not self._stopping:
                    raise
                log.debug("the scheduler stopped while dispatching", exc_info=True)
        with self._changed:
            while self._active:
                self._changed.wait(0.2)

    def stop(self, grace_s: float | None = None) -> None:
        """Start nothing new; let running tasks finish (or stop them after ``grace_s``).

        A second call stops the running tasks at once.
        """
        again = self._stopping
        self._stopping = True
        for control in list(self._active):
            control.request_stop(0.0 if again else grace_s)
        if self._apscheduler is not None and self._apscheduler.running:
            self._apscheduler.shutdown(wait=False)

    def _fire(self, dag: Dag, reason: str) -> None:
        if self._stopping:
            return
        control = Control()
        with self._changed:
            self._active.add(control)
        try:
            log.info("starting %s (%s)", dag.name, reason)
            self.start_run(dag, control, reason)
        except LakestreamError as exc:
            log.warning("%s run not done (%s): %s", dag.name, reason, exc)
        except Exception:
            log.exception("%s run crashed (%s)", dag.name, reason)
        finally:
            with self._changed:
                self._active.discard(control)
                self._changed.notify_all()
