"""``lakestream ingest --sink warehouse``: keep the ``live`` snapshot current from Kafka.

Consumes the four table topics (each record is a key's latest value) and the
``transaction_flattened`` stream (latest attributes of users and payment
methods). Every batch of one partition is upserted in ONE database transaction
together with the partition's next offset in ``warehouse_offsets``; on
(re)assignment the consumer resumes from there. A crash at any moment
therefore neither loses nor doubles a change: the transaction either
committed (rows and offset) or it did not (neither).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.decode.json_batch import JsonDecoder
from lakestream.decode.schemas import arrow_schema
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.consumer import BatchingConsumer, ConsumeOptions, ConsumeReport
from lakestream.warehouse import facts
from lakestream.warehouse.failures import run_in_transaction
from lakestream.warehouse.lake_source import METHOD_ATTRIBUTES, USER_ATTRIBUTES, _latest
from lakestream.warehouse.loaders import Target
from lakestream.warehouse.schema import (
    DIMENSION_COLUMNS,
    FACTS_BY_LAKE_TABLE,
    dim_payment_methods,
    dim_users,
    warehouse_offsets,
)
from lakestream.warehouse.service import WarehouseService

log = logging.getLogger(__name__)

FLATTENED = "transaction_flattened"
LIVE = "live"
TOPICS = (FLATTENED, *FACTS_BY_LAKE_TABLE)


@dataclass
class WarehouseLoadReport(ConsumeReport):
    """What a streaming warehouse run loaded."""

    facts: int = 0
    dimensions: int = 0
    rejected: int = 0


class WarehouseStreamLoader(BatchingConsumer):
    """Upserts table changes and dimension attributes, offsets in the same transaction.

    A batch's transaction is retried on the warehouse's own policy
    (:data:`~lakestream.retry.WAREHOUSE`: a killed connection is redone at once,
    within ~16 s in all); once that gives up, the consumer loop waits out the
    outage (its partitions paused, polling on) and tries the batch again on
    :data:`~lakestream.retry.STREAMING`, however long the outage lasts. The two
    are not nested loops: between two batches the loop polls.
    """

    flush_what = "load into the warehouse"

    def __init__(self, settings: Settings, bootstrap: str, service: WarehouseService,
                 options: ConsumeOptions) -> None:
        super().__init__(settings, bootstrap, list(TOPICS), options, WarehouseLoadReport())
        self.report: WarehouseLoadReport
        self.service = service
        self.consumer_name = options.group_id
        self.decoders = {t: JsonDecoder(arrow_schema(t, "event_time" if t == FLATTENED else None))
                         for t in TOPICS}
        self._next: dict[tuple[str, int], int] = {}

    def start_offset(self, topic: str, partition: int) -> int | None:
        """The next offset stored with the rows (``None``: from the start)."""
        table = warehouse_offsets

        def read(conn: sa.Connection) -> int | None:
            value = conn.execute(sa.select(table.c.next_offset).where(
                table.c.consumer == self.consumer_name, table.c.topic == topic,
                table.c.partition == partition)).scalar()
            return None if value is None else int(value)

        start, _ = run_in_transaction(self.service.engine, read, self.service.retry,
                                      "read the warehouse offsets")
        if start is not None:
            self._next[(topic, partition)] = start
        return start

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """Where the warehouse stands for the partition."""
        return self._next.get((topic, partition))

    def flush_partition(self, buffer: PartitionBuffer) -> None:
        """Upsert the batch and its next offset in one transaction (retried whole)."""
        result = self.decoders[buffer.topic].decode(buffer.values)
        rows = result.table if result.table is not None else None
        work = partial(self._load, buffer=buffer, rows=rows)
        what = f"load {buffer.topic}[{buffer.partition}] into the warehouse"
        # a dropped connection is redone at once; a longer outage is the consumer loop's
        loaded, _ = run_in_transaction(self.service.engine, work, self.service.retry, what)
        self.report.rejected += len(result.rejected)  # counted once, when the batch is in
        for index, reason in result.rejected:
            log.warning("%s[%d]@%d skipped: %s", buffer.topic, buffer.partition,
                        buffer.offsets[index], reason)
        self._next[(buffer.topic, buffer.partition)] = buffer.offsets[-1] + 1
        if buffer.topic == FLATTENED:
            self.report.dimensions += loaded
        else:
            self.report.facts += loaded

    def _load(self, conn: sa.Connection, buffer: PartitionBuffer, rows: pa.Table | None) -> int:
        loaded = 0
        if rows is not None and rows.num_rows:
            loaded = (self._dimensions(conn, rows) if buffer.topic == FLATTENED
                      else self._facts(conn, buffer.topic, rows))
        offsets = pa.table({"consumer": [self.consumer_name], "topic": [buffer.topic],
                            "partition": [buffer.partition],
                            "next_offset": [buffer.offsets[-1] + 1],
                            "updated_at": [dt.datetime.now(dt.UTC).replace(tzinfo=None)]})
        target = Target(warehouse_offsets, ("consumer", "topic", "partition"),
                        tuple(offsets.column_names))
        self.service.loader.load(conn, target, offsets)
        return loaded

    def _dimensions(self, conn: sa.Connection, rows: pa.Table) -> int:
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("flattened", rows)
            names = set(rows.column_names)
            users = _latest(con, "user_id", USER_ATTRIBUTES, names, {})
            methods = _latest(con, "payment_method_id", METHOD_ATTRIBUTES, names,
                              {"payment_method_is_active": ("BOOLEAN", "is_active")})
        finally:
            con.close()
        loaded = 0
        for table, found in ((dim_users, users), (dim_payment_methods, methods)):
            columns = (*DIMENSION_COLUMNS[table.name], "last_event_time")
            loaded += self.service.loader.load(conn, Target(table, (columns[0],), columns), found)
        return loaded

    def _facts(self, conn: sa.Connection, topic: str, rows: pa.Table) -> int:
        spec = FACTS_BY_LAKE_TABLE[topic]
        latest = _last_per_key(rows, spec.natural_key)
        n = latest.num_rows
        shaped = pa.Table.from_arrays(
            [*(latest.column(c) for c in (*spec.natural_key, *spec.measures)),
             pa.array([dt.datetime.now(dt.UTC).date()] * n, pa.date32()),
             pa.array([LIVE] * n, pa.string())],
            names=[*spec.natural_key, *spec.measures, "snapshot_date", "snapshot_version"])
        good, _rejected, reasons = facts.split_rejects(spec, shaped)
        for reason in reasons:
            log.warning("%s: %s", topic, reason)
        members = facts.inferred_members(spec, good)
        if members is not None:
            self.service.loader.load(conn, *members)
        return self.service.loader.load(conn, Target(spec.table, spec.key, spec.columns), good)


def _last_per_key(rows: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """The last row (in offset order) of every key: a changelog's newest value."""
    indexed = rows.append_column("__i", pa.array(range(rows.num_rows), pa.int64()))
    last = indexed.group_by(list(key), use_threads=False).aggregate([("__i", "max")])
    newest = last.column("__i_max").combine_chunks()
    return rows.take(pc.take(newest, pc.array_sort_indices(newest)))


def describe(report: Any) -> str:
    """One line about a streaming warehouse run."""
    return (f"warehouse: {report.facts:,} fact rows and {report.dimensions:,} dimension rows "
            f"upserted (snapshot '{LIVE}'), {report.rejected:,} records skipped")
