"""A consumer that buffers per partition and hands batches to a committing sink.

It is the shared loop of ``ingest`` (Kafka → lake) and ``process`` (Kafka →
derived topics): subscribe with a consumer group, ask the subclass where each
assigned partition starts (its own durable store, not Kafka, is the truth),
buffer messages, flush on size or time, flush on revoke, and stop cleanly on
:meth:`stop` or when idle.

With ``until_idle`` the run stops once every partition of the subscribed
topics is read to its end here or owned by another live member of the group;
:mod:`lakestream.kafka.drain` says how that is decided without trusting
Tansu's watermarks, and why it holds after a crash left dead members behind.

A flush that fails with a transient error (the sink is down) never puts the
loop to sleep: the partitions are paused, the loop keeps polling (so the
consumer stays in its group however long the outage), the flush is tried
again on the :data:`~lakestream.retry.STREAMING` policy's schedule, and the
partitions resume once it succeeds (:mod:`lakestream.kafka.outage`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from lakestream.config import Settings
from lakestream.errors import LakestreamError
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.client import OFFSET_BEGINNING, admin_client, consumer_config
from lakestream.kafka.drain import (
    DrainError,
    DrainTracker,
    DrainVerdict,
    PartitionProgress,
    describe_partitions,
)
from lakestream.kafka.flusher import BackgroundFlusher
from lakestream.kafka.group_repair import AssignmentWatch
from lakestream.kafka.outage import SinkOutage
from lakestream.retry import STREAMING, STREAMING_STOP_S, RetryPolicy, RetrySchedule

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class ConsumeReport:
    """What a consumer run read."""

    consumed: int = 0
    flushes: int = 0
    started: float = field(default_factory=time.monotonic)
    assigned_at: float | None = None
    partitions: dict[tuple[str, int], PartitionProgress] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started


@dataclass
class ConsumeOptions:
    """How one consumer run behaves."""

    group_id: str
    until_idle: bool = False
    idle_timeout_s: float = 3.0
    flush_interval_s: float = 5.0
    max_batch_records: int = 200_000
    max_batch_bytes: int = 64 * 1024 * 1024
    retry: RetryPolicy = STREAMING
    """How a sink that is down is waited for (and other work retried: start offsets)."""
    drain_timeout_s: float = 120.0
    progress: Callable[[Any, dict[str, int]], None] | None = None
    progress_every_s: float = 5.0
    status: Callable[[str], None] | None = None


class BatchingConsumer(ABC):
    """Consume ``topics`` in a group and flush per-partition batches to a sink.

    A subclass whose :meth:`flush_partition` and :meth:`after_flush` may run in
    another thread than the loop sets ``background_flush``: its rounds are then
    written beside consuming (:mod:`lakestream.kafka.flusher`).

    A flush tries once: it raises a transient error to have the loop wait (its
    partitions paused, polling on) and try it again, whole (``flush_what`` names
    it in the warnings). A sink's flush must therefore be idempotent: what a
    failed try committed is skipped by the next (each sink resumes from its own
    durable offsets).
    """

    background_flush = False
    flush_what = "flush to the sink"

    def __init__(self, settings: Settings, bootstrap: str, topics: Sequence[str],
                 options: ConsumeOptions, report: ConsumeReport) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = list(dict.fromkeys(topics))
        self.options = options
        self.report = report
        self.buffers: dict[tuple[str, int], PartitionBuffer] = {}
        self.stopping = False
        self._consumer: Any = None
        self._last_message = time.monotonic()
        self.drain = DrainTracker(options.group_id, self.topics, options.idle_timeout_s,
                                  settings.kafka.session_timeout_ms / 1000,
                                  options.drain_timeout_s)
        self.report.partitions = self.drain.history
        self._checked_at = 0.0
        self._said = ("", 0.0)
        self._verdict = DrainVerdict(False, "the group to assign partitions")
        self._flusher: BackgroundFlusher | None = None
        self._round_error: BaseException | None = None
        # the background round submitted last, kept until it succeeds (a failed one is
        # submitted again: nothing newer is written before it, so offsets stay in order)
        self._round: list[PartitionBuffer] | None = None
        self._round_committed = False  # its buffers are durable; only after_flush failed
        self._outage: SinkOutage | None = None
        self._retries: dict[str, tuple[RetrySchedule, float]] = {}
        # a poll never brings more than a batch: a round holds at most max_batch_records
        # of a partition, as the setting says, however much the topic has waiting
        self._per_poll = max(1, min(20_000, options.max_batch_records))
        self._watch = AssignmentWatch(options.group_id, self.topics, bootstrap,
                                      settings.kafka.librdkafka_properties(),
                                      settings.kafka.session_timeout_ms / 1000)

    # -- what a subclass provides ---------------------------------------------------------

    @abstractmethod
    def start_offset(self, topic: str, partition: int) -> int | None:
        """Settle any crash leftovers; the next offset to consume (``None``: the start)."""

    @abstractmethod
    def flush_partition(self, buffer: PartitionBuffer) -> None:
        """Durably commit the buffered messages (raise to keep them uncommitted)."""

    def flush_buffers(self, buffers: list[PartitionBuffer]) -> None:
        """Durably commit a round of buffers; by default one by one (:meth:`flush_partition`).

        A sink that can commit several partitions at once overrides this.
        """
        for buf in buffers:
            self.flush_partition(buf)

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """The next offset the sink holds, mirrored to Kafka for lag tools."""
        return None

    def after_flush(self) -> None:  # noqa: B027 - optional hook
        """Called after every flush round."""

    def poll_more(self) -> int:
        """Called every loop turn: other sources to poll; returns records read."""
        return 0

    def between_batches(self) -> None:  # noqa: B027 - optional hook
        """Called every loop turn, outside any flush: a subclass's periodic checks."""

    def unfinished_sources(self) -> list[tuple[str, int]]:
        """Partitions of :meth:`poll_more`'s own sources not read to their end (drain check)."""
        return []

    def finish(self) -> None:  # noqa: B027 - optional hook
        """Called once after the last flush, before the consumer closes."""

    def partition_revoked(self, topic: str, partition: int) -> None:  # noqa: B027
        """The partition went to another consumer."""

    # -- the loop -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to flush, commit and return (safe from a signal handler)."""
        self.stopping = True

    def run(self) -> Any:
        """Consume until :meth:`stop` (or until idle); returns the report."""
        from confluent_kafka import Consumer

        config = consumer_config(self.settings, self.bootstrap, self.options.group_id)
        config["enable.partition.eof"] = True  # the fetcher's end of a partition, for draining
        config["error_cb"] = self._on_error
        self._consumer = Consumer(config, logger=logging.getLogger("lakestream.kafka"))
        if self.topics:
            self._consumer.subscribe(self.topics, on_assign=self._on_assign,
                                     on_revoke=self._on_revoke, on_lost=self._on_revoke)
            self._watch.waiting()
            if self.options.until_idle:
                self.drain.admin = admin_client(
                    self.bootstrap, **self.settings.kafka.librdkafka_properties())
        if self.background_flush:
            self._flusher = BackgroundFlusher(self._flush_round)
        try:
            failure = self._loop()
            self._final_flush()
            self.finish()
        finally:
            if self._flusher is not None:
                self._flusher.close()
            self._consumer.close()
        if failure is not None:
            raise failure
        return self.report

    def _loop(self) -> DrainError | None:
        last_progress = time.monotonic()
        while not self.stopping:
            messages = (self._consumer.consume(num_messages=self._per_poll, timeout=0.25)
                        if self.topics else _nap(0.25))
            consumed = self._buffer(messages) if messages else 0
            extra = self.poll_more()
            self.between_batches()
            if consumed or extra:
                self.report.consumed += consumed + extra
                self._last_message = time.monotonic()
                if extra:
                    self.drain.progress_at = self._last_message
            if self._round_error is not None:
                raise self._round_error
            if self._flusher is not None:
                self._flush_in_background()
            else:
                self._flush_in_foreground()
            now = time.monotonic()
            self._check_group(now)
            if self.options.progress and now - last_progress >= self.options.progress_every_s:
                self.options.progress(self.report, self.lag())
                last_progress = now
            if self.options.until_idle and self._idle(now):
                if self._drained(now):
                    return None
                if self.drain.stalled_for() >= self.options.drain_timeout_s:
                    return self.drain.failure(self._verdict)
        return None

    def _buffer(self, messages: list[Any]) -> int:
        """Add the records to their partitions' buffers; returns how many were records."""
        from confluent_kafka import KafkaError

        before = {key: len(buf) for key, buf in self.buffers.items()}
        records = 0
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.drain.end_of_partition((m.topic(), m.partition()), m.offset())
                else:
                    log.warning("kafka: %s", error)
                continue
            records += 1
            buf = self.buffers.get((m.topic(), m.partition()))
            if buf is not None:  # else: a partition we no longer own
                buf.add(m.value(), m.key(), m.offset(), m.timestamp()[1])
        for key, buf in self.buffers.items():
            start = before.get(key, 0)
            if len(buf) > start:
                self.drain.records(key, buf.offsets[start], buf.offsets[-1], len(buf) - start)
        return records

    def _idle(self, now: float) -> bool:
        """No record for the idle timeout (the drain check then decides, assigned or not)."""
        return now - self._last_message >= self.options.idle_timeout_s

    def _drained(self, now: float) -> bool:
        """Whether every partition is drained here or owned by a live member (says why not)."""
        if now - self._checked_at < 0.5:
            return False
        self._checked_at = now
        unfinished = self.unfinished_sources()
        if not self.topics and not unfinished:
            return True
        verdict = self._verdict = (self.drain.verdict(self._consumer) if self.topics
                                   else DrainVerdict(True))
        if unfinished:
            verdict = self._verdict = DrainVerdict(
                False, f"the end of {describe_partitions(unfinished)}",
                left=sorted({*verdict.left, *unfinished}), others=verdict.others)
        if verdict.done:
            if verdict.others:
                self._say(f"drained; {describe_partitions(verdict.others)} owned by other live "
                          "members of the group, left to them")
            return True
        line = self.drain.waiting_line(verdict)
        said, said_at = self._said
        if (verdict.waiting_for != said and now - said_at >= 1.0) or (
                now - said_at >= self.options.progress_every_s):
            self._say(line)
            self._said = (verdict.waiting_for, now)
        return False

    def _check_group(self, now: float) -> None:
        """No assignment for long: unstick a coordinator waiting on a departed leader."""
        line = self._watch.check(self._consumer, now)
        if line is not None and self.options.status is not None:
            self.options.status(line)
        elif line is not None:
            log.warning("%s", line)

    def _say(self, line: str) -> None:
        if self.options.status is not None:
            self.options.status(line)
        else:
            log.info("%s", line)

    def _on_error(self, error: Any) -> None:
        """librdkafka's error callback: a broker that cannot be reached is worth saying."""
        from confluent_kafka import KafkaError

        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT,
                            KafkaError._RESOLVE):
            self.drain.broker_failed(f"Kafka at {self.bootstrap} unreachable ({error.str()})")
        log.debug("kafka error: %s", error)

    def _should_flush(self) -> bool:
        pending = [b for b in self.buffers.values() if len(b)]
        if not pending:
            return False
        if self._batch_full(pending):
            return True
        return time.monotonic() - min(b.first_at for b in pending) >= self.options.flush_interval_s

    def _flush_in_foreground(self) -> None:
        """Flush when due; during an outage, when the next try is due (never sleeps)."""
        if self._outage is not None:
            if not self._outage.due():
                return
        elif not self._should_flush():
            return
        try:
            self.flush_all()
        except Exception as exc:
            self._flush_failed(exc)
            return
        self._flush_recovered()
        self._last_message = time.monotonic()  # idle time counts waiting, not flushing

    def _flush_in_background(self) -> None:
        """Collect a finished round; start the next one (a failed one again, when due)."""
        assert self._flusher is not None
        if self._flusher.finished:  # tell Kafka now; a failed round pauses or raises here
            self._settle_round()
        if self._outage is not None:
            if self._flusher.busy or not self._outage.due():
                return
            if self._round is None:  # a revocation took the failed round's partitions
                self._flush_recovered()
            else:
                self._flusher.submit(self._round)
            return
        if self._should_flush():
            self._flush_beside()

    def _flush_beside(self) -> None:
        """Hand the full buffers to the flush thread; wait only if a round is still running
        and the new buffers outgrew the batch size (back-pressure)."""
        assert self._flusher is not None
        if self._flusher.busy and not self._batch_full(list(self.buffers.values())):
            return
        if not self._settle_round():
            return  # the round failed: it goes again first, when the outage says so
        full = []
        for key, buf in list(self.buffers.items()):
            if len(buf):
                self.buffers[key] = PartitionBuffer(*key)
                full.append(buf)
        if full:
            self._round, self._round_committed = full, False
            self._flusher.submit(full)

    def _flush_failed(self, exc: Exception) -> None:
        """A flush failed: wait it out (paused, polling) if the policy retries it, else raise."""
        if not self.options.retry.retries(exc):
            raise exc
        if self._outage is None:
            self._outage = SinkOutage(self._consumer, self.options.retry, self.flush_what, log)
        self._outage.failed(exc)  # raises once the policy gives up

    def _flush_recovered(self) -> None:
        if self._outage is not None:
            self._outage.resume()
            self._outage = None

    def _final_flush(self) -> None:
        """The last flush of a run; a consumer asked to stop tries for a bounded time only."""
        policy = self.options.retry
        if self.stopping:
            policy = replace(policy, within_s=STREAMING_STOP_S)
        policy.call(self.flush_all, self.flush_what, logger=log)
        self._outage = None  # closing: nothing to resume

    def _batch_full(self, buffers: list[PartitionBuffer]) -> bool:
        return (sum(b.nbytes for b in buffers) >= self.options.max_batch_bytes
                or any(len(b) >= self.options.max_batch_records for b in buffers))

    def _flush_round(self, buffers: list[PartitionBuffer]) -> list[tuple[str, int]]:
        """One round, in the flush thread: commit the buffers, then the after-flush hook.

        Tried again whole after a transient failure; buffers a try made durable are not
        committed (nor counted) twice.
        """
        if not self._round_committed:
            self._commit_buffers(buffers)
            self._round_committed = True
        self.after_flush()
        return [(b.topic, b.partition) for b in buffers]

    def _collect_round(self) -> bool:
        """Wait for the round in flight (if any), then tell Kafka what it made durable.

        Returns whether a round was collected. Raises what the round raised; the round is
        then kept, to be submitted again.
        """
        if self._flusher is None or not (self._flusher.busy or self._flusher.finished):
            return False
        keys = self._flusher.wait()
        self._round, self._round_committed = None, False
        for key in keys:
            if key in self.buffers:
                self._commit_kafka(*key)
        return True

    def _settle_round(self) -> bool:
        """:meth:`_collect_round`, a transient failure turned into an outage.

        Returns whether the way is clear: no failed round waits to go again.
        """
        try:
            collected = self._collect_round()
        except Exception as exc:
            self._flush_failed(exc)
            return False
        if collected:
            self._flush_recovered()
        return self._round is None

    def flush_all(self) -> None:
        """Flush every partition that has buffered messages, then the after-flush hook.

        A failed background round goes first, so that offsets are committed in order.
        Raises what a flush raised (its buffers are kept: call again to retry).
        """
        if self._flusher is not None:
            self._collect_round()
            if self._round is not None:
                self._flusher.submit(self._round)
                self._collect_round()
        flushed = False
        for key in list(self.buffers):
            flushed |= self._flush(key)
        if flushed:
            self.after_flush()

    def _flush(self, key: tuple[str, int]) -> bool:
        buf = self.buffers.get(key)
        if buf is None or not len(buf):
            return False
        self._commit_buffers([buf])
        self._commit_kafka(*key)
        buf.clear()
        return True

    def _commit_buffers(self, buffers: list[PartitionBuffer]) -> None:
        """Make the buffers durable through the sink and count them."""
        self.flush_buffers(buffers)
        for buf in buffers:
            self.report.flushes += 1
            self.drain.committed((buf.topic, buf.partition), len(buf))

    def retry(self, action: Callable[[], T], what: str) -> T:
        """Run ``action`` now, retrying transient failures on the consumer's policy.

        It sleeps between tries: for work outside the flush rounds and the polling
        loop's turns (a partition's start offset, the table feeds' first load).
        """
        policy = self.options.retry
        if self.stopping:
            policy = replace(policy, within_s=STREAMING_STOP_S)
        return policy.call(action, what, logger=log)

    def retry_when_due(self, action: Callable[[], Any], what: str) -> None:
        """Run ``action`` unless a failed try's retry is not due yet (for the loop's turns).

        A transient failure plans the next try on the consumer's policy (logged) instead
        of sleeping; any other failure raises.
        """
        planned = self._retries.get(what)
        if planned is not None and time.monotonic() < planned[1]:
            return
        try:
            action()
        except Exception as exc:
            schedule = planned[0] if planned else self.options.retry.schedule(what, logger=log)
            wait = schedule.failed(exc)  # raises what may not be retried
            self._retries[what] = (schedule, time.monotonic() + wait)
            return
        self._retries.pop(what, None)

    def _commit_kafka(self, topic: str, partition: int) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offset = self.committed_offset(topic, partition)
        if offset is None:
            return
        try:
            self._consumer.commit(offsets=[TopicPartition(topic, partition, offset)],
                                  asynchronous=True)
        except KafkaException as exc:  # informational only: the sink's store is the truth
            log.debug("offset commit to Kafka failed: %s", exc)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        starts = []
        for tp in partitions:
            start = self._start(tp.topic, tp.partition)
            tp.offset = OFFSET_BEGINNING if start is None else start
            self.buffers[(tp.topic, tp.partition)] = PartitionBuffer(tp.topic, tp.partition)
            starts.append(((tp.topic, tp.partition), start))
            log.info("assigned %s[%d] from offset %s", tp.topic, tp.partition, tp.offset)
        consumer.assign(partitions)
        if self._outage is not None:  # the sink is still down: read nothing new meanwhile
            self._outage.pause(partitions)
        else:  # librdkafka may keep a pause from before the partition was revoked
            consumer.resume(partitions)
        self.drain.assigned(starts)
        self._watch.assigned()
        self._last_message = time.monotonic()
        if self.report.assigned_at is None:
            self.report.assigned_at = time.monotonic()

    def _start(self, topic: str, partition: int) -> int | None:
        start: int | None = self.retry(lambda: self.start_offset(topic, partition),
                                       "recover the partition's committed state")
        return start

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        try:
            self._settle_round()  # never hand a partition over with its batch half written
        except BaseException as exc:  # raised in the loop, outside librdkafka's callback
            self._round_error = exc
        earlier = self._take_from_failed_round({(tp.topic, tp.partition) for tp in partitions})
        for tp in partitions:
            key = (tp.topic, tp.partition)
            try:
                if key in earlier:  # a failed round's batch of it goes first: offsets in order
                    self._flush_earlier(earlier[key])
                self._flush(key)
            except LakestreamError as exc:
                log.warning("could not flush %s[%d] on revoke: %s", tp.topic, tp.partition, exc)
            self.buffers.pop(key, None)
            self.partition_revoked(*key)
        self.drain.revoked((tp.topic, tp.partition) for tp in partitions)
        if not self.buffers:  # all of them went (an eager rebalance): a new assignment is due
            self._watch.waiting()

    def _take_from_failed_round(self, keys: set[tuple[str, int]]
                                ) -> dict[tuple[str, int], PartitionBuffer]:
        """The buffers of ``keys`` that a failed round holds, taken out of it."""
        if self._round is None or (self._flusher is not None and self._flusher.busy):
            return {}
        taken = {(b.topic, b.partition): b for b in self._round if (b.topic, b.partition) in keys}
        rest = [b for b in self._round if (b.topic, b.partition) not in keys]
        self._round = rest or None
        return taken

    def _flush_earlier(self, buf: PartitionBuffer) -> None:
        """Flush a revoked partition's batch from a failed round (one try, as on revoke)."""
        if not self._round_committed:
            self._commit_buffers([buf])
        self._commit_kafka(buf.topic, buf.partition)

    def lag(self) -> dict[str, int]:
        """Approximate lag per ``topic:partition`` from cached high watermarks.

        Tansu reports wrong high watermarks (docs/api.md): a hint, never a decision.
        """
        from confluent_kafka import TopicPartition

        lag = {}
        for topic, partition in self.buffers:
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                              cached=True)
            position = self.committed_offset(topic, partition) or 0
            if high is not None and high >= 0:
                lag[f"{topic}:{partition}"] = max(0, high - position)
        return lag


def _nap(seconds: float) -> list[Any]:
    time.sleep(seconds)
    return []
