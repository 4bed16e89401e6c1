"""Table feeds: the latest value per key of a changelog topic, snapshotted as versions.

A table feed consumes every partition of its topic (manual assignment: a
snapshot needs all keys), keeps the latest row per key in memory, and commits
``<lake>/tables/<table>/version=v<N>/`` when the table changed and the
snapshot interval passed (and at the end of ``--until-idle``). The table is
one Delta table partitioned by ``version`` (:mod:`lakestream.lake.table_versions`):
a snapshot and the removal of the version past the last ``keep`` are one
commit, which carries the offsets it covers; on restart the newest version is
loaded and consumption resumes right after those offsets, so a version is
always exactly "every change before these offsets". ``_metadata.json`` names
the current one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from lakestream.decode.schemas import arrow_schema
from lakestream.errors import FencedError
from lakestream.feeds import Feed
from lakestream.lake.delta import check_not_legacy
from lakestream.lake.storage import Storage
from lakestream.lake.table_versions import VersionedTable, version_name, write_delta_metadata

log = logging.getLogger(__name__)


@dataclass
class Version:
    """One committed snapshot of a table."""

    version: int
    rows: int
    bytes: int
    created_at: str
    offsets: dict[str, int]
    file: str
    rejected: int = 0

    @property
    def name(self) -> str:
        """``v<N>``."""
        return f"v{self.version}"


@dataclass
class TableSink:
    """The in-memory table of one feed and its versions in the lake."""

    storage: Storage
    feed: Feed
    keep: int = 7
    rows: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)
    current: Version | None = None
    dirty: bool = False
    rejected: int = 0
    last_snapshot: float = field(default_factory=time.monotonic)
    partitions: list[int] = field(default_factory=list)  # the topic's, when known
    committed: dict[int, int] = field(default_factory=dict)  # the last offsets in the log

    def load(self) -> None:
        """The newest version's rows; every partition resumes after its offset in the log.

        Raises:
            ConfigError: The table was written before the lake was kept as Delta tables.
        """
        self.rows, self.offsets, self.committed, self.current = {}, {}, {}, None
        check_not_legacy(self.storage, self.feed.dataset)
        loaded = self._versioned().load(self.partitions)
        if loaded is None:
            return
        self.rows = {self._key(r): r for r in loaded.rows.to_pylist()}
        self.committed = dict(loaded.offsets)
        self.offsets = {p: o + 1 for p, o in loaded.offsets.items()}
        self.current = Version(loaded.number, loaded.rows.num_rows, 0, "",
                               {str(p): o for p, o in sorted(self.offsets.items())},
                               f"{self.feed.dataset}/version={version_name(loaded.number)}",
                               loaded.rejected)

    def apply(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """Apply one changelog record (a ``None`` value deletes the key)."""
        self.offsets[partition] = offset + 1
        self.dirty = True
        try:
            row = orjson.loads(value) if value is not None else None
            key_fields = self._key_fields(key)
            if row is not None and not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.rejected += 1
            log.warning("%s: skipped bad record at %d:%d (%s)", self.feed.name, partition, offset,
                        exc)
            return
        if row is None:
            self.rows.pop(tuple(key_fields.get(k) for k in self.feed.key), None)
            return
        for name, val in key_fields.items():
            row.setdefault(name, val)
        self.rows[self._key(row)] = row

    def snapshot(self) -> Version | None:
        """Write a new version if anything changed since the last one."""
        if not self.dirty:
            return None
        number = (self.current.version if self.current else 0) + 1
        rows = list(self.rows.values())
        table = pa.Table.from_pylist(rows, schema=self._schema(rows))
        last = {p: o - 1 for p, o in self.offsets.items()}
        rejected = (self.current.rejected if self.current else 0) + self.rejected
        self._versioned().commit(table, number, last, self.committed, self.keep, rejected)
        self.committed = last
        self.current = Version(number, table.num_rows, 0, "",
                               {str(p): o for p, o in sorted(self.offsets.items())},
                               f"{self.feed.dataset}/version={version_name(number)}", rejected)
        version = next(v for v in self.versions() if v.version == number)
        self.current, self.dirty, self.rejected = version, False, 0
        self.last_snapshot = time.monotonic()
        write_delta_metadata(self.storage, self.feed.name, self.feed.dataset, self.feed.topic,
                             self.feed.layer, self.feed.key)
        return version

    def _versioned(self) -> VersionedTable:
        return VersionedTable(self.storage, self.feed.dataset, self.feed.topic)

    def versions(self) -> list[Version]:
        """The kept versions, oldest first, as the log sees them."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        current = self.current.version if self.current else None
        offsets = {str(p): o for p, o in sorted(self.offsets.items())}
        rejected = self.current.rejected if self.current else 0
        return [Version(int(v.name[1:]), v.rows, v.bytes, v.created_at or now,
                        offsets if int(v.name[1:]) == current else {},
                        f"{self.feed.dataset}/version={v.name}",
                        rejected if int(v.name[1:]) == current else 0)
                for v in self._versioned().versions()]

    def _schema(self, rows: list[dict[str, Any]]) -> pa.Schema:
        declared = arrow_schema(self.feed.schema_spec, None)
        extra = sorted({k for r in rows for k in r} - set(declared.names))
        inferred = pa.Table.from_pylist([{k: r.get(k) for k in extra} for r in rows]).schema \
            if extra and rows else pa.schema([])
        return pa.schema([*declared, *inferred])

    def _key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(k) for k in self.feed.key)

    def _key_fields(self, key: bytes | None) -> dict[str, Any]:
        """Key columns from the message key (JSON object, or the value of a 1-column key)."""
        if key is None or not self.feed.key:
            return {}
        if len(self.feed.key) == 1 and not key.startswith(b"{"):
            return {self.feed.key[0]: key.decode("utf-8", "replace")}
        parsed = orjson.loads(key)
        if not isinstance(parsed, dict):
            raise ValueError("table key is not a JSON object")
        lowered = {str(k).lower(): v for k, v in parsed.items()}
        return {k: lowered[k] for k in self.feed.key if k in lowered}


