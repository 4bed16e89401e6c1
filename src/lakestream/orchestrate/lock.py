"""At most one active run per DAG, across processes and machines sharing the warehouse.

The lock is a row in ``orchestrate_dag_locks`` (a table this module owns and
creates on first use): the DAG's name is the primary key, so of two runs that
insert it at once exactly one succeeds. The row names its holder (host, PID,
run id) and carries a heartbeat the holder refreshes. A lock whose holder is
dead is taken over: same host and the PID is gone (or a zombie), or the
heartbeat is older than ``stale_after_s`` (the holder's machine died or lost
the database).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from dataclasses import dataclass
from types import TracebackType

import psutil
import sqlalchemy as sa

from lakestream.errors import LakestreamError, TerminalError, WarehouseError
from lakestream.retry import DAG_LOCK
from lakestream.warehouse.failures import run_in_transaction
from lakestream.warehouse.runlog import ensure_table, utcnow
from lakestream.warehouse.schema import MYSQL_OPTIONS, STAMP

log = logging.getLogger(__name__)

lock_metadata = sa.MetaData()

dag_locks = sa.Table(
    "orchestrate_dag_locks",
    lock_metadata,
    sa.Column("dag", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("holder_host", sa.String(255), nullable=False),
    sa.Column("holder_pid", sa.Integer(), nullable=False),
    sa.Column("acquired_at", STAMP, nullable=False),
    sa.Column("heartbeat_at", STAMP, nullable=False),
    comment="The active run of each DAG (lakestream run / schedule): at most one.",
    **MYSQL_OPTIONS,
)


class DagLockedError(LakestreamError, TerminalError):
    """Another run of the same DAG is active."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a DAG's lock."""

    dag: str
    run_id: str
    host: str
    pid: int
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime

    def describe(self) -> str:
        """``run R (pid P on host H, since T)``."""
        since = self.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {since})"


def why_dead(holder: LockHolder, host: str, now: dt.datetime, stale_after_s: float) -> str | None:
    """Why ``holder`` can no longer be running, or ``None`` if it may be.

    Args:
        holder: The lock row.
        host: This machine's name.
        now: Current UTC time (naive).
        stale_after_s: Heartbeat age after which a holder on another host is dead.
    """
    age = (now - holder.heartbeat_at).total_seconds()
    if age > stale_after_s:
        return f"no heartbeat for {age:.0f}s"
    if holder.host == host and not _process_alive(holder.pid):
        return f"process {holder.pid} is gone"
    return None


def _process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


class DagLock:
    """The lock of one DAG for one run; a context manager that heartbeats while held.

    Args:
        engine: The warehouse engine.
        dag: The DAG's name.
        run_id: The run that wants the lock.
        heartbeat_s: How often the holder refreshes its heartbeat.
        stale_after_s: Heartbeat age after which the holder counts as dead.
        host: This machine's name (default: the hostname).
        pid: This process (default: ``os.getpid()``).
    """

    def __init__(self, engine: sa.Engine, dag: str, run_id: str, heartbeat_s: float = 10.0,
                 stale_after_s: float = 60.0, host: str | None = None,
                 pid: int | None = None) -> None:
        self.engine = engine
        self.dag = dag
        self.run_id = run_id
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.retry = DAG_LOCK
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- acquire / release -----------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lock, taking it over from a dead holder.

        Raises:
            DagLockedError: A live run holds it.
        """
        ensure_table(self.engine, dag_locks)
        for _ in range(5):
            if self._insert():
                return
            holder = self.holder()
            if holder is None:
                continue  # released between our insert and our read: try again
            reason = why_dead(holder, self.host, utcnow(), self.stale_after_s)
            if reason is None:
                raise DagLockedError(
                    f"pipeline '{self.dag}' is already running: {holder.describe()}",
                    "wait for it to finish; at most one run of a DAG is active at a time")
            if self._remove(holder):
                log.warning("took over the lock of %s from %s: %s", self.dag, holder.describe(),
                            reason)
        raise DagLockedError(f"could not take the lock of pipeline '{self.dag}'",
                             "another run keeps taking it; try again")

    def release(self) -> None:
        """Give the lock back (only if this run still holds it)."""
        statement = dag_locks.delete().where(dag_locks.c.dag == self.dag,
                                             dag_locks.c.run_id == self.run_id)
        run_in_transaction(self.engine, lambda conn: conn.execute(statement), self.retry,
                           "releasing the DAG lock")

    def heartbeat(self) -> bool:
        """Refresh the heartbeat; ``False`` if this run no longer holds the lock."""
        statement = (dag_locks.update()
                     .where(dag_locks.c.dag == self.dag, dag_locks.c.run_id == self.run_id)
                     .values(heartbeat_at=utcnow()))
        result, _ = run_in_transaction(self.engine, lambda conn: conn.execute(statement),
                                       self.retry, "refreshing the DAG lock")
        return bool(result.rowcount)

    def holder(self) -> LockHolder | None:
        """The current holder of this DAG's lock, if any."""
        query = sa.select(dag_locks).where(dag_locks.c.dag == self.dag)
        row, _ = run_in_transaction(self.engine, lambda conn: conn.execute(query).first(),
                                    self.retry, "reading the DAG lock")
        if row is None:
            return None
        m = row._mapping
        return LockHolder(m["dag"], m["run_id"], m["holder_host"], int(m["holder_pid"]),
                          m["acquired_at"], m["heartbeat_at"])

    def _insert(self) -> bool:
        now = utcnow()
        statement = dag_locks.insert().values(dag=self.dag, run_id=self.run_id,
                                              holder_host=self.host, holder_pid=self.pid,
                                              acquired_at=now, heartbeat_at=now)
        try:
            run_in_transaction(self.engine, lambda conn: conn.execute(statement), self.retry,
                               "taking the DAG lock")
        except WarehouseError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                return False
            raise
        return True

    def _remove(self, holder: LockHolder) -> bool:
        """Delete ``holder``'s row if it is unchanged (another taker may be faster)."""
        statement = dag_locks.delete().where(dag_locks.c.dag == self.dag,
                                             dag_locks.c.run_id == holder.run_id,
                                             dag_locks.c.heartbeat_at == holder.heartbeat_at)
        result, _ = run_in_transaction(self.engine, lambda conn: conn.execute(statement),
                                       self.retry, "taking over the DAG lock")
        return bool(result.rowcount)

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> DagLock:
        self.acquire()
        self._stop.clear()
        self._beat = threading.Thread(target=self._beat_loop, name=f"lock-{self.dag}",
                                      daemon=True)
        self._beat.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=self.heartbeat_s + 5)
        try:
            self.release()
        except Exception as error:  # the heartbeat goes stale and frees it anyway
            log.warning("could not release the lock of %s: %s", self.dag, error)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self.heartbeat():
                    log.error("run %s lost the lock of %s (taken over as stale)", self.run_id,
                              self.dag)
                    return
            except Exception as exc:
                log.warning("could not refresh the lock of %s: %s", self.dag, exc)
