"""The retry policies: what each retries, how long it waits, when it gives up, what it logs.

No test sleeps: waits go to a recorder, or tenacity's ``wait_none``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import pytest
from tenacity.wait import wait_none

from lakestream import retry
from lakestream.errors import (
    BrokerRefusedError,
    BrokerUnavailableError,
    ConfigError,
    HttpSourceError,
    KsqlDbError,
    LakestreamError,
    StorageConflictError,
    StorageFullError,
    StorageUnavailableError,
    TransientError,
    WarehouseRefusedError,
    WarehouseUnavailableError,
    WebhookError,
)
from lakestream.retry import RetryPolicy

LOGGER = logging.getLogger("tests.retry")


class HttpDown(HttpSourceError, TransientError):
    """What an HTTP source's module raises when the server is down."""


class KsqlDown(KsqlDbError, TransientError):
    pass


class HookDown(WebhookError, TransientError):
    pass


# policy → (a transient error of its system, a transient error of another system)
POLICIES: dict[str, tuple[RetryPolicy, Callable[[str], Exception], Callable[[str], Exception]]] = {
    "WAREHOUSE": (retry.WAREHOUSE, WarehouseUnavailableError, StorageUnavailableError),
    "RUN_LOG": (retry.RUN_LOG, WarehouseUnavailableError, HttpDown),
    "DAG_LOCK": (retry.DAG_LOCK, WarehouseUnavailableError, BrokerUnavailableError),
    "HTTP_API": (retry.HTTP_API, HttpDown, WarehouseUnavailableError),
    "WEBHOOK": (retry.WEBHOOK, HookDown, HttpDown),
    "KSQLDB": (retry.KSQLDB, KsqlDown, HttpDown),
    "STREAMING": (retry.STREAMING, StorageUnavailableError, HttpDown),
}
TERMINAL = {  # a terminal error of each policy's own system
    "WAREHOUSE": WarehouseRefusedError, "RUN_LOG": WarehouseRefusedError,
    "DAG_LOCK": WarehouseRefusedError, "STREAMING": StorageFullError,
}


