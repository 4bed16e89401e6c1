"""Unsticking a consumer group whose coordinator still waits on a departed leader.

Tansu's group coordinator (0.6.0, and its successor's main branch when this was
written) has a bug: when the group's leader sends LeaveGroup while the group is
re-forming (another member just joined or left), the member is removed but the
group keeps it as its leader. Only the leader may complete the rebalance, and the
coordinator forgets a leader only when it misses its heartbeats as a member —
which a member that left never does. Every member, and every consumer that joins
later, then waits for an assignment forever: a clean exit of one ``process`` at
the wrong moment stops the whole group.

A consumer of ours that got no assignment at all for :func:`stall_wait_s` asks
the coordinator who leads (a JoinGroup as a throwaway member: the answer names
the leader), and, when the leader is neither that probe nor itself, joins once
under the leader's member id. The departed leader is a member again (subscribed
to nothing, like the probe), with a last contact of now and no heartbeats to
follow: the coordinator expires it one session timeout later, forgets it as
leader, and the next join of a live member makes that member the leader. The
probe member expires the same way.

On Apache Kafka the probe's member id is unknown to the coordinator, which
answers UNKNOWN_MEMBER_ID, and nothing else is sent: the repair is a no-op there
(and its trigger, no assignment for minutes with a live coordinator, is not
expected). Only PLAINTEXT listeners can be probed (the embedded broker's); with
TLS or SASL the repair is skipped with a message.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_JOIN_GROUP = 11
_JOIN_VERSION = 2  # non-flexible, before static membership: the simplest encoding
_ERRORS = {0: "none", 15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR",
           23: "INCONSISTENT_GROUP_PROTOCOL", 25: "UNKNOWN_MEMBER_ID",
           27: "REBALANCE_IN_PROGRESS", 79: "MEMBER_ID_REQUIRED"}


def stall_wait_s(session_timeout_s: float) -> float:
    """How long a subscribed consumer waits for any assignment before the repair.

    A rebalance on Tansu takes a few seconds (SPEC §2: ~3 s at a 6 s session
    timeout); four session timeouts, at least 30 s, leave room for a slow one.
    """
    return max(30.0, 4 * session_timeout_s)


@dataclass(frozen=True)
class JoinAnswer:
    """The fields of a JoinGroup response the repair reads."""

    error: int
    leader: str
    member_id: str

    @property
    def error_name(self) -> str:
        return _ERRORS.get(self.error, f"error {self.error}")


# a ConsumerProtocolSubscription (version 0) of no topics and no user data: while the
# probe (or the re-registered leader) is a member, a leader's assignor gives it nothing
EMPTY_SUBSCRIPTION = struct.pack(">hii", 0, 0, -1)


def join_group(address: tuple[str, int], group: str, member_id: str,
               protocols: Sequence[str], session_timeout_ms: int,
               timeout_s: float = 10.0) -> JoinAnswer:
    """Send one JoinGroup (v2) subscribing to nothing, and read the answer.

    Raises:
        OSError: The coordinator could not be reached or closed the connection.
    """
    body = (_string(group) + struct.pack(">ii", session_timeout_ms, session_timeout_ms)
            + _string(member_id) + _string("consumer") + struct.pack(">i", len(protocols))
            + b"".join(_string(p) + struct.pack(">i", len(EMPTY_SUBSCRIPTION))
                       + EMPTY_SUBSCRIPTION for p in protocols))
    request = struct.pack(">hhi", _JOIN_GROUP, _JOIN_VERSION, 1) + _string("lakestream") + body
    with socket.create_connection(address, timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _receive(sock, 4))[0]
        reader = _Reader(_receive(sock, size))
    reader.int32()  # correlation id
    reader.int32()  # throttle time
    error = reader.int16()
    reader.int32()  # generation
    reader.string()  # protocol name
    leader = reader.string()
    member = reader.string()
    return JoinAnswer(error, leader, member)


def repair_group(address: tuple[str, int], group: str, own_member_id: str | None,
                 protocols: Sequence[str], session_timeout_ms: int) -> tuple[bool, str]:
    """Re-register a departed leader so the coordinator expires it: whether it was
    re-registered, and what was done."""
    probe = join_group(address, group, f"lakestream-probe-{uuid.uuid4()}", protocols,
                       session_timeout_ms)
    if probe.error != 0:
        return False, f"nothing repaired: the coordinator answered {probe.error_name}"
    leader = probe.leader
    if not leader or leader in (probe.member_id, own_member_id):
        return False, f"nothing repaired: the group's leader is {leader or 'not chosen'}"
    again = join_group(address, group, leader, protocols, session_timeout_ms)
    if again.error != 0:
        return False, f"could not re-register leader {leader}: {again.error_name}"
    return True, (f"the coordinator still waited on leader {leader}; re-registered it so "
                  f"that it expires within {session_timeout_ms / 1000:g} s and a live "
                  "member leads")


class AssignmentWatch:
    """Notices a subscribed consumer that never gets an assignment, and repairs its group.

    Args:
        group: The consumer group.
        topics: The subscribed topics (librdkafka joins the group only once one exists).
        bootstrap: The bootstrap servers (the coordinator's address when the admin
            client cannot name it).
        properties: The librdkafka properties (security protocol, assignment strategy).
        session_timeout_s: The group's session timeout.
    """

    def __init__(self, group: str, topics: Sequence[str], bootstrap: str,
                 properties: dict[str, Any], session_timeout_s: float) -> None:
        self.group = group
        self.topics = list(topics)
        self.bootstrap = bootstrap
        self.properties = properties
        self.session_timeout_s = session_timeout_s
        self.wait_s = stall_wait_s(session_timeout_s)
        self.unassigned_since: float | None = None
        self._tried_at = 0.0
        self.repairs = 0

    def waiting(self) -> None:
        """The consumer subscribed, or its partitions were revoked: an assignment is due."""
        self.unassigned_since = time.monotonic()

    def assigned(self) -> None:
        """An assignment arrived (an empty one too: the group formed)."""
        self.unassigned_since = None

    def check(self, consumer: Any, now: float) -> str | None:
        """Repair the group when no assignment came for :attr:`wait_s`; the line to say."""
        since = self.unassigned_since
        if since is None or now - since < self.wait_s or now - self._tried_at < self.wait_s:
            return None
        self._tried_at = now
        if not self._any_topic(consumer):
            return None  # no group to join yet: librdkafka waits for a subscribed topic
        waited = f"no assignment from group {self.group} for {now - since:.0f} s"
        protocol = str(self.properties.get("security.protocol", "plaintext")).lower()
        if protocol != "plaintext":
            return (f"{waited}; the coordinator cannot be checked over {protocol} "
                    "(only PLAINTEXT listeners are probed)")
        try:
            member = consumer.memberid() or None
        except RuntimeError:  # closed or not yet joined
            member = None
        strategy = str(self.properties.get("partition.assignment.strategy", "range,roundrobin"))
        protocols = [p.strip() for p in strategy.split(",") if p.strip()]
        try:
            repaired, outcome = repair_group(self._coordinator(), self.group, member,
                                             protocols, int(self.session_timeout_s * 1000))
        except (OSError, struct.error, UnicodeDecodeError) as exc:
            return f"{waited}; the coordinator could not be checked: {exc}"
        self.repairs += repaired
        return f"{waited}: {outcome}"

    def _any_topic(self, consumer: Any) -> bool:
        """Whether a subscribed topic exists (else the wait is for it, not for the group)."""
        try:
            known = consumer.list_topics(timeout=5).topics
        except Exception as exc:  # the broker is down: nothing to check now
            log.debug("list_topics failed: %s", exc)
            return False
        return any(known.get(t) is not None and known[t].partitions for t in self.topics)

    def _coordinator(self) -> tuple[str, int]:
        from lakestream.kafka.client import admin_client

        try:
            admin = admin_client(self.bootstrap, **self.properties)
            described = admin.describe_consumer_groups([self.group], request_timeout=5)
            node = described[self.group].result(timeout=10).coordinator
            if node is not None and node.host:
                return str(node.host), int(node.port)
        except Exception as exc:  # any failure: the first bootstrap server
            log.debug("describe_consumer_groups failed: %s", exc)
        host, _, port = self.bootstrap.split(",")[0].strip().rpartition(":")
        return host.strip("[]"), int(port)


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack(">h", len(data)) + data


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the coordinator closed the connection")
        data += chunk
    return bytes(data)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise struct.error("the coordinator's answer is shorter than a JoinGroup response")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def string(self) -> str:
        size = self.int16()
        return "" if size < 0 else self._take(size).decode("utf-8")
