"""``lakestream process``: the ksqlDB-equivalent derivations, exactly once in state.

For each batch of one input partition: decode (bad events → the ``processor``
DLQ in the lake), run the declarative SQL of :mod:`lakestream.derive.sql` on
DuckDB over Arrow, then — inside one SQLite transaction — add the aggregate
deltas, read the new values of the keys the batch touched, publish every
output and wait for the broker's acknowledgement, and only then commit state
and input offsets together. A crash before the commit replays the batch: the
derived streams may repeat records (each carries ``_source_partition`` and
``_source_offset`` and goes to the partition of its source, so ``ingest`` drops
the repeats) and tables may repeat a key's latest value (an upsert). No Kafka
transactions are needed (Tansu accepts but does not isolate them: README.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lakestream.config import Settings
from lakestream.decode.json_batch import JsonDecoder
from lakestream.decode.schemas import TRANSACTION_REQUIRED, arrow_schema
from lakestream.derive import sql
from lakestream.derive.outputs import OutputPublisher, table_messages
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.state import AggregateState
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.consumer import BatchingConsumer, ConsumeOptions, ConsumeReport
from lakestream.lake.dead_letters import commit_dead_letters, dead_letter_table
from lakestream.lake.delta import app_id, check_not_legacy
from lakestream.lake.layout import dlq_path
from lakestream.lake.storage import Storage
from lakestream.lake.writer import BatchId

log = logging.getLogger(__name__)

INPUT_TOPIC = "transactions"
DLQ_FEED = "processor"
STREAMS = ("transaction_flattened", "transaction_stream_anonymized",
           "transaction_stream_blacklisted")


@dataclass
class ProcessReport(ConsumeReport):
    """What a processor run consumed and published."""

    processed: int = 0
    rejected: int = 0
    published: int = 0
    blacklisted: int = 0


class Processor(BatchingConsumer):
    """Consumes ``transactions`` and publishes the derived streams and tables."""

    flush_what = "publish the derived records"

    def __init__(self, settings: Settings, bootstrap: str, storage: Storage, anon_key: bytes,
                 options: ConsumeOptions, publisher: OutputPublisher) -> None:
        super().__init__(settings, bootstrap, [INPUT_TOPIC], options, ProcessReport())
        self.report: ProcessReport
        self.storage = storage
        self.anon_key = anon_key
        self.publisher = publisher
        self.state = AggregateState(Path(settings.data_dir) / "state" / "processor.sqlite")
        self.reference = ReferenceStore(Path(settings.data_dir))
        self.decoder = JsonDecoder(arrow_schema("transactions", "event_time"), TRANSACTION_REQUIRED)
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET TimeZone = 'UTC'")
        self._reference_version: tuple[float, float] | None = None
        self._pseudonyms: dict[str, str] = {}
        self._usd_to_eur = 0.0
        check_not_legacy(storage, dlq_path(DLQ_FEED))
        self.dead_letters = dead_letter_table(storage, DLQ_FEED)

    def start_offset(self, topic: str, partition: int) -> int | None:
        """Resume from the state (the dead letters' table is never half-committed)."""
        return self.state.next_offset(topic, partition)

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """Where the state stands for the partition."""
        return self.state.next_offset(topic, partition)

    def flush_partition(self, buffer: PartitionBuffer) -> None:
        """Derive, publish and commit one batch (the consumer loop retries it whole)."""
        self._process(buffer)

    def run(self) -> ProcessReport:
        """Consume until stopped or idle, then release the state database."""
        try:
            report: ProcessReport = super().run()
            return report
        finally:
            self.state.close()
            self.db.close()

    # -- one batch ------------------------------------------------------------------------

    def _process(self, buf: PartitionBuffer) -> None:
        if (self.state.next_offset(buf.topic, buf.partition) or 0) > buf.offsets[-1]:
            return  # retried after its state committed: never add its aggregates twice
        self._load_reference()
        result = self.decoder.decode(buf.values)
        rejected = list(result.rejected)
        counts = {"processed": 0, "blacklisted": 0}
        outputs: dict[str, Any] = {}
        if result.table is not None:
            n = result.table.num_rows
            offsets = pa.array(buf.offsets, pa.int64()).take(result.indices)
            events = result.table.append_column(
                "_source_partition", pa.array([buf.partition] * n, pa.int32())
            ).append_column("_source_offset", offsets)
            outputs, invalid = self._derive(events)
            index_of = {o: i for i, o in enumerate(buf.offsets)}
            rejected += [(index_of[off], reason) for off, reason in invalid]
            counts = {"processed": outputs["processed"], "blacklisted": outputs["blacklisted"]}
        self._commit_rejects(buf, sorted(rejected))
        self.state.begin()
        try:
            published = self._publish(buf.partition, outputs)
            self.state.set_next_offset(buf.topic, buf.partition, buf.offsets[-1] + 1)
            self.state.commit()
        except BaseException:
            self.state.rollback()
            raise
        self.report.processed += counts["processed"]
        self.report.blacklisted += counts["blacklisted"]
        self.report.rejected += len(rejected)
        self.report.published += published

    def _derive(self, events: pa.Table) -> tuple[dict[str, Any], list[tuple[int, str]]]:
        con = self.db
        con.register("events", events)
        users = sorted(set(events.column("user").combine_chunks().field("user_id").to_pylist()))
        pseudonyms = [self._pseudonym(u) for u in users]
        con.register("pseudonyms", pa.table({"user_id": users, "pseudonym": pseudonyms}))
        con.execute(f"CREATE OR REPLACE TEMP TABLE invalid AS {sql.INVALID}")
        invalid = con.execute("SELECT _source_offset, reason FROM invalid").fetchall()
        con.execute(f"CREATE OR REPLACE TEMP TABLE flattened AS {sql.FLATTENED}")
        out: dict[str, Any] = {
            "transaction_flattened": self._json(sql.FLATTENED_COLUMNS, "flattened"),
            "transaction_stream_anonymized": self._json(sql.ANONYMIZED_COLUMNS,
                                                        f"({sql.ANONYMIZED})"),
            "transaction_stream_blacklisted": self._json(sql.BLACKLISTED_COLUMNS,
                                                         f"({sql.BLACKLISTED})"),
            "deltas": {name: con.sql(query).to_arrow_table() for name, query in (
                ("user", sql.USER_DELTAS), ("payment", sql.PAYMENT_DELTAS),
                ("product", sql.PRODUCT_DELTAS), ("buyers", sql.PRODUCT_BUYERS))},
        }
        out["processed"] = len(out["transaction_flattened"][0])
        out["blacklisted"] = len(out["transaction_stream_blacklisted"][0])
        return out, [(int(o), str(r)) for o, r in invalid]

    def _json(self, columns: Sequence[str], source: str) -> tuple[list[bytes], list[bytes]]:
        select = ", ".join(
            f"strftime(event_time, '{sql.TIME_FORMAT}') AS event_time" if c == "event_time"
            else f'"{c}"' for c in (*columns, *sql.SOURCE_COLUMNS))
        rows = self.db.sql(
            f"SELECT encode(x.user_id) AS k, encode(to_json(x)::VARCHAR) AS v "
            f"FROM (SELECT {select} FROM {source} AS s ORDER BY _source_offset) AS x"
        ).to_arrow_table()
        return rows.column("k").to_pylist(), rows.column("v").to_pylist()

    def _publish(self, partition: int, outputs: dict[str, Any]) -> int:
        if not outputs:
            return 0
        self.state.apply(outputs["deltas"])
        messages = {stream: outputs[stream] for stream in STREAMS}
        tables = table_messages(self.state, outputs["deltas"], self._usd_to_eur)
        return self.publisher.publish(partition, messages, tables)

    def _commit_rejects(self, buf: PartitionBuffer, rejected: list[tuple[int, str]]) -> None:
        """Commit the batch's dead letters to the Delta table before the state commits.

        The table's application transaction for the partition says how far it
        holds: a batch replayed after a crash between this commit and the
        state's adds only what lies past it.
        """
        if not rejected:
            return
        ident = app_id(buf.topic, buf.partition)
        last = self.dead_letters.transaction_versions([ident])[ident]
        batch = BatchId(DLQ_FEED, DLQ_FEED, buf.topic, buf.partition, buf.offsets[0],
                        buf.offsets[-1])
        keys = [k.decode("utf-8", "replace") if k is not None else None for k in buf.keys]
        commit_dead_letters(self.dead_letters, batch, last, rejected, buf.values, keys,
                            buf.offsets, buf.timestamps)

    def _load_reference(self) -> None:
        version = self.reference.version()
        if version == self._reference_version:
            return
        rates, blacklist = self.reference.rates(), self.reference.blacklist()
        self.db.register("rates", pa.table({"currency": list(rates.to_usd),
                                            "to_usd": list(rates.to_usd.values())}))
        self.db.register("eur", pa.table({"usd_to_eur": [rates.usd_to_eur]}))
        pairs = [(k, v) for k in ("user_ids", "countries", "ip_prefixes", "card_last4")
                 for v in getattr(blacklist, k)]
        self.db.register("blacklist", pa.table({"kind": [k for k, _ in pairs],
                                                "value": [v for _, v in pairs]},
                                               schema=pa.schema([("kind", pa.string()),
                                                                 ("value", pa.string())])))
        self._usd_to_eur = rates.usd_to_eur
        self._reference_version = version
        log.info("reference data loaded: rates as of %s, %d blacklist entries", rates.as_of,
                 len(pairs))

    def _pseudonym(self, user_id: str) -> str:
        found = self._pseudonyms.get(user_id)
        if found is None:
            found = hmac.new(self.anon_key, user_id.encode(), hashlib.sha256).hexdigest()
            if len(self._pseudonyms) > 1_000_000:
                self._pseudonyms.clear()
            self._pseudonyms[user_id] = found
        return found

