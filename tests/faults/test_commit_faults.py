"""Every step of a commit failing once, deterministically: retried, never fenced, never doubled.

The live outage of scenario 3 lands wherever it lands; these runs put a
transient storage failure on purpose before and after each step of the
commit protocols (a PUT whose response is lost still stored the object), on a
real broker and a real lake:

- ingest: staging a data file, writing the ledger manifest (the commit
  point), moving files into place, pruning old manifests, ``_metadata.json``;
- process: staging a dead-letter file, and moving it into place *after* the
  state transaction committed (a retry must not add the batch's aggregates
  a second time).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydantic import SecretStr

from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.derive.sql import TABLES
from lakestream.errors import StorageError
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.producer import produce
from lakestream.lake.storage import FileInfo, Storage
from tests.conftest import unique_topic, write_feed
from tests.derive.expected import expected_tables
from tests.faults.chaos import parquet_rows, topic_records, write_config
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.ingest.helpers import generated, send

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@dataclass
class Fault:
    """Fail the ``nth`` call of ``op`` on a path containing ``match``, once."""

    op: str
    match: str
    nth: int
    after: bool  # the operation took effect, then the error (a lost response)
    seen: int = 0
    fired: bool = False

    def __str__(self) -> str:
        return f"{self.op}({self.match!r}) #{self.nth} {'after' if self.after else 'before'}"


class FlakyStorage(Storage):
    """The lake's storage with scheduled transient failures."""

    def __init__(self, inner: Storage, faults: list[Fault]) -> None:
        super().__init__(inner.fs, inner.base, inner.uri)
        self.faults = faults

    def _call(self, op: str, path: str, call: Callable[[], Any]) -> Any:
        for fault in self.faults:
            if fault.op == op and not fault.fired and fault.match in path:
                fault.seen += 1
                if fault.seen == fault.nth:
                    fault.fired = True
                    if fault.after:
                        call()
                    raise StorageError(f"injected failure: {fault}")
        return call()

    def write_atomic(self, rel: str, data: bytes | memoryview) -> None:
        self._call("write_atomic", rel, lambda: super(FlakyStorage, self).write_atomic(rel, data))

    def move(self, src: str, dst: str) -> None:
        self._call("move", src, lambda: super(FlakyStorage, self).move(src, dst))

    def delete(self, rel: str) -> None:
        self._call("delete", rel, lambda: super(FlakyStorage, self).delete(rel))

    def list_files(self, prefix: str, recursive: bool = True) -> list[FileInfo]:
        files: list[FileInfo] = self._call(
            "list_files", prefix, lambda: super(FlakyStorage, self).list_files(prefix, recursive))
        return files


@contextmanager
def producing(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]],
              rate: float = 600.0) -> Iterator[None]:
    """Produce ``messages`` at ``rate``/s in the background (many small batches to commit)."""
    sender = threading.Thread(target=produce, args=(
        {"bootstrap.servers": bootstrap, "linger.ms": 5}, topic, messages, rate))
    sender.start()
    try:
        yield
    finally:
        sender.join()


def _api(config: Path, faults: list[Fault]) -> Lakestream:
    settings = load_settings(config, environ={}, cwd=config.parent)
    api = Lakestream(settings.model_copy(update={"anon_key": SecretStr(ANON_KEY)}))
    api.__dict__["storage"] = FlakyStorage(api.storage, faults)  # the cached property
    return api


def test_ingest_survives_a_failure_before_and_after_each_commit_step(
        tmp_path: Path, broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture,
        counts: FaultCounts) -> None:
    topic = unique_topic("faults-steps")
    write_feed(tmp_path / "feeds", "feed", topic)
    config = write_config(tmp_path, kafka={"bootstrap_servers": broker.bootstrap_servers},
                          lake={"max_batch_records": 100, "flush_interval_s": 0.2})
    messages = generated(3000, seed=SEED % 1000)
    send(broker.bootstrap_servers, topic, [])
    faults = [
        Fault("write_atomic", "_staging/", 5, after=False),
        Fault("write_atomic", "_staging/", 9, after=True),
        Fault("write_atomic", "/_ledger/", 4, after=True),
        Fault("write_atomic", "/_ledger/", 7, after=False),
        Fault("move", "_staging/", 6, after=False),
        Fault("move", "_staging/", 11, after=True),
        Fault("delete", "/_ledger/", 3, after=True),
        Fault("write_atomic", "_metadata.json", 2, after=True),
        Fault("list_files", "_ledger", 10, after=False),
    ]
    api = _api(config, faults)
    engine = api.ingest_engine(api.select_feeds(None, "feed"), until_idle=True,
                               idle_timeout_s=2.0, group_id=f"steps-{uuid.uuid4().hex[:6]}")
    with caplog.at_level(logging.WARNING), producing(broker.bootstrap_servers, topic, messages):
        report = engine.run()

    assert "another consumer owns it" not in caplog.text, "a retry fenced itself out"
    rows = parquet_rows(tmp_path / "lake", "streams/feed",
                        "transaction_id, _kafka_partition, _kafka_offset")
    ids = Counter(r[0] for r in rows)
    assert ids.most_common(1)[0][1] == 1 and len(ids) == len(messages), "exactly once"
    assert report.written == len(messages)
    assert not list((tmp_path / "lake" / "_staging").rglob("*.parquet"))
    assert [(str(f), f.seen) for f in faults if not f.fired] == []
    counts.faults["storage failure at a commit step"] += len(faults)
    counts.records["commit-step failures"] += len(rows)


