"""Where a day rebuild reads from: Kafka (by time, else by scan) or ksqlDB (pull queries).

Both hand out :class:`~lakestream.kafka.buffer.PartitionBuffer` s, so a day
rebuild does not care which one it reads. Kafka is read by offsets: the day's
first offsets come from ``offsets_for_times`` (a day earlier than the day's
start, for producers whose clocks run ahead) when the broker supports it, else
every partition is scanned from the first offset the lake holds and records
with an older Kafka timestamp are skipped unread. ksqlDB is asked for the whole
stream with its ``ROWPARTITION``/``ROWOFFSET``/``ROWTIME`` pseudo-columns
(ksqlDB ≥ 0.24).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import orjson
import pyarrow as pa

from lakestream.feeds import Feed
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.scan import KafkaScan
from lakestream.sources.ksqldb import KsqlDbClient, KsqlDbRefusedError, restore_case

log = logging.getLogger(__name__)

EARLY_MARGIN = dt.timedelta(days=1)
_PSEUDO = ("ROWPARTITION", "ROWOFFSET", "ROWTIME")


class KafkaDayReader:
    """The records of one day's candidates, read from Kafka.

    Args:
        scan: A scan of the feed's topic.
        day: The day being rebuilt.
        skip_older: Skip records whose Kafka timestamp is more than a day before
            the day starts (off for derived streams, whose replay filter needs
            every record in order).
    """

    def __init__(self, scan: KafkaScan, day: dt.date, skip_older: bool = True) -> None:
        self.scan = scan
        self.since_ms = int((dt.datetime.combine(day, dt.time(), dt.UTC) - EARLY_MARGIN)
                            .timestamp() * 1000)
        self.skip_older = skip_older
        self.available_from: dict[int, int] = {}
        self.used_time_index = False

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionBuffer]:
        """Chunks of every partition's ``(first, last)`` offsets (inclusive)."""
        if not ranges:
            return
        self.available_from = self.scan.low_watermarks(list(ranges))
        by_time = self.scan.offsets_for_time(list(ranges), self.since_ms)
        self.used_time_index = by_time is not None
        starts, ends = {}, {}
        for p, (first, last) in ranges.items():
            start = max(first, self.available_from.get(p, 0))
            if by_time is not None:
                start = last + 1 if by_time.get(p, -1) < 0 else max(start, by_time[p])
            starts[p], ends[p] = start, last
        for chunk in self.scan.read(starts, ends):
            yield self._recent(chunk) if self.skip_older else chunk

    def _recent(self, chunk: PartitionBuffer) -> PartitionBuffer:
        keep = [i for i, ts in enumerate(chunk.timestamps) if ts is None or ts >= self.since_ms]
        if len(keep) == len(chunk):
            return chunk
        return chunk.select(keep)


class KsqlDbDayReader:
    """The records of a ksqlDB stream, by partition and offset, from one pull query.

    Args:
        client: The ksqlDB client.
        feed: The feed; its name, upper-cased, is the ksqlDB stream.
        schema: The feed's declared schema, to give column names their case back.
    """

    def __init__(self, client: KsqlDbClient, feed: Feed, schema: pa.Schema) -> None:
        self.client = client
        self.feed = feed
        self.schema = schema
        self.available_from: dict[int, int] = {}
        self.used_time_index = False

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionBuffer]:
        """Chunks of the stream's rows within every partition's ``(first, last)`` offsets."""
        if not ranges:
            return
        stream = self.feed.name.upper()
        result = self.client.pull(f"SELECT *, ROWPARTITION, ROWOFFSET, ROWTIME FROM {stream};")
        if not set(_PSEUDO) <= {c.upper() for c in result.columns}:
            raise KsqlDbRefusedError(
                f"ksqlDB did not return {', '.join(_PSEUDO)} for {stream}",
                "Lakestream needs ksqlDB 0.24 or newer to export streams")
        chunks: dict[int, list[tuple[int, int | None, bytes]]] = {}
        for row in result.rows:
            meta = {k.upper(): row.pop(k) for k in list(row) if k.upper() in _PSEUDO}
            partition, offset = int(meta["ROWPARTITION"]), int(meta["ROWOFFSET"])
            first, last = ranges.get(partition, (0, -1))
            if first <= offset <= last:
                value = orjson.dumps(restore_case(row, self.schema))
                chunks.setdefault(partition, []).append((offset, meta.get("ROWTIME"), value))
        for partition, items in sorted(chunks.items()):
            items.sort(key=lambda item: item[0])
            yield PartitionBuffer(self.feed.topic, partition, [v for _, _, v in items],
                                  [None] * len(items), [o for o, _, _ in items],
                                  [t for _, t, _ in items])