class Flaky:
    """Fails with ``errors`` in turn, then returns ``"done"``; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def fast(policy: RetryPolicy) -> RetryPolicy:
    return replace(policy, wait=wait_none())


def test_every_named_policy_is_listed_here() -> None:
    named = {name for name, value in vars(retry).items() if isinstance(value, RetryPolicy)}
    assert named == set(POLICIES)


@pytest.mark.parametrize("name", list(POLICIES))
def test_a_policy_retries_a_transient_error_of_its_system_until_it_succeeds(
        name: str, caplog: pytest.LogCaptureFixture) -> None:
    policy, own, _other = POLICIES[name]
    work = Flaky(own("down"), own("still down"))
    with caplog.at_level(logging.WARNING, logger="tests.retry"):
        assert fast(policy).call(work, "fetching x", logger=LOGGER) == "done"
    assert work.calls == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "tests.retry"]
    of = f" of {policy.attempts}" if policy.attempts else ""
    assert lines == [f"fetching x: down; retrying in 0.0s (try 2{of})",
                     f"fetching x: still down; retrying in 0.0s (try 3{of})"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "tests.retry")


@pytest.mark.parametrize("name", list(POLICIES))
def test_a_policy_does_not_retry_another_systems_or_a_foreign_exception(name: str) -> None:
    policy, _own, other = POLICIES[name]
    for error in (other("not mine"), ValueError("a bug"), ConfigError("bad config")):
        work = Flaky(error)
        with pytest.raises(type(error)) as caught:
            fast(policy).call(work, "x")
        assert caught.value is error and work.calls == 1


@pytest.mark.parametrize("name", list(TERMINAL))
def test_a_policy_never_retries_a_terminal_error_of_its_system(name: str) -> None:
    policy = fast(POLICIES[name][0])
    work = Flaky(TERMINAL[name]("refused"))
    with pytest.raises(TERMINAL[name]):
        policy.call(work, "x")
    assert work.calls == 1


@pytest.mark.parametrize("name", [n for n, (p, _, _) in POLICIES.items() if p.attempts])
def test_a_bounded_policy_gives_up_after_its_tries_with_the_last_error(name: str) -> None:
    policy, own, _other = POLICIES[name]
    assert policy.attempts is not None
    errors = [own(f"down {n}") for n in range(1, policy.attempts + 2)]
    work = Flaky(*errors)
    with pytest.raises(type(errors[0])) as caught:
        fast(policy).call(work, "x")
    assert work.calls == policy.attempts
    assert caught.value is errors[policy.attempts - 1]  # the last one, unchanged


def test_the_streaming_policy_has_no_limit() -> None:
    errors = [StorageUnavailableError(f"down {n}") for n in range(40)]
    work = Flaky(*errors)
    assert fast(retry.STREAMING).call(work, "x") == "done" and work.calls == 41


def test_waits_double_up_to_the_cap_plus_at_most_the_jitter() -> None:
    waits: list[float] = []
    policy = replace(retry.WAREHOUSE, attempts=8, base_delay_s=1.0, max_delay_s=10.0,
                     jitter_s=0.5)
    work = Flaky(*[WarehouseUnavailableError("down")] * 7)
    assert policy.call(work, "x", sleep=waits.append) == "done"
    assert len(waits) == 7
    for wait, base in zip(waits, [1, 2, 4, 8, 10, 10, 10], strict=True):
        assert base <= wait <= base + 0.5
    assert len({round(w - b, 6) for w, b in zip(waits, [1, 2, 4, 8, 10, 10, 10], strict=True)}) > 1


def test_without_jitter_the_waits_are_exact() -> None:
    waits: list[float] = []
    policy = replace(retry.HTTP_API, base_delay_s=0.5, max_delay_s=8, jitter_s=0)
    with pytest.raises(HttpDown):
        policy.call(Flaky(*[HttpDown("down")] * 9), "x", sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]  # 4 tries, 3 waits


def test_a_retry_after_the_server_sent_wins_but_is_capped() -> None:
    class Limited(HttpSourceError, TransientError):
        def __init__(self, after: float) -> None:
            super().__init__("HTTP 429")
            self.retry_after_s = after

    waits: list[float] = []
    policy = replace(retry.HTTP_API, max_delay_s=30.0)
    assert policy.call(Flaky(Limited(7), Limited(3600)), "x", sleep=waits.append) == "done"
    assert waits == [7.0, 30.0]


def test_a_time_limit_stops_retrying_even_with_tries_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    policy = replace(retry.STREAMING, within_s=5.0, base_delay_s=2.0, jitter_s=0)

    def advance(seconds: float) -> None:
        clock[0] += seconds

    import tenacity

    monkeypatch.setattr(tenacity.time, "monotonic", lambda: clock[0])  # tenacity's clock
    work = Flaky(*[StorageUnavailableError("down")] * 10)
    with pytest.raises(StorageUnavailableError):
        policy.call(work, "x", sleep=advance)
    monkeypatch.undo()
    assert work.calls == 3  # fails at 0 s, 2 s, 6 s: past 5 s, no fourth try
    assert clock[0] == 6.0


def test_an_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy("bad", attempts=0)


# -- the schedule: the same policy, for a loop that must not sleep ----------------------------


def test_a_schedule_plans_waits_logs_them_and_gives_up_at_the_limit(
        caplog: pytest.LogCaptureFixture) -> None:
    policy = replace(retry.WAREHOUSE, attempts=3, base_delay_s=1.0, jitter_s=0)
    schedule = policy.schedule("loading", logger=LOGGER)
    with caplog.at_level(logging.WARNING, logger="tests.retry"):
        assert schedule.failed(WarehouseUnavailableError("down")) == 1.0
        assert schedule.failed(WarehouseUnavailableError("down")) == 2.0
        last = WarehouseUnavailableError("still down")
        with pytest.raises(WarehouseUnavailableError) as caught:
            schedule.failed(last)
    assert caught.value is last and schedule.failures == 3
    assert [r.getMessage() for r in caplog.records] == [
        "loading: down; retrying in 1.0s (try 2 of 3)",
        "loading: down; retrying in 2.0s (try 3 of 3)"]


def test_a_schedule_raises_a_terminal_error_at_once() -> None:
    schedule = retry.STREAMING.schedule("writing")
    refused = StorageFullError("disk full")
    with pytest.raises(StorageFullError) as caught:
        schedule.failed(refused)
    assert caught.value is refused


def test_a_schedule_of_the_streaming_policy_never_gives_up() -> None:
    schedule = replace(retry.STREAMING, jitter_s=0).schedule("writing")
    waits = [schedule.failed(StorageConflictError("raced")) for _ in range(12)]
    assert waits[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0] and set(waits[6:]) == {30.0}


def test_the_streaming_policy_retries_what_a_streaming_sink_meets() -> None:
    for error in (StorageUnavailableError("s3 down"), StorageConflictError("raced"),
                  WarehouseUnavailableError("db down"), BrokerUnavailableError("no ack")):
        assert retry.STREAMING.retries(error), error
    for other in (StorageFullError("full"), BrokerRefusedError("gone"),
                  LakestreamError("unclassified"), OSError("raw")):
        assert not retry.STREAMING.retries(other), other
