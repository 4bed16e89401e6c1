"""The processor's batch commit without a broker: dead letters, publishing and the state
commit, when the broker fails between them and when a batch comes again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from lakestream.config import load_settings
from lakestream.derive.processor import Processor
from lakestream.errors import BrokerUnavailableError
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.kafka.consumer import ConsumeOptions
from lakestream.lake.storage import open_storage
from tests.derive.statements.helpers import spec_event


class Broker:
    """Stands in for the publisher: keeps what was acknowledged, or fails when told to."""

    def __init__(self) -> None:
        self.fail = False
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def publish(self, partition: int, streams: dict[str, Any], tables: dict[str, Any]) -> int:
        if self.fail:
            raise BrokerUnavailableError("publishing derived records failed: broker down")
        batch = [(topic, k, v) for topic, (keys, values) in streams.items()
                 for k, v in zip(keys, values, strict=True)]
        batch += [(topic, k, v) for topic, messages in tables.items() for k, v in messages]
        self.sent += batch
        return len(batch)


def processor(tmp_path: Path, broker: Broker) -> Processor:
    settings = load_settings(environ={"LAKESTREAM_DATA_DIR": str(tmp_path / "data"),
                                      "LAKESTREAM_LAKE_ROOT": str(tmp_path / "lake")},
                             cwd=tmp_path)
    return Processor(settings, "unused:9092", open_storage(settings.lake.root, settings.s3),
                     b"key", ConsumeOptions(group_id="test"), broker)  # type: ignore[arg-type]


def buffer(values: list[bytes], first: int, partition: int = 0) -> PartitionBuffer:
    buf = PartitionBuffer("transactions", partition)
    for i, value in enumerate(values, first):
        buf.add(value, b"U00042", i, 1_736_944_496_789)
    return buf


def dead_letters(tmp_path: Path) -> list[tuple[int, str]]:
    rows = DeltaTable(str(tmp_path / "lake" / "_dlq" / "processor")).to_pyarrow_table()
    return sorted(zip(rows.column("_kafka_offset").to_pylist(),
                      rows.column("reason").to_pylist(), strict=True))


def test_a_batch_commits_dead_letters_outputs_and_offsets_together(tmp_path: Path) -> None:
    broker = Broker()
    proc = processor(tmp_path, broker)
    try:
        good = [json.dumps(spec_event(transaction_id=f"t{i}")).encode() for i in range(3)]
        bad = json.dumps(spec_event(transaction_id="bad", status="lost")).encode()
        proc._process(buffer([good[0], bad, good[1], b"{", good[2]], 10))
        assert proc.store.next_offset("transactions", 0) == 15
        assert dead_letters(tmp_path) == [(11, "unknown status lost"),
                                          (13, "JSON parse error: Missing a name for object "
                                               "member.")]
        assert (proc.report.processed, proc.report.rejected) == (3, 2)
        flattened = [json.loads(v or b"") for t, _, v in broker.sent
                     if t == "transaction_flattened"]
        assert [r["_source_offset"] for r in flattened] == [10, 12, 14]
        summary = [json.loads(v or b"") for t, _, v in broker.sent
                   if t == "user_transaction_summary"]
        assert summary[-1]["transaction_count"] == 3
    finally:
        proc.store.close()
        proc.executor.close()


def test_a_broker_failure_commits_no_state_and_the_retry_counts_each_event_once(
        tmp_path: Path) -> None:
    broker = Broker()
    proc = processor(tmp_path, broker)
    try:
        values = [json.dumps(spec_event(transaction_id=f"t{i}", amount=10.0)).encode()
                  for i in range(4)] + [b"not json"]
        buf = buffer(values, 0)
        broker.fail = True
        with pytest.raises(BrokerUnavailableError):
            proc._process(buf)
        assert proc.store.next_offset("transactions", 0) is None
        assert len(dead_letters(tmp_path)) == 1  # committed first, idempotent by offset
        broker.fail = False
        proc._process(buf)  # the consumer loop's retry
        proc._process(buf)  # and once more, after the commit: nothing
        assert proc.store.next_offset("transactions", 0) == 5
        assert len(dead_letters(tmp_path)) == 1
        summary = [json.loads(v or b"") for t, _, v in broker.sent
                   if t == "user_transaction_summary"]
        assert [(r["transaction_count"], r["total_amount"]) for r in summary] == [(4, 40.0)]
        assert len([t for t, _, _ in broker.sent if t == "transaction_flattened"]) == 4
    finally:
        proc.store.close()
        proc.executor.close()


def test_a_processor_holding_no_partition_stops_when_another_program_claims_the_store(
        tmp_path: Path) -> None:
    """It commits nothing, so no commit would refuse it: it checks between batches."""
    from lakestream.derive import processor as processor_module
    from lakestream.derive.state import ProgramChangedError
    from lakestream.derive.statements import compile_statements
    from tests.derive.statements.helpers import shipped_plan

    old = processor(tmp_path, Broker())
    try:
        old._program_checked -= processor_module.PROGRAM_CHECK_S
        old.between_batches()  # its own program: nothing happens
        extra = compile_statements("CREATE TABLE n AS SELECT currency, COUNT(*) AS n FROM "
                                   "transaction_flattened GROUP BY currency EMIT CHANGES;",
                                   "n.sql", base=shipped_plan())
        settings = load_settings(environ={"LAKESTREAM_DATA_DIR": str(tmp_path / "data"),
                                          "LAKESTREAM_LAKE_ROOT": str(tmp_path / "lake")},
                                 cwd=tmp_path)
        new = Processor(settings, "unused:9092", open_storage(settings.lake.root, settings.s3),
                        b"key", ConsumeOptions(group_id="test"), Broker(),  # type: ignore[arg-type]
                        plan=extra)
        new.store.close()
        new.executor.close()
        old.between_batches()  # checked less than PROGRAM_CHECK_S ago: not yet
        old._program_checked -= processor_module.PROGRAM_CHECK_S
        with pytest.raises(ProgramChangedError, match="now runs other statements"):
            old.between_batches()
    finally:
        old.store.close()
        old.executor.close()
