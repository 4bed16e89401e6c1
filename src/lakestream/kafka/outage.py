"""Waiting out a sink that is down without leaving the consumer group.

When a flush fails with a transient error (the lake's object store, the
warehouse or the broker of the derived topics is down), the consumer must not
sleep: a consumer that does not call ``poll`` for ``max.poll.interval.ms`` is
dropped from its group, its partitions go to another member, and the outage
becomes a rebalance storm. So it does what quixstreams' back-pressure does:
it pauses its assigned partitions (``poll`` then returns nothing for them but
keeps the membership, the heartbeats and the rebalance callbacks going),
keeps polling, tries the flush again when the retry policy says so (the
waits and warnings of :data:`lakestream.retry.STREAMING`), and resumes the
partitions once a flush succeeds. What is buffered stays buffered meanwhile,
in offset order, so nothing is lost or doubled.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lakestream.retry import RetryPolicy, RetrySchedule


class SinkOutage:
    """A sink that failed transiently: the consumer's partitions paused, the next try planned.

    Args:
        consumer: The confluent-kafka consumer whose partitions are paused.
        policy: When to try again (and when to give up).
        what: What the flush does, for the retry warnings ("write to the lake").
        logger: The consumer's logger.
    """

    def __init__(self, consumer: Any, policy: RetryPolicy, what: str,
                 logger: logging.Logger) -> None:
        self._consumer = consumer
        self._log = logger
        self.schedule: RetrySchedule = policy.schedule(what, logger=logger)
        self.started = time.monotonic()
        self.retry_at = self.started

    def failed(self, exc: BaseException) -> None:
        """Record a failed flush: pause what is assigned, plan the next try (logged).

        Raises:
            ``exc`` itself when the policy does not retry it, or gives up.
        """
        wait = self.schedule.failed(exc)
        self.retry_at = time.monotonic() + wait
        if self.schedule.failures == 1:
            self.pause(self.assigned())
            self._log.warning("consuming paused while the sink is unavailable; the consumer "
                              "keeps polling so that it stays in its group")

    def due(self) -> bool:
        """Whether the next try's time has come."""
        return time.monotonic() >= self.retry_at

    def assigned(self) -> list[Any]:
        """The partitions assigned to the consumer now."""
        return list(self._consumer.assignment())

    def pause(self, partitions: list[Any]) -> None:
        """Stop fetching ``partitions`` (newly assigned ones during the outage too)."""
        if partitions:
            self._consumer.pause(partitions)

    def resume(self) -> None:
        """The sink is back: fetch every assigned partition again."""
        partitions = self.assigned()
        if partitions:
            self._consumer.resume(partitions)
        self._log.warning("the sink is back after %.0fs and %d failed flush(es); consuming "
                          "resumed", time.monotonic() - self.started, self.schedule.failures)
