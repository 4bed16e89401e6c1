"""A consumer group stranded by Tansu's coordinator is repaired by the consumer that waits.

The bug (``lakestream.kafka.group_repair``): the group's leader leaves (a clean
close, which sends LeaveGroup) while the group re-forms because another member
just joined. Tansu removes the member but keeps it as the leader, so no member —
nor any consumer that joins later — ever gets an assignment. These tests make
that state with bare confluent-kafka consumers on the real embedded broker, then
check that a Lakestream consumer joining the group gets its partitions and reads
every record once.
"""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Consumer

from lakestream.config import Settings
from lakestream.kafka.broker import EmbeddedBroker, free_port
from lakestream.kafka.group_repair import (
    EMPTY_SUBSCRIPTION,
    AssignmentWatch,
    repair_group,
    stall_wait_s,
)
from tests.conftest import unique_topic
from tests.ingest.helpers import send
from tests.kafka.store_consumer import (
    Running,
    Store,
    StoreConsumer,
    assert_exactly_once,
    messages,
    wait_for,
)

PARTITIONS = 3
SESSION_MS = 6000


def bare_consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 1000})


def poll_until(consumer: Consumer, seen: list[int], seconds: float) -> bool:
    """Poll for ``seconds`` or until an assignment callback ran; whether one did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not seen:
        consumer.poll(0.1)
    return bool(seen)


def strand_group(bootstrap: str, topic: str, group: str) -> None:
    """Leave ``group`` waiting on a leader that left while the group re-formed."""
    leader, joiner = bare_consumer(bootstrap, group), bare_consumer(bootstrap, group)
    led: list[int] = []
    leader.subscribe([topic], on_assign=lambda _c, parts: led.append(len(parts)))
    assert poll_until(leader, led, 60), "the first member never got its partitions"
    joined: list[int] = []
    joiner.subscribe([topic], on_assign=lambda _c, parts: joined.append(len(parts)))
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # the joiner's JoinGroup reaches the coordinator
        joiner.poll(0.05)
    leader.close()  # LeaveGroup while the group re-forms: the bug's trigger
    # the joiner waits past two session timeouts without any assignment: stranded
    stranded = not poll_until(joiner, joined, 2 * SESSION_MS / 1000)
    joiner.close()
    assert stranded, ("the joiner got an assignment: this broker no longer strands a group "
                      "whose leader leaves mid-rebalance (update lakestream.kafka.group_repair)")


@pytest.mark.integration
@pytest.mark.slow
def test_a_consumer_joining_a_group_stranded_on_a_departed_leader_repairs_it_and_reads_all(
        broker: EmbeddedBroker, consumers: list[Running],
        caplog: pytest.LogCaptureFixture) -> None:
    bootstrap = broker.bootstrap_servers
    topic = unique_topic("stranded")
    group = f"g-{topic}"
    send(bootstrap, topic, messages(0, 300), partitions=PARTITIONS)
    strand_group(bootstrap, topic, group)
    store = Store()
    settings = Settings.model_validate({"kafka": {"session_timeout_ms": SESSION_MS}})
    consumer = StoreConsumer(settings, bootstrap, topic, group, store, background=False)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="lakestream.kafka.consumer"):
        consumers.append(Running(consumer))
        wait_for(lambda: store.total() == 300 or consumers[0].error is not None,
                 stall_wait_s(SESSION_MS / 1000) + 60, "every record of the stranded group")
        send(bootstrap, topic, messages(300, 60), partitions=PARTITIONS)  # and goes on
        wait_for(lambda: store.total() == 360, 30, "the records sent after the repair")
        consumers[0].stop()
    waited = time.monotonic() - started
    assert consumers[0].error is None, consumers[0].error
    assert_exactly_once(store, topic, 360)
    assert consumer._watch.repairs == 1, caplog.text
    line = next(r.getMessage() for r in caplog.records if "re-registered it" in r.getMessage())
    assert line.startswith(f"no assignment from group {group} for ")
    assert "the coordinator still waited on leader rdkafka-" in line
    assert waited >= stall_wait_s(SESSION_MS / 1000)  # it waited its turn before repairing


@pytest.mark.integration
def test_the_repair_leaves_a_group_alone_when_the_member_asking_leads_it(
        broker: EmbeddedBroker) -> None:
    bootstrap = broker.bootstrap_servers
    topic = unique_topic("healthy")
    send(bootstrap, topic, messages(0, 30), partitions=PARTITIONS)
    group = f"g-{topic}"
    member = bare_consumer(bootstrap, group)
    seen: list[int] = []
    member.subscribe([topic], on_assign=lambda _c, parts: seen.append(len(parts)))
    try:
        assert poll_until(member, seen, 60)
        host, _, port = bootstrap.rpartition(":")
        repaired, outcome = repair_group((host, int(port)), group, member.memberid(),
                                         ["range", "roundrobin"], SESSION_MS)
        assert not repaired
        assert outcome == f"nothing repaired: the group's leader is {member.memberid()}"
        # the probe's join made the group re-form; subscribed to nothing, the probe is
        # given no partition while it is a member, then expires: every assignment is whole
        seen.clear()
        deadline = time.monotonic() + 3 * SESSION_MS / 1000
        while time.monotonic() < deadline:
            member.poll(0.1)
        assert seen and set(seen) == {PARTITIONS}, seen
    finally:
        member.close()


def stalled_watch(bootstrap: str, **properties: Any) -> AssignmentWatch:
    watch = AssignmentWatch(f"g-{uuid.uuid4().hex[:8]}", ["t"], bootstrap, properties, 6.0)
    watch.waiting()
    assert watch.unassigned_since is not None
    watch.unassigned_since -= watch.wait_s + 1
    return watch


class Unjoined:
    """A consumer not in the group yet, subscribed to ``topics`` of which ``existing`` exist."""

    def __init__(self, existing: tuple[str, ...] = ("t",)) -> None:
        self.existing = existing

    def memberid(self) -> str:
        raise RuntimeError("not joined")

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(topics={t: SimpleNamespace(partitions={0: None})
                                       for t in self.existing})


def test_the_watch_waits_its_turn_and_then_tries_once_per_wait() -> None:
    watch = AssignmentWatch("g", ["t"], "127.0.0.1:1", {"security.protocol": "SSL"}, 6.0)
    assert watch.wait_s == 30.0 and stall_wait_s(20.0) == 80.0
    now = time.monotonic()
    assert watch.check(Unjoined(), now) is None  # never subscribed
    watch.waiting()
    assert watch.check(Unjoined(), now + 29) is None  # not long enough yet
    line = watch.check(Unjoined(), now + 31)
    assert line is not None and line.startswith("no assignment from group g for 31 s")
    assert "cannot be checked over ssl (only PLAINTEXT listeners are probed)" in line
    assert watch.check(Unjoined(), now + 40) is None  # one try per wait
    watch.assigned()
    assert watch.check(Unjoined(), now + 100) is None


def test_an_unreachable_coordinator_is_said_and_nothing_raised() -> None:
    watch = stalled_watch(f"127.0.0.1:{free_port()}", **{"socket.timeout.ms": 2000})
    line = watch.check(Unjoined(), time.monotonic())
    assert line is not None and "the coordinator could not be checked: " in line
    assert watch.repairs == 0


def test_a_consumer_waiting_for_its_topic_to_exist_is_left_waiting() -> None:
    # librdkafka joins no group before a subscribed topic exists: nothing to repair, no line
    watch = stalled_watch(f"127.0.0.1:{free_port()}")
    assert watch.check(Unjoined(existing=()), time.monotonic()) is None
    assert watch.check(Unjoined(existing=("other",)), time.monotonic() + 31) is None


def test_the_probe_subscribes_to_nothing() -> None:
    # version 0, no topics, null user data: an assignor gives such a member nothing
    assert EMPTY_SUBSCRIPTION == b"\x00\x00" + b"\x00\x00\x00\x00" + b"\xff\xff\xff\xff"