class TableIngest:
    """One consumer, manually assigned to every partition of the table feeds' topics."""

    def __init__(self, storage: Storage, feeds: list[Feed], consumer_config: dict[str, Any],
                 snapshot_interval_s: float, keep: int) -> None:
        self.sinks = {f.topic: TableSink(storage, f, keep) for f in feeds}
        self.config = {**consumer_config, "group.id": f"lakestream-tables-{uuid.uuid4().hex[:8]}"}
        self.interval = snapshot_interval_s
        self.consumer: Any = None
        self.partitions: list[tuple[str, int]] = []
        self.applied = 0
        self.versions_written = 0

    def start(self, partitions: dict[str, list[int]]) -> None:
        """Load every table's newest version and assign its topic from the covered offsets."""
        from confluent_kafka import Consumer

        for sink in self.sinks.values():
            sink.partitions = list(partitions.get(sink.feed.topic, []))
            sink.load()
        self.partitions = [(t, p) for t in self.sinks for p in partitions.get(t, [])]
        self.consumer = Consumer(self.config, logger=logging.getLogger("lakestream.kafka"))
        self._assign()

    def _assign(self) -> None:
        """Consume every partition from the next offset its table holds."""
        from confluent_kafka import TopicPartition

        self.consumer.assign([TopicPartition(t, p, self.sinks[t].offsets.get(p, -2))
                              for t, p in self.partitions])

    def poll(self) -> int:
        """Apply what is available right now; returns how many records were applied."""
        messages = self.consumer.consume(num_messages=20_000, timeout=0)
        for m in messages:
            if m.error() is None:
                self.sinks[m.topic()].apply(m.partition(), m.offset(), m.key(), m.value())
        self.applied += len(messages)
        return len(messages)

    def unfinished(self) -> list[tuple[str, int]]:
        """The partitions not read to their end: the next offset below the high watermark.

        A partition whose watermark cannot be read (the broker is down) counts as
        unfinished: ``--until-idle`` then waits, bounded by its drain timeout.
        Tansu's watermark is never above the true end (docs/operations.md,
        ``--until-idle``); the caller's quiet time covers one that is too low.
        """
        from confluent_kafka import KafkaException, TopicPartition

        left = []
        for topic, partition in self.partitions:
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=2.0, cached=False)
            except KafkaException:  # the broker is unreachable: no need to ask for the rest
                return list(self.partitions)
            position = self.sinks[topic].offsets.get(partition, low)
            if high is None or high < 0 or position < high:
                left.append((topic, partition))
        return left

    def snapshot_due(self, force: bool = False) -> None:
        """Write a version of every changed table whose interval passed (or all, if forced)."""
        now = time.monotonic()
        for sink in self.sinks.values():
            if sink.dirty and (force or now - sink.last_snapshot >= self.interval):
                try:
                    if sink.snapshot() is not None:
                        self.versions_written += 1
                except FencedError as exc:
                    log.warning("%s", exc)
                    sink.rows, sink.offsets, sink.current = {}, {}, None
                    sink.load()
                    self._assign()  # what the reloaded version does not cover is read again

    def close(self) -> None:
        """Write the last versions and close the consumer."""
        self.snapshot_due(force=True)
        if self.consumer is not None:
            self.consumer.close()