def test_processor_retry_after_its_state_committed_does_not_count_twice(
        tmp_path: Path, own_broker: EmbeddedBroker, counts: FaultCounts) -> None:
    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap},
                          lake={"max_batch_records": 100, "flush_interval_s": 0.2})
    good = generated(2000, seed=SEED % 997)
    bad = [b"{oops", json.dumps({**json.loads(good[0][1]), "amount": -5}).encode()]
    messages = [m for i, g in enumerate(good)
                for m in ([g, (f"bad{i}".encode(), bad[i % 2])] if i % 25 == 7 else [g])]
    send(bootstrap, "transactions", [])
    faults = [
        Fault("write_atomic", "_staging/processor", 2, after=True),
        Fault("move", "_staging/processor", 3, after=False),  # after the state committed
        Fault("move", "_staging/processor", 5, after=True),
    ]
    processor = _api(config, faults).processor(until_idle=True, idle_timeout_s=2.0)
    with producing(bootstrap, "transactions", messages):
        report = processor.run()

    assert [(str(f), f.seen) for f in faults if not f.fired] == []
    rejected = len(messages) - len(good)
    assert (report.processed, report.rejected) == (len(good), rejected)
    expected = expected_tables([v for _, v in good])
    for table, rows in expected.items():
        assert _latest(bootstrap, table) == rows, f"table topic {table}"
    dlq = parquet_rows(tmp_path / "lake", "_dlq/processor", "_kafka_partition, _kafka_offset")
    assert len(dlq) == len(set(dlq)) == rejected
    counts.faults["storage failure at a commit step"] += len(faults)
    counts.records["commit-step failures"] += len(good) + sum(len(r) for r in expected.values())


def _latest(bootstrap: str, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The latest value per key of a table's changelog topic."""
    keys = TABLES[table][0]
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _, _, value in topic_records(bootstrap, table, idle_s=2.0):
        row = json.loads(value)
        latest[tuple(row.pop(k) for k in keys)] = row
    return latest


# -- table feeds: versions of a changelog topic -----------------------------------------------

TABLE = "payment_method_totals"


def _changelog(start: int, keys: range, rounds: int) -> list[tuple[bytes | None, bytes]]:
    """Successive values of ``keys`` (the value's count grows with each round)."""
    return [(f"PM{k:02d}".encode(), json.dumps({
        "payment_method_id": f"PM{k:02d}", "payment_method_name": f"method {k}",
        "total_amount": float(start + r * 10 + k), "transaction_count": start + r,
        "avg_amount": 1.5}).encode()) for r in range(rounds) for k in keys]


def _latest_of(messages: list[tuple[bytes | None, bytes]]) -> dict[str, int]:
    return {json.loads(v)["payment_method_id"]: json.loads(v)["transaction_count"]
            for _, v in messages}


def _current_version(lake: Path) -> dict[str, int]:
    folder = lake / "tables" / TABLE
    current = json.loads((folder / "_metadata.json").read_text())["current_version"]
    rows = duckdb.sql(f"SELECT payment_method_id, transaction_count FROM read_parquet("
                      f"'{folder}/version={current}/*.parquet', hive_partitioning=false)")
    return dict(rows.fetchall())


def test_a_table_version_whose_file_move_failed_is_finished_not_lost(
        tmp_path: Path, own_broker: EmbeddedBroker, counts: FaultCounts) -> None:
    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap},
                          lake={"snapshot_interval_s": 0.3})
    messages = _changelog(0, range(20), 40)
    send(bootstrap, TABLE, [])
    faults = [Fault("move", f"_staging/tables__{TABLE}", 2, after=False)]  # after its manifest
    api = _api(config, faults)
    engine = api.ingest_engine(api.select_feeds(None, TABLE), until_idle=True,
                               idle_timeout_s=2.0, group_id="tables")
    with producing(bootstrap, TABLE, messages, rate=300):
        engine.run()

    assert [str(f) for f in faults if not f.fired] == []
    assert _current_version(tmp_path / "lake") == _latest_of(messages)
    counts.faults["storage failure at a commit step"] += len(faults)
    counts.records["commit-step failures"] += len(messages)


def test_a_fenced_table_consumer_rereads_what_the_winning_version_does_not_cover(
        tmp_path: Path, own_broker: EmbeddedBroker, counts: FaultCounts) -> None:
    from lakestream.ingest.tables import TableIngest
    from lakestream.kafka.client import consumer_config, topic_partitions

    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap})
    api = _api(config, [])
    feed = api.select_feeds(None, TABLE)[0]
    send(bootstrap, TABLE, [])
    parts = {TABLE: topic_partitions(bootstrap, TABLE)}

    def member() -> TableIngest:
        ingest = TableIngest(api.storage, [feed], consumer_config(api.settings, bootstrap, "t"),
                             snapshot_interval_s=3600, keep=7)
        ingest.start(parts)
        return ingest

    def drain(ingest: TableIngest) -> None:
        quiet = time.monotonic()
        while time.monotonic() - quiet < 1.0:
            if ingest.poll():
                quiet = time.monotonic()
            time.sleep(0.05)

    a, b = member(), member()
    sent = _changelog(0, range(10), 3)
    send(bootstrap, TABLE, sent)
    drain(a), drain(b)
    a.snapshot_due(force=True)  # v1
    more = _changelog(100, range(5), 2)  # keys 0-4 change ...
    send(bootstrap, TABLE, more)
    drain(b), drain(a)
    b.snapshot_due(force=True)  # fenced by a's v1: b reloads it
    last = _changelog(200, range(5, 10), 2)  # ... then keys 5-9 change
    send(bootstrap, TABLE, last)
    drain(b)
    b.snapshot_due(force=True)  # v2
    a.close(), b.close()

    assert _current_version(tmp_path / "lake") == _latest_of(sent + more + last)
    counts.records["commit-step failures"] += len(sent + more + last)
