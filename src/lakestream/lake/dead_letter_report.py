"""What a feed's dead letters are: grouped by reason, and the records themselves.

A dead letter's reason names the field and the types, often with the value
that did not fit (``field score: expected int64, found string "high"``).
Grouping by the full text would give one group per distinct value, so the
groups are the reasons without the value (:func:`reason_group`); ``--reason``
matches any part of the full text, so a group's text selects its records.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakestream.lake.delta import DeltaDataset, delta_errors
from lakestream.lake.storage import Storage

_VALUE_AFTER_FOUND = re.compile(r"^(field .+?: expected .+?, found \S+?)(?: .*)?$", re.S)
_GROUP_MAX = 160
COLUMNS = ["raw", "reason", "_kafka_topic", "_kafka_partition", "_kafka_offset",
           "_kafka_timestamp", "_kafka_key", "rejected_at"]


def reason_group(reason: str | None) -> str:
    """The reason without the value it quotes (the text dead letters are grouped by)."""
    if not reason:
        return "(no reason)"
    match = _VALUE_AFTER_FOUND.match(reason)
    text = match.group(1) if match else reason
    return text if len(text) <= _GROUP_MAX else text[:_GROUP_MAX] + "…"


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters a command is about.

    Attributes:
        reason: A part of the reason, any case (``None``: every reason).
        since: Rejected at or after this time (``None``: any time).
    """

    reason: str | None = None
    since: dt.datetime | None = None

    def mask(self, rows: pa.Table) -> pa.Array:
        """Which rows of a dead-letter file match."""
        keep = pa.array([True] * rows.num_rows)
        if self.reason:
            found = pc.match_substring(rows.column("reason"), self.reason, ignore_case=True)
            keep = pc.and_(keep, pc.fill_null(found, False))
        if self.since is not None:
            since = self.since if self.since.tzinfo else self.since.replace(tzinfo=dt.UTC)
            later = pc.greater_equal(rows.column("rejected_at"),
                                     pa.scalar(since, rows.column("rejected_at").type))
            keep = pc.and_(keep, pc.fill_null(later, False))
        return keep.combine_chunks() if isinstance(keep, pa.ChunkedArray) else keep


@dataclass(frozen=True)
class LetterFile:
    """One live file of a dead-letter table: its add-action row and its rows."""

    action: pa.Table  # one row of ``get_add_actions(flatten=True)``
    partition: dict[str, str]
    rows: pa.Table


def letter_files(storage: Storage, dlq: DeltaDataset) -> Iterator[LetterFile]:
    """The live files of ``dlq``'s latest snapshot with their rows (nothing before the
    table's first commit)."""
    table = dlq.table()
    if table is None:
        return
    with delta_errors(f"read the log of {dlq.uri}", dlq.uri):
        actions = pa.table(table.get_add_actions(flatten=True))
    parts = [c for c in actions.column_names if c.startswith("partition.")]
    for i in range(actions.num_rows):
        action = actions.slice(i, 1)
        path = action.column("path")[0].as_py()
        rows = pq.read_table(pa.BufferReader(storage.read(f"{dlq.rel}/{unquote(path)}")))
        partition = {c.removeprefix("partition."): action.column(c)[0].as_py() for c in parts}
        yield LetterFile(action, partition, rows)


@dataclass
class ReasonGroup:
    """Dead letters of one reason group: how many, when, and where in Kafka."""

    reason: str
    count: int = 0
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    def add(self, rejected_at: dt.datetime | None, topic: str, partition: int,
            offset: int) -> None:
        """Count one dead letter."""
        self.count += 1
        if rejected_at is not None:
            self.first_seen = min(self.first_seen or rejected_at, rejected_at)
            self.last_seen = max(self.last_seen or rejected_at, rejected_at)
        low, high = self.offsets.get((topic, partition), (offset, offset))
        self.offsets[(topic, partition)] = (min(low, offset), max(high, offset))

    def coordinates(self) -> str:
        """``topic[p] first..last`` per partition."""
        return ", ".join(f"{t}[{p}] {lo}..{hi}"
                         for (t, p), (lo, hi) in sorted(self.offsets.items()))

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"reason": self.reason, "count": self.count,
                "first_seen": self.first_seen.isoformat() if self.first_seen else None,
                "last_seen": self.last_seen.isoformat() if self.last_seen else None,
                "partitions": [{"topic": t, "partition": p, "first_offset": lo,
                                "last_offset": hi}
                               for (t, p), (lo, hi) in sorted(self.offsets.items())]}


def reason_groups(storage: Storage, dlq: DeltaDataset,
                  where: LetterFilter = LetterFilter()) -> list[ReasonGroup]:
    """The dead letters of ``dlq`` grouped by reason, the largest group first."""
    groups: dict[str, ReasonGroup] = {}
    for file in letter_files(storage, dlq):
        rows = file.rows.filter(where.mask(file.rows)).select(
            ["reason", "rejected_at", "_kafka_topic", "_kafka_partition", "_kafka_offset"])
        for reason, at, topic, partition, offset in zip(
                *(rows.column(c).to_pylist() for c in rows.column_names), strict=True):
            key = reason_group(reason)
            groups.setdefault(key, ReasonGroup(key)).add(at, topic, partition, offset)
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason))


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as ``dlq show`` prints it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    kafka_time: dt.datetime | None
    rejected_at: dt.datetime | None
    reason: str
    raw: bytes | None

    @property
    def shown(self) -> tuple[str, str]:
        """The raw bytes, safely: ``("text", …)`` when valid UTF-8, else ``("hex", …)``."""
        if self.raw is None:
            return "text", ""
        try:
            text = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            return "hex", self.raw.hex()
        if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
            return "hex", self.raw.hex()  # control characters would drive the terminal
        return "text", text

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready form (``raw`` as text or hex, ``raw_encoding`` says which)."""
        encoding, raw = self.shown
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "key": self.key,
                "kafka_timestamp": self.kafka_time.isoformat() if self.kafka_time else None,
                "rejected_at": self.rejected_at.isoformat() if self.rejected_at else None,
                "reason": self.reason, "raw_encoding": encoding, "raw": raw}


def dead_letters(storage: Storage, dlq: DeltaDataset, where: LetterFilter = LetterFilter(),
                 limit: int | None = 20) -> tuple[list[DeadLetter], int]:
    """The dead letters that match, oldest Kafka coordinates first (at most ``limit``),
    and how many match in all."""
    found: list[DeadLetter] = []
    for file in letter_files(storage, dlq):
        rows = file.rows.filter(where.mask(file.rows))
        for r in rows.select(COLUMNS).to_pylist():
            found.append(DeadLetter(r["_kafka_topic"], r["_kafka_partition"],
                                    r["_kafka_offset"], r["_kafka_key"], r["_kafka_timestamp"],
                                    r["rejected_at"], r["reason"] or "", r["raw"]))
    found.sort(key=lambda d: (d.topic, d.partition, d.offset))
    return (found if limit is None else found[:limit]), len(found)
