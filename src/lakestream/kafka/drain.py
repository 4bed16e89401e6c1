"""When ``--until-idle`` may stop: every partition read to its end, or owned by a live member.

"No record for a while" is not "drained" (issue #14, docs/operations.md). After a crash the
killed consumers stay members of the group until their session times out; a
restarted consumer may be given only some partitions, the rest going to members
that are dead, and a quiet loop would exit 0 with those never read. So a run
with ``--until-idle`` stops only when this holds for every partition of every
subscribed topic:

1. **Assigned here and read to its end.** It has been assigned for at least the
   idle timeout, no record of it arrived for the idle timeout, and this
   consumer's position is at or past the broker's high watermark, queried
   uncached *after* the quiet time began. Tansu's watermark is stale or the
   start of the last batch (docs/api.md): never above the true end, so position ≥
   watermark never holds early for a partition not yet fetched, and the quiet
   time covers a watermark that is too low. An ``EOF`` event from librdkafka
   moves the position past control records.
2. **Assigned to another member that is alive.** The group has kept this
   consumer's assignment for at least the session timeout plus a margin. A
   member that stops heartbeating is expelled within its session timeout, and
   an expulsion rebalances the group, which revokes and re-assigns this
   consumer's partitions (eager protocol) and restarts the clock. So after that
   long without a rebalance, the other owners have all heartbeated recently.
   Where the broker reports the group's members (Kafka does, Tansu does not),
   a partition that no member holds is never counted as owned.

No assignment at all, a partition not drained, or the clock of rule 2 still
running: the run waits, and says for what. When nothing progresses (no record,
no partition newly drained, no new assignment) for ``drain_timeout_s`` it gives
up with :class:`DrainError` naming the group and the partitions left: a group
stuck rebalancing or a broker that stays down ends in exit 1, never a silent
wait and never a false exit 0.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lakestream.errors import BrokerError, TransientError
from lakestream.kafka.client import kafka_reason

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]

WATERMARK_RECHECK_S = 1.0
METADATA_REFRESH_S = 5.0


def expel_wait_s(session_timeout_s: float) -> float:
    """How long a stable group proves its members alive: the session timeout plus a margin.

    The margin covers the heartbeat that notices the expulsion and the rejoin
    (Tansu's group join takes about a second at short session timeouts).
    """
    return session_timeout_s + max(3.0, session_timeout_s)


class DrainError(BrokerError, TransientError):
    """``--until-idle`` could not drain every partition within the drain timeout."""


@dataclass
class PartitionProgress:
    """What this run knows of one assigned partition."""

    assigned_at: float
    position: int | None = None
    last_record_at: float | None = None
    read: int = 0
    committed: int = 0
    first_offset: int | None = None
    high: int | None = None
    drained_at: float | None = None
    checked_at: float = 0.0

    def quiet_since(self) -> float:
        """When this partition last saw a record (or was assigned)."""
        return max(self.assigned_at, self.last_record_at or 0.0)


@dataclass
class DrainVerdict:
    """Whether the run may stop and, if not, what it waits for."""

    done: bool
    waiting_for: str = ""
    left: list[TopicPartitionKey] = field(default_factory=list)
    others: list[TopicPartitionKey] = field(default_factory=list)


def describe_partitions(keys: Iterable[TopicPartitionKey]) -> str:
    """``t[0,2], u[1]``: partitions grouped by topic."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(keys):
        by_topic.setdefault(topic, []).append(partition)
    return ", ".join(f"{t}[{','.join(map(str, ps))}]" for t, ps in by_topic.items()) or "none"


class DrainTracker:
    """Follows assignments, positions and the group's stability for ``--until-idle``.

    Args:
        group_id: The consumer group (for messages).
        topics: The subscribed topics.
        idle_timeout_s: Quiet time per partition that, with the watermark, means its end.
        session_timeout_s: The group's session timeout (members share the configuration).
        drain_timeout_s: Give up after this long without progress.
        admin: An AdminClient to describe the group's members with (optional).
        clock: Monotonic seconds (tests may pass their own).
    """

    def __init__(self, group_id: str, topics: list[str], idle_timeout_s: float,
                 session_timeout_s: float, drain_timeout_s: float, admin: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.group_id = group_id
        self.topics = topics
        self.idle_timeout_s = idle_timeout_s
        self.session_timeout_s = session_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.clock = clock
        self.started = clock()
        self.partitions: dict[TopicPartitionKey, PartitionProgress] = {}
        self.history: dict[TopicPartitionKey, PartitionProgress] = {}
        self.all_partitions: set[TopicPartitionKey] | None = None
        self.rebalances = 0
        self.stable_since: float | None = None
        self.progress_at = self.started
        self.generation: int | None = None
        self.broker_error: str | None = None
        self.broker_error_since: float | None = None
        self._metadata_at = 0.0
        self.admin = admin
        self._members: list[set[TopicPartitionKey]] = []
        self._members_at = -METADATA_REFRESH_S

    # -- events from the consumer loop ----------------------------------------------------

    def assigned(self, keys: Iterable[tuple[TopicPartitionKey, int | None]]) -> None:
        """Partitions given to this consumer, each with the offset it starts from."""
        now = self.clock()
        for key, start in keys:
            self.partitions[key] = PartitionProgress(assigned_at=now, position=start)
            self.history.setdefault(key, PartitionProgress(assigned_at=now))
        self._rebalanced(now)

    def revoked(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Partitions taken away (another member, or the group rebalancing)."""
        for key in keys:
            self.partitions.pop(key, None)
        self._rebalanced(self.clock())

    def _rebalanced(self, now: float) -> None:
        self.rebalances += 1
        self.stable_since = now
        self.progress_at = now

    def records(self, key: TopicPartitionKey, first_offset: int, last_offset: int,
                count: int) -> None:
        """``count`` records of ``key`` up to ``last_offset`` were read."""
        now = self.clock()
        self.progress_at = now
        self._broker_ok()
        for progress in (self.partitions.get(key), self.history.get(key)):
            if progress is None:
                continue
            progress.read += count
            progress.last_record_at = now
            progress.drained_at = None
            if progress.first_offset is None:
                progress.first_offset = first_offset
            progress.position = max(progress.position or 0, last_offset + 1)

    def end_of_partition(self, key: TopicPartitionKey, offset: int) -> None:
        """librdkafka reached the end of ``key`` at ``offset`` (past any control records)."""
        progress = self.partitions.get(key)
        if progress is not None and offset >= 0:
            progress.position = max(progress.position or 0, offset)
        if key in self.history and offset >= 0:
            self.history[key].position = max(self.history[key].position or 0, offset)

    def committed(self, key: TopicPartitionKey, count: int) -> None:
        """``count`` records of ``key`` were durably committed by the sink."""
        if key in self.history:
            self.history[key].committed += count

    def broker_failed(self, reason: str) -> None:
        """The broker could not be reached (librdkafka's error callback, a failed query)."""
        if self.broker_error_since is None:
            self.broker_error_since = self.clock()
        self.broker_error = reason

    def _broker_ok(self) -> None:
        self.broker_error = None
        self.broker_error_since = None

    # -- the decision ---------------------------------------------------------------------

    def verdict(self, consumer: Any) -> DrainVerdict:
        """Whether every partition is drained or owned by a live member (queries the broker)."""
        now = self.clock()
        self._refresh_metadata(consumer, now)
        self._read_generation(consumer)
        mine = set(self.partitions)
        not_drained = sorted(k for k in mine if not self._drained(consumer, k, now))
        if self.stable_since is None:
            known = self.all_partitions or set(self.history)
            return DrainVerdict(False, "the group to assign partitions", left=sorted(known))
        if self.all_partitions is None:
            return DrainVerdict(False, "the partition list of " + ", ".join(self.topics),
                                left=not_drained or sorted(mine | set(self.history)))
        others = sorted(self.all_partitions - mine)
        unowned = self._unowned(others, now)
        stable_for = now - self.stable_since
        wait_group = expel_wait_s(self.session_timeout_s)
        if not_drained:
            return DrainVerdict(False, f"the end of {describe_partitions(not_drained)}",
                                left=not_drained + others, others=others)
        if unowned:
            return DrainVerdict(False, f"an owner for {describe_partitions(unowned)}",
                                left=unowned, others=others)
        if others and stable_for < wait_group:
            return DrainVerdict(
                False,
                f"the group to expel dead members holding {describe_partitions(others)} "
                f"(stable {stable_for:.0f}s of {wait_group:.0f}s)",
                left=others, others=others)
        return DrainVerdict(True, others=others)

    def stalled_for(self) -> float:
        """Seconds since anything progressed (records, drained partitions, assignments)."""
        return self.clock() - self.progress_at

    def _drained(self, consumer: Any, key: TopicPartitionKey, now: float) -> bool:
        progress = self.partitions[key]
        if now - progress.quiet_since() < self.idle_timeout_s:
            progress.drained_at = None
            return False
        if progress.drained_at is not None and progress.drained_at >= progress.quiet_since():
            return True
        if now - progress.checked_at < WATERMARK_RECHECK_S:
            return False
        progress.checked_at = now
        low, high = self._watermarks(consumer, key)
        if high is None:
            return False
        progress.high = high
        position = progress.position if progress.position is not None else low
        if position is None or position < high:
            return False
        progress.drained_at = now
        self.progress_at = now
        return True

    def _watermarks(self, consumer: Any, key: TopicPartitionKey) -> tuple[int | None, int | None]:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(*key), timeout=2.0,
                                                       cached=False)
        except KafkaException as exc:
            self.broker_failed(f"cannot read the end of {key[0]}[{key[1]}]: {kafka_reason(exc)}")
            return None, None
        if high is None or high < 0:
            return None, None
        self._broker_ok()
        return low, high

    def _refresh_metadata(self, consumer: Any, now: float) -> None:
        from confluent_kafka import KafkaException

        if self.all_partitions is not None and now - self._metadata_at < METADATA_REFRESH_S:
            return
        found: set[TopicPartitionKey] = set()
        try:
            for topic in self.topics:
                meta = consumer.list_topics(topic, timeout=2.0).topics.get(topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    self.broker_failed(f"topic {topic} has no partitions in the metadata")
                    return
                found.update((topic, p) for p in meta.partitions)
        except KafkaException as exc:
            self.broker_failed(f"cannot read the topics' metadata: {kafka_reason(exc)}")
            return
        self._metadata_at = now
        if self.all_partitions is not None and found != self.all_partitions:
            log.info("partitions of %s changed: %s", self.topics, describe_partitions(found))
            self.stable_since = now  # the group rebalances on new partitions
        self.all_partitions = found

    def _unowned(self, others: list[TopicPartitionKey], now: float) -> list[TopicPartitionKey]:
        """Partitions no member holds, where the broker reports members (else: none known)."""
        if not others or self.admin is None:
            return []
        if now - self._members_at >= METADATA_REFRESH_S:
            self._members = group_members(self.admin, self.group_id)
            self._members_at = now
        members = self._members
        if not members:
            return []
        held = {key for member in members for key in member}
        return [k for k in others if k not in held]

    def _read_generation(self, consumer: Any) -> None:
        try:
            metadata = consumer.consumer_group_metadata()
        except Exception:
            return
        self.generation = parse_generation(metadata)

    # -- what to tell the user ------------------------------------------------------------

    def waiting_line(self, verdict: DrainVerdict) -> str:
        """One line: the group, its generation, what the run waits for and for how long."""
        generation = f", generation {self.generation}" if self.generation is not None else ""
        broker = (f"; broker: {self.broker_error} ({self.clock() - self.broker_error_since:.0f}s)"
                  if self.broker_error and self.broker_error_since is not None else "")
        return (f"waiting for {verdict.waiting_for} (group {self.group_id}{generation}, "
                f"{self.stalled_for():.0f}s without progress, gives up after "
                f"{self.drain_timeout_s:.0f}s){broker}")

    def failure(self, verdict: DrainVerdict) -> DrainError:
        """The error of a run that could not drain within the drain timeout."""
        left = describe_partitions(verdict.left) if verdict.left else "the subscribed topics"
        why = f"waited for {verdict.waiting_for}"
        if self.broker_error:
            why += f"; {self.broker_error}"
        return DrainError(
            f"group {self.group_id}: {left} not drained after {self.stalled_for():.0f}s without "
            f"progress ({why}); what was read is committed, nothing is lost",
            "run again once the broker is reachable, use another --group if this one is stuck "
            "rebalancing (`lakestream doctor` checks the group), or raise --drain-timeout",
        )

    def per_partition(self) -> list[tuple[TopicPartitionKey, PartitionProgress]]:
        """What each partition read and committed in this run, in order."""
        return sorted(self.history.items())


def parse_generation(metadata: bytes | Any) -> int | None:
    """The generation id in librdkafka's serialized consumer-group metadata (``CGMDv2:``)."""
    if not isinstance(metadata, bytes | bytearray) or not metadata.startswith(b"CGMDv2:"):
        return None
    raw = bytes(metadata[7:11])
    if len(raw) < 4:
        return None
    value: int = struct.unpack("=i", raw)[0]
    return value if value >= 0 else None


def group_members(admin: Any, group_id: str) -> list[set[TopicPartitionKey]]:
    """Each member's assignment as the broker reports it (empty when it reports none).

    Kafka answers DescribeGroups with the members; Tansu answers with none, and
    then only the group's stability (rule 2) speaks for the other owners.
    """
    from confluent_kafka import KafkaException

    try:
        futures = admin.describe_consumer_groups([group_id], request_timeout=2.0)
        description = futures[group_id].result(timeout=3.0)
    except (KafkaException, KeyError, TimeoutError) as exc:
        log.debug("cannot describe group %s: %s", group_id, exc)
        return []
    return [{(tp.topic, tp.partition) for tp in member.assignment.topic_partitions}
            for member in description.members if member.assignment is not None]


def group_states(admin: Any, group_ids: list[str]) -> dict[str, str]:
    """Each group's state as the broker reports it (``STABLE``, ``UNKNOWN`` …; ``DEAD``: none)."""
    from confluent_kafka import KafkaException

    if not group_ids:
        return {}
    states = {}
    for group_id, future in admin.describe_consumer_groups(group_ids,
                                                           request_timeout=5.0).items():
        try:
            states[group_id] = future.result(timeout=6.0).state.name
        except (KafkaException, TimeoutError) as exc:
            log.debug("cannot describe group %s: %s", group_id, exc)
            states[group_id] = "DEAD"
    return states


def describe_progress(partitions: dict[TopicPartitionKey, PartitionProgress],
                      compact: bool = False) -> str:
    """Records read and committed per partition this run: ``t[0] 1,200 read, 1,200 committed``.

    ``compact`` gives ``t[0]=1,200`` (records read) for a one-line progress display.
    """
    parts = []
    for (topic, partition), p in sorted(partitions.items()):
        if compact:
            parts.append(f"{topic}[{partition}]={p.read:,}")
            continue
        span = (f" (offsets {p.first_offset:,}–{p.position - 1:,})"
                if p.first_offset is not None and p.position is not None else "")
        parts.append(f"{topic}[{partition}] {p.read:,} read, {p.committed:,} committed{span}")
    return (" " if compact else "; ").join(parts) or "no partition assigned"
