"""At most one active run per DAG, across processes; a dead holder's lock is taken over."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.orchestrate.lock import DagLock, DagLockedError, LockHolder, why_dead
from lakestream.warehouse.runlog import utcnow

HOLD = textwrap.dedent("""
    import os, sys, time
    import sqlalchemy as sa
    from lakestream.orchestrate.lock import DagLock, DagLockedError
    from lakestream.warehouse.connection import make_engine
    engine = make_engine(sa.make_url(sys.argv[1]))
    lock = DagLock(engine, sys.argv[2], sys.argv[3], heartbeat_s=0.2)
    if len(sys.argv) > 5:  # wait for the starting signal, to start at once with the others
        print("ready", flush=True)
        while not os.path.exists(sys.argv[5]):
            time.sleep(0.005)
    try:
        with lock:
            print("acquired", flush=True)
            time.sleep(float(sys.argv[4]))
    except DagLockedError as exc:
        print("locked:", exc, flush=True)
        sys.exit(1)
""")


def holder_process(db: Path, dag: str, run_id: str, seconds: float = 60,
                   go: Path | None = None) -> subprocess.Popen[str]:
    """A process that takes the lock of ``dag`` (once ``go`` exists) and holds it."""
    extra = [str(go)] if go else []
    return subprocess.Popen([sys.executable, "-c", HOLD, f"sqlite:///{db}", dag, run_id,
                             str(seconds), *extra], stdout=subprocess.PIPE, text=True)


def wait_for_holder(engine: sa.Engine, dag: str, timeout_s: float = 20) -> LockHolder:
    probe = DagLock(engine, dag, "probe")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            holder = probe.holder()
        except Exception:  # the table may not exist yet
            holder = None
        if holder is not None:
            return holder
        time.sleep(0.05)
    raise AssertionError("no process took the lock")


def test_a_second_run_is_refused_with_who_holds_the_lock(engine: sa.Engine) -> None:
    with DagLock(engine, "weather", "run-a"):
        with pytest.raises(DagLockedError) as refused:
            DagLock(engine, "weather", "run-b").acquire()
        message = str(refused.value)
        assert "pipeline 'weather' is already running: run run-a" in message
        assert f"pid {os.getpid()}" in message
        DagLock(engine, "transactions", "run-c").acquire()  # other DAGs are independent
    DagLock(engine, "weather", "run-b").acquire()  # released on exit


def test_the_holder_heartbeats_while_it_runs(engine: sa.Engine) -> None:
    lock = DagLock(engine, "weather", "run-a", heartbeat_s=0.05)
    with lock:
        first = lock.holder()
        time.sleep(0.3)
        later = lock.holder()
    assert first is not None and later is not None
    assert later.heartbeat_at > first.heartbeat_at
    assert lock.holder() is None


def test_a_lock_whose_holder_was_killed_is_taken_over(
    engine: sa.Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = holder_process(tmp_path / "warehouse.db", "weather", "run-killed")
    try:
        seen = wait_for_holder(engine, "weather")
        assert seen.pid == holder.pid and seen.run_id == "run-killed"
        with pytest.raises(DagLockedError):
            DagLock(engine, "weather", "run-next").acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        holder.kill()
    with caplog.at_level(logging.WARNING), DagLock(engine, "weather", "run-next") as lock:
        holder_now = lock.holder()
        assert holder_now is not None and holder_now.run_id == "run-next"
    assert f"process {holder.pid} is gone" in caplog.text


def test_of_runs_started_at_once_exactly_one_takes_the_lock(
    engine: sa.Engine, tmp_path: Path
) -> None:
    DagLock(engine, "warmup", "w").acquire()  # the lock table exists, as after a first run
    go = tmp_path / "go"
    racers = [holder_process(tmp_path / "warehouse.db", "weather", f"run-{i}", 60, go)
              for i in range(4)]
    try:
        assert all(p.stdout and p.stdout.readline().strip() == "ready" for p in racers)
        go.touch()
        outputs = [p.stdout.readline().strip() for p in racers if p.stdout]
        assert sum(out == "acquired" for out in outputs) == 1, outputs
        losers = [p for p, out in zip(racers, outputs, strict=True) if out != "acquired"]
        assert all("is already running" in out for out in outputs if out != "acquired")
        assert [p.wait(timeout=30) for p in losers] == [1, 1, 1]
    finally:
        for p in racers:
            p.kill()
            p.wait()


def _holder(host: str, pid: int, heartbeat_age_s: float) -> LockHolder:
    now = utcnow()
    return LockHolder("weather", "r", host, pid, now, now - dt.timedelta(seconds=heartbeat_age_s))


def test_a_holder_is_dead_when_its_pid_is_gone_here_or_its_heartbeat_is_stale() -> None:
    here, now = "this-host", utcnow()
    assert why_dead(_holder(here, os.getpid(), 1), here, now, 60) is None
    assert why_dead(_holder("other-host", 1, 5), here, now, 60) is None  # its pid means nothing
    assert "no heartbeat" in str(why_dead(_holder("other-host", 1, 120), here, now, 60))
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert "is gone" in str(why_dead(_holder(here, dead.pid, 1), here, now, 60))


def test_a_stale_lock_of_another_machine_is_taken_over(engine: sa.Engine) -> None:
    remote = DagLock(engine, "weather", "remote-run", host="other-host", pid=1)
    remote.acquire()
    with pytest.raises(DagLockedError):
        DagLock(engine, "weather", "local-run", stale_after_s=60).acquire()
    time.sleep(0.3)
    with DagLock(engine, "weather", "local-run", stale_after_s=0.2) as lock:
        holder_now = lock.holder()
        assert holder_now is not None and holder_now.run_id == "local-run"
    assert remote.heartbeat() is False  # the old holder learns it lost the lock
