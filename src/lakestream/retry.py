"""The one retry policy module: how long Lakestream waits for each kind of dependency.

Every retry of a dependency goes through a :class:`RetryPolicy` (on tenacity).
A policy says how many tries (or how much time) a call gets, how long to wait
between them (exponential, capped, with random jitter so that many consumers do
not hammer a recovering server in step; a ``Retry-After`` the server sent wins),
which failures it retries, and it logs every retry at WARNING with the error,
the wait and the try number, on the caller's logger.

What is retried: only transient errors (:class:`~lakestream.errors.TransientError`),
and only those of the policy's systems. Each module maps its library's exceptions to
Lakestream's first, so the policies never see a driver exception:

========================  ====================================================================
policy                    library exceptions mapped to its transient errors
========================  ====================================================================
:data:`WAREHOUSE`,        SQLAlchemy / PyMySQL / psycopg: lost or refused connections,
:data:`RUN_LOG`,          deadlocks, serialization failures, a locked SQLite file
:data:`DAG_LOCK`          (``warehouse/failures.translate`` → ``WarehouseUnavailableError``)
:data:`HTTP_API`          httpx timeouts and transport errors, HTTP 429 and 5xx
                          (``OpenWeatherUnavailableError``, with the ``Retry-After``)
:data:`WEBHOOK`           httpx errors and any HTTP status >= 400 (``WebhookUnavailableError``)
:data:`KSQLDB`            httpx timeouts, transport and protocol errors
                          (``KsqlDbUnavailableError``)
:data:`STREAMING`         whatever a streaming consumer's sink raises as transient: the lake
                          (pyarrow's ``OSError``, delta-rs' I/O errors →
                          ``StorageUnavailableError``; lost commit races →
                          ``StorageConflictError``), the warehouse, Kafka (undelivered
                          derived records → ``BrokerUnavailableError``)
========================  ====================================================================

Two calling styles share one policy: :meth:`RetryPolicy.call` runs a function
and sleeps between tries; :meth:`RetryPolicy.schedule` is for a caller that must
not sleep (the consumer loop, which keeps polling Kafka while it waits:
:mod:`lakestream.kafka.consumer`) and asks when to try again.

Tests pass fast policies: policies are frozen dataclasses, so
``dataclasses.replace(WAREHOUSE, attempts=3, wait=wait_none())`` is one.

Not here, on purpose:

- The object store's own request retries (pyarrow's ``AwsStandardS3RetryStrategy``
  with 3 attempts, delta-rs' ``max_retries``/``retry_timeout``: ``lake/storage.py``,
  ``lake/delta.py``) are the libraries' inner layer; a failure they give up on
  surfaces as a ``StorageUnavailableError`` that :data:`STREAMING` retries.
- The Delta commit loops (``lake/delta.py``, ``lake/delta_files.py``,
  ``lake/delta_maintenance.py``, ``medallion/delta_tables.py``) and the re-plans of
  ``rebuild/delta.py``, ``ingest/replay.py`` and ``batchload/beam.py``: a
  commit that lost the race for log version ``V + 1`` is re-read and re-planned on
  the newer log. That is the optimistic-concurrency protocol of the table (what
  to commit depends on what won), not waiting for a dependency to come back;
  when it keeps losing it raises ``StorageConflictError``, which is transient and
  retried here.
- ``lake/reader.py`` re-reads a snapshot whose files a compaction removed meanwhile:
  the same kind of protocol, with no wait.
- ``orchestrate/runner.py`` retries whole task attempts on the DAG's policy
  (``retries``, ``retry_delay_s``): a scheduling rule users set per DAG, recorded
  attempt by attempt in the run log, not a dependency retry.
- Loops that wait for a state rather than retry a failed call keep their
  deadlines: created topics appearing in the metadata (``kafka/client.py``), the
  embedded broker's port (``kafka/broker.py``), a consumer group settling
  (``doctor.py``), the producer's rate limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import DoSleep, RetryCallState, Retrying
from tenacity.retry import retry_if_exception
from tenacity.stop import stop_after_attempt, stop_after_delay, stop_base, stop_never
from tenacity.wait import wait_base, wait_exponential, wait_random

from lakestream.errors import (
    BrokerError,
    HttpSourceError,
    KsqlDbError,
    LakestreamError,
    StorageError,
    TransientError,
    WarehouseError,
    WebhookError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How patiently one kind of dependency is retried.

    Attributes:
        name: What the policy is for (shown in docs and reprs).
        attempts: Tries in all (1 = no retry); ``None`` = no limit on the count.
        within_s: Give up once this many seconds passed since the first try;
            ``None`` = no limit on the time.
        base_delay_s: Wait after the first failure; doubled after each further one.
        max_delay_s: Cap on one wait (before jitter); also caps a ``Retry-After``.
        jitter_s: Up to this many seconds, at random, added to every wait.
        systems: Whose transient errors are retried (a terminal one never is).
        wait: A tenacity wait that replaces the exponential one (tests:
            ``wait_none()``); a ``Retry-After`` still wins.
    """

    name: str = "retry"
    attempts: int | None = 6
    within_s: float | None = None
    base_delay_s: float = 0.5
    max_delay_s: float = 15.0
    jitter_s: float = 0.0
    systems: tuple[type[LakestreamError], ...] = (LakestreamError,)
    wait: wait_base | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"retry policy {self.name!r}: attempts must be >= 1 or None")

    # -- what the policy decides ----------------------------------------------------------------

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another try: a transient error of one of the systems."""
        return isinstance(exc, TransientError) and isinstance(exc, self.systems)

    # -- calling with it ---------------------------------------------------------------------

    def call(self, fn: Callable[[], T], what: str, *, logger: logging.Logger | None = None,
             sleep: Callable[[float], None] | None = None) -> T:
        """Run ``fn`` until it succeeds, retrying what the policy retries.

        Args:
            fn: The work; it is run again whole after a failure.
            what: What ``fn`` does, for the log ("load orders into the warehouse").
            logger: Where each retry is logged (the caller's module logger).
            sleep: How to wait (tests pass a recorder).

        Raises:
            The last error, unchanged, when it may not be retried or the policy's
            limit is reached.
        """
        result: T = self.retrying(what, logger=logger, sleep=sleep)(fn)
        return result

    def retrying(self, what: str, *, logger: logging.Logger | None = None,
                 sleep: Callable[[float], None] | None = None) -> Retrying:
        """The tenacity ``Retrying`` of this policy (it re-raises the last error)."""
        return Retrying(
            stop=self._stop(),
            wait=_WaitForPolicy(self),
            retry=retry_if_exception(self.retries),
            before_sleep=_LogRetry(self, what, logger or log),
            sleep=sleep or time.sleep,
            reraise=True,
        )

    def schedule(self, what: str, *, logger: logging.Logger | None = None) -> RetrySchedule:
        """This policy for a caller that must not sleep: it asks when to try again."""
        return RetrySchedule(self.retrying(what, logger=logger))

    def _stop(self) -> stop_base:
        stops: list[stop_base] = []
        if self.attempts is not None:
            stops.append(stop_after_attempt(self.attempts))
        if self.within_s is not None:
            stops.append(stop_after_delay(self.within_s))
        if not stops:
            return stop_never
        combined = stops[0]
        for more in stops[1:]:
            combined = combined | more
        return combined


class RetrySchedule:
    """One policy's retries of one piece of work, driven by a loop that must not sleep.

    The loop tries, and after a failure asks :meth:`failed` how long to wait; it
    tries again when that time has come, doing other things meanwhile (a Kafka
    consumer keeps polling). The waits, limits and log lines are the policy's.
    """

    def __init__(self, retrying: Retrying) -> None:
        self._retrying = retrying
        self._state: RetryCallState | None = None

    @property
    def failures(self) -> int:
        """Failed tries so far."""
        return 0 if self._state is None else self._state.attempt_number

    def failed(self, exc: BaseException) -> float:
        """Record a failed try; the seconds to wait before the next one (logged).

        Raises:
            ``exc`` itself when it may not be retried or the policy's limit is reached.
        """
        if "idle_for" not in self._retrying.statistics:  # per thread in tenacity
            self._retrying.begin()
        if self._state is None:
            self._state = RetryCallState(self._retrying, None, (), {})
        else:
            self._state.prepare_for_next_attempt()
        self._state.set_exception((type(exc), exc, exc.__traceback__))
        action = self._retrying.iter(self._state)
        if isinstance(action, DoSleep):
            return float(action)
        raise exc  # pragma: no cover - tenacity re-raises before; kept for the type checker


class _WaitForPolicy(wait_base):
    """Exponential, capped, plus jitter; a ``retry_after_s`` on the error wins (capped)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.base: wait_base = policy.wait if policy.wait is not None else (
            wait_exponential(multiplier=policy.base_delay_s, max=policy.max_delay_s)
            + wait_random(0, policy.jitter_s))

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        asked = getattr(error, "retry_after_s", None)
        if isinstance(asked, int | float) and asked >= 0:
            return float(min(asked, self.policy.max_delay_s))
        return float(self.base(retry_state))


class _LogRetry:
    """Logs one retry at WARNING: what failed, why, the wait, and which try comes next."""

    def __init__(self, policy: RetryPolicy, what: str, logger: logging.Logger) -> None:
        self.policy, self.what, self.logger = policy, what, logger

    def __call__(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        reason = error.message if isinstance(error, LakestreamError) else (
            str(error) or type(error).__name__)
        upcoming = retry_state.attempt_number + 1
        of = f" of {self.policy.attempts}" if self.policy.attempts is not None else ""
        self.logger.warning("%s: %s; retrying in %.1fs (try %d%s)", self.what, reason,
                            retry_state.upcoming_sleep, upcoming, of)


# -- the named policies, one per kind of dependency -------------------------------------------

WAREHOUSE = RetryPolicy("warehouse", attempts=6, base_delay_s=0.5, max_delay_s=15.0,
                        jitter_s=0.5, systems=(WarehouseError,))
"""One warehouse (or gold store) transaction: 6 tries over ~16 s; redone whole each time."""

RUN_LOG = RetryPolicy("run log", attempts=4, base_delay_s=0.2, max_delay_s=2.0, jitter_s=0.2,
                      systems=(WarehouseError,))
"""A row of ``pipeline_execution_log``: 4 tries over ~1.5 s (a run must not wait on its log)."""

DAG_LOCK = RetryPolicy("DAG lock", attempts=5, base_delay_s=0.1, max_delay_s=1.0, jitter_s=0.1,
                       systems=(WarehouseError,))
"""The one-active-run lock's row: 5 tries over ~1.5 s."""

HTTP_API = RetryPolicy("HTTP API", attempts=4, base_delay_s=1.0, max_delay_s=30.0,
                       jitter_s=0.5, systems=(HttpSourceError,))
"""One request to OpenWeather: 4 tries (``weather.retries`` = 3 retries), 1 s doubling."""

WEBHOOK = RetryPolicy("webhook", attempts=5, base_delay_s=1.0, max_delay_s=30.0, jitter_s=0.5,
                      systems=(WebhookError,))
"""One notification POST, in the notifier's background thread: 5 tries over ~15 s."""

KSQLDB = RetryPolicy("ksqlDB", attempts=3, base_delay_s=0.5, max_delay_s=8.0, jitter_s=0.25,
                     systems=(KsqlDbError,))
"""One pull query (idempotent): 3 tries, 0.5 s then 1 s."""

STREAMING = RetryPolicy("streaming sink", attempts=None, base_delay_s=0.5, max_delay_s=30.0,
                        jitter_s=0.5, systems=(StorageError, WarehouseError, BrokerError))
"""A streaming consumer's sink (the lake, the warehouse, derived topics): no limit, 0.5 s
doubling to 30 s between flush tries. The consumer keeps polling meanwhile, its partitions
paused. A flush itself may use its dependency's own bounded policy for one unit of work
(``ingest --sink warehouse``: one transaction on :data:`WAREHOUSE`, ~16 s at most): that
is a quick redo of a dropped connection, not a loop around the outage."""

STREAMING_STOP_S = 15.0
"""How long a consumer that was asked to stop still tries to flush what it holds."""
