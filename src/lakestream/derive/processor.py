"""``lakestream process``: the ksqlDB statements, run exactly once in state.

The program is the compiled ``derive/ksqldb/*.sql`` (:mod:`.shipped`) followed by
the registered statement files (:mod:`.programs`); the
:class:`~lakestream.derive.executor.Executor` runs it. Every processor records the
program it runs in the state store, and one whose program is no longer the store's
is refused its next commit (and checks every few seconds between batches, for a
processor that holds no partition). For each batch of one input
partition: decode and check the events and run the statements' SQL (no lock); then,
inside one transaction of the state store holding its store-wide lock
(:mod:`lakestream.derive.state.store`): trim what the store already holds, commit the
batch's dead letters to the ``processor`` DLQ in the lake (idempotent by offset), merge
the tables' deltas into the exact state, publish every output and wait for the broker's
acknowledgement, and only then commit state and input offsets together.

A crash before the commit replays the batch: the derived streams may repeat records
(each carries ``_source_partition`` and ``_source_offset`` and goes to the partition of
its source, so ``ingest`` drops the repeats) and tables may repeat a key's latest value
(an upsert). No Kafka transactions are needed (Tansu accepts but does not isolate them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from lakestream.config import Settings
from lakestream.derive.executor import BatchOutput, Executor, PreparedBatch
from lakestream.derive.inputs import InputBatch
from lakestream.derive.outputs import OutputPublisher
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.shipped import INPUT_TOPIC, STREAMS, shipped_plan
from lakestream.derive.state import StateStore, StateStoreUnavailableError
from lakestream.derive.statements import Plan
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.consumer import BatchingConsumer, ConsumeOptions, ConsumeReport
from lakestream.lake.dead_letters import commit_dead_letters, dead_letter_table
from lakestream.lake.delta import app_id, check_not_legacy
from lakestream.lake.layout import dlq_path
from lakestream.lake.storage import Storage
from lakestream.lake.writer import BatchId

log = logging.getLogger(__name__)

DLQ_FEED = "processor"
PROGRAM_CHECK_S = 5.0  # how often a processor checks, between batches, that its program runs
BLACKLISTED = "transaction_stream_blacklisted"

__all__ = ["DLQ_FEED", "INPUT_TOPIC", "STREAMS", "ProcessReport", "Processor"]


def program_fingerprint(plan: Plan) -> str:
    """What identifies a program: the hash of its compiled settings, sources and outputs."""
    text = repr((plan.settings, plan.sources, plan.outputs))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ProcessReport(ConsumeReport):
    """What a processor run consumed and published."""

    processed: int = 0
    rejected: int = 0
    late: int = 0
    published: int = 0
    blacklisted: int = 0


class Processor(BatchingConsumer):
    """Consumes the program's input topics and publishes its streams and tables.

    Args:
        settings: Lakestream settings (``state_url``, ``data_dir``).
        bootstrap: The Kafka bootstrap servers.
        storage: The lake (for the ``processor`` dead letters).
        anon_key: ``LAKESTREAM_ANON_KEY`` (``HMAC_SHA256``).
        options: How the consumer runs.
        publisher: Where outputs go (waits for the broker's acknowledgements).
        plan: The program; the shipped one by default.
    """

    flush_what = "publish the derived records"

    def __init__(self, settings: Settings, bootstrap: str, storage: Storage, anon_key: bytes,
                 options: ConsumeOptions, publisher: OutputPublisher,
                 plan: Plan | None = None) -> None:
        self.plan = plan or shipped_plan()
        self.reference = ReferenceStore(Path(settings.data_dir))
        self.store = StateStore.for_settings(settings)
        self.fingerprint = program_fingerprint(self.plan)
        self._program_checked = time.monotonic()
        try:
            self.executor = Executor(self.plan, self.store, self.reference, anon_key)
            self.store.claim_program(self.fingerprint, f"{socket.gethostname()} pid {os.getpid()} "
                                     f"at {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}")
        except BaseException:
            self.store.close()
            raise
        super().__init__(settings, bootstrap, self.executor.topics, options, ProcessReport())
        self.report: ProcessReport
        self.storage = storage
        self.publisher = publisher
        check_not_legacy(storage, dlq_path(DLQ_FEED))
        self.dead_letters = dead_letter_table(storage, DLQ_FEED)

    def start_offset(self, topic: str, partition: int) -> int | None:
        """Resume from the state (the dead letters' table is never half-committed)."""
        return self.store.next_offset(topic, partition)

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """Where the state stands for the partition."""
        return self.store.next_offset(topic, partition)

    def flush_partition(self, buffer: PartitionBuffer) -> None:
        """Derive, publish and commit one batch (the consumer loop retries it whole)."""
        self._process(buffer)

    def between_batches(self) -> None:
        """Every few seconds: stop once another program claimed the store.

        A batch's commit checks it too, but a host given no partition (more hosts than
        partitions, or a rebalance that moved them all away) commits nothing and would
        run the old program unnoticed until a partition came back.
        """
        now = time.monotonic()
        if now - self._program_checked < PROGRAM_CHECK_S:
            return
        self._program_checked = now
        try:
            self.store.check_program(self.fingerprint)
        except StateStoreUnavailableError as exc:  # the next commit, or check, will tell
            log.debug("program check skipped: %s", exc)

    def run(self) -> ProcessReport:
        """Consume until stopped or idle, then release the state store."""
        try:
            report: ProcessReport = super().run()
            return report
        finally:
            self.store.close()
            self.executor.close()

    # -- one batch ------------------------------------------------------------------------

    def _process(self, buf: PartitionBuffer) -> None:
        batch = InputBatch(buf.topic, buf.partition, buf.values, buf.keys, buf.offsets,
                           buf.timestamps)
        prepared = self.executor.prepare(batch)
        with self.store.transaction() as tx:
            tx.check_program(self.fingerprint)  # no batch of an outdated program commits
            out = self.executor.apply(prepared, tx)
            if out is None:
                return  # retried after its state committed: never add its aggregates twice
            self._commit_rejects(prepared, out)
            published = self.publisher.publish(buf.partition, out.streams, out.tables)
            tx.set_position(buf.topic, buf.partition, out.next_offset, out.stream_time)
        self.report.processed += out.processed
        self.report.blacklisted += out.records.get(BLACKLISTED, 0)
        self.report.rejected += len(out.rejected)
        self.report.late += out.late
        self.report.published += published

    def _commit_rejects(self, prepared: PreparedBatch, out: BatchOutput) -> None:
        """Commit the batch's dead letters to the Delta table before the state commits.

        The table's application transaction for the partition says how far it
        holds: a batch replayed after a crash between this commit and the state's
        adds only what lies past it.
        """
        if not out.rejected:
            return
        batch = prepared.batch
        ident = app_id(batch.topic, batch.partition)
        last = self.dead_letters.transaction_versions([ident])[ident]
        first = out.first
        offsets = list(batch.offsets[first:])
        rows = BatchId(DLQ_FEED, DLQ_FEED, batch.topic, batch.partition, offsets[0],
                       offsets[-1])
        keys = [k.decode("utf-8", "replace") if k is not None else None
                for k in batch.keys[first:]]
        rejected = [(i - first, why) for i, why in out.rejected]
        commit_dead_letters(self.dead_letters, rows, last, rejected,
                            list(batch.values[first:]), keys, offsets,
                            list(batch.timestamps[first:]))

