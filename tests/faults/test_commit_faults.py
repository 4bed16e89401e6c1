"""Every step of a Delta commit failing once, deterministically: retried, never doubled.

The live outage of scenario 3 lands wherever it lands; these runs put a
transient failure on purpose before and after each step of a Delta commit
(``lakestream.lake.delta``), on a real broker and a real lake:

- reading the table's log (the fence check), creating the table (its first
  log entry), and the commit itself (``write_deltalake``: data files, then the
  next log entry if absent), of the dead-letter table and of the rows table,
  and ``_metadata.json``. A failure *after* a call returned is a lost response:
  the commit landed and the writer believes it failed, so its retry finds its
  own commit in the log (it must not drop the batch as fenced nor land it twice);
- SIGKILL of the `ingest` process just before a commit, between its data files
  and its log entry (files no log entry references: no reader may see them),
  and just after it, on the dead-letter table and on the rows table;
- process: the dead-letter commit failing before and after (its state must not
  count a batch twice); tables: a version whose commit landed while its writer
  saw a failure is kept, not lost.

Every result is read through the Delta log by delta-rs (``parquet_rows``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.derive.shipped import TABLES
from lakestream.errors import StorageUnavailableError
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.producer import produce
from lakestream.lake.storage import Storage
from tests.conftest import subprocess_env, unique_topic, write_feed
from tests.derive.expected import expected_tables
from tests.faults.chaos import LAKESTREAM, parquet_rows, topic_records, write_config
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.ingest.helpers import generated, send

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@dataclass
class Fault:
    """Fail the ``nth`` call of ``op`` on a table (or path) containing ``match``, once.

    ``op``: ``commit`` (``deltalake.write_deltalake``), ``create`` (``DeltaTable.create``),
    ``read`` (``DeltaTable.update_incremental``: the log read of every fence check) or
    ``metadata`` (``Storage.write_atomic`` of ``_metadata.json``).
    """

    op: str
    match: str
    nth: int
    after: bool  # the call took effect, then the error (a lost response)
    seen: int = 0
    fired: bool = False

    def __str__(self) -> str:
        return f"{self.op}({self.match!r}) #{self.nth} {'after' if self.after else 'before'}"


class InjectedFailure(OSError):
    """A transient I/O failure, as a dropped connection to the store would raise."""


class DeltaFaults:
    """Scheduled failures around the real delta-rs calls of the commit path (thread-safe)."""

    def __init__(self, faults: list[Fault]) -> None:
        self.faults = faults
        self._lock = threading.Lock()

    def call(self, op: str, where: str, call: Callable[[], Any]) -> Any:
        fire = None
        with self._lock:
            for fault in self.faults:
                if fault.op == op and not fault.fired and fault.match in where:
                    fault.seen += 1
                    if fault.seen == fault.nth:
                        fault.fired = True
                        fire = fault
                        break
        if fire is None:
            return call()
        if fire.after:
            call()
        if op == "metadata":  # what the lake's Storage raises for a failed I/O
            raise StorageUnavailableError(f"injected failure: {fire}")
        raise InjectedFailure(f"injected failure: {fire}")  # what delta-rs raises

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import deltalake
        from deltalake import DeltaTable

        write, create, update = (deltalake.write_deltalake, DeltaTable.create,
                                 DeltaTable.update_incremental)

        def flaky_write(table: Any, *args: Any, **kwargs: Any) -> Any:
            uri = str(getattr(table, "table_uri", table))
            return self.call("commit", uri, lambda: write(table, *args, **kwargs))

        def flaky_create(uri: Any, *args: Any, **kwargs: Any) -> Any:
            return self.call("create", str(uri), lambda: create(uri, *args, **kwargs))

        def flaky_update(table: Any, *args: Any, **kwargs: Any) -> Any:
            return self.call("read", str(table.table_uri), lambda: update(table, *args, **kwargs))

        monkeypatch.setattr(deltalake, "write_deltalake", flaky_write)
        monkeypatch.setattr(DeltaTable, "create", flaky_create)
        monkeypatch.setattr(DeltaTable, "update_incremental", flaky_update)


class FlakyStorage(Storage):
    """The lake's storage, whose ``write_atomic`` goes through the scheduled failures."""

    def __init__(self, inner: Storage, faults: DeltaFaults) -> None:
        super().__init__(inner.fs, inner.base, inner.uri)
        self.scheduled = faults

    def write_atomic(self, rel: str, data: bytes | memoryview) -> None:
        self.scheduled.call("metadata", rel,
                            lambda: super(FlakyStorage, self).write_atomic(rel, data))


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


def _api(config: Path, faults: list[Fault], monkeypatch: pytest.MonkeyPatch) -> Lakestream:
    settings = load_settings(config, environ={}, cwd=config.parent)
    api = Lakestream(settings.model_copy(update={"anon_key": SecretStr(ANON_KEY)}))
    scheduled = DeltaFaults(faults)
    scheduled.install(monkeypatch)
    api.__dict__["storage"] = FlakyStorage(api.storage, scheduled)  # the cached property
    return api


def _with_bad_records(good: list[tuple[bytes | None, bytes]], every: int = 23
                      ) -> list[tuple[bytes | None, bytes]]:
    """``good`` with a record the decoder rejects after every ``every``-th one."""
    bad = [b"{oops", json.dumps({"transaction_id": "no-time"}).encode()]
    return [m for i, g in enumerate(good)
            for m in ([g, (f"bad{i}".encode(), bad[i % 2])] if i % every == 7 else [g])]


def _check_exactly_once(lake: Path, bootstrap: str, topic: str,
                        messages: list[tuple[bytes | None, bytes]]) -> int:
    """Every record of the topic once, in the rows table or the dead-letter table (through
    their logs); the good ones by transaction id. How many rows were checked."""
    rows = parquet_rows(lake, "streams/feed", "transaction_id, _kafka_partition, _kafka_offset")
    dead = parquet_rows(lake, "_dlq/feed", "_kafka_partition, _kafka_offset")
    good = {json.loads(v)["transaction_id"] for k, v in messages
            if not (k or b"").startswith(b"bad")}
    ids = Counter(r[0] for r in rows)
    assert ids and ids.most_common(1)[0][1] == 1, "a record landed twice"
    assert set(ids) == good, f"{len(good - set(ids))} records missing"
    landed = Counter([(p, o) for _, p, o in rows] + [(p, o) for p, o in dead])
    assert landed.most_common(1)[0][1] == 1, "an offset landed twice (rows and dead letters)"
    topic_offsets = {(p, o) for p, o, _ in topic_records(bootstrap, topic)}
    assert set(landed) == topic_offsets, f"{len(topic_offsets - set(landed))} offsets missing"
    assert len(dead) == len(messages) - len(good)
    return len(rows) + len(dead)


def test_ingest_survives_a_failure_before_and_after_each_commit_step(
        tmp_path: Path, broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, counts: FaultCounts) -> None:
    topic = unique_topic("faults-steps")
    write_feed(tmp_path / "feeds", "feed", topic)
    config = write_config(tmp_path, kafka={"bootstrap_servers": broker.bootstrap_servers},
                          lake={"max_batch_records": 100, "flush_interval_s": 0.2})
    messages = _with_bad_records(generated(4000, seed=SEED % 1000))
    send(broker.bootstrap_servers, topic, [])
    faults = [
        Fault("create", "_dlq/feed", 1, after=False),
        Fault("create", "streams/feed", 1, after=True),
        Fault("read", "streams/feed", 12, after=False),
        Fault("read", "streams/feed", 19, after=True),
        Fault("read", "_dlq/feed", 5, after=False),
        Fault("commit", "_dlq/feed", 2, after=False),
        Fault("commit", "_dlq/feed", 4, after=True),  # then the rows commit of the retry
        # a flush round is one commit per table (all partitions): ~8-9 rows commits in
        # the run, the retries' back-off included
        Fault("commit", "streams/feed", 3, after=False),
        Fault("commit", "streams/feed", 5, after=True),
        Fault("commit", "streams/feed", 7, after=True),
        Fault("metadata", "_metadata.json", 2, after=True),
        Fault("metadata", "_metadata.json", 4, after=False),
    ]
    api = _api(config, faults, monkeypatch)
    engine = api.ingest_engine(api.select_feeds(None, "feed"), until_idle=True,
                               idle_timeout_s=2.0, group_id=f"steps-{uuid.uuid4().hex[:6]}")
    with caplog.at_level(logging.WARNING), producing(broker.bootstrap_servers, topic, messages,
                                                     rate=300):  # ~13 s: many small commits
        report = engine.run()

    assert [(str(f), f.seen) for f in faults if not f.fired] == []
    assert "injected failure" in caplog.text and "retrying" in caplog.text
    assert "dropping this consumer's buffer" not in caplog.text, "a retry fenced itself out"
    checked = _check_exactly_once(tmp_path / "lake", broker.bootstrap_servers, topic, messages)
    # rows counted once each although three commits were retried after they had landed
    assert report.written == len([k for k, _ in messages if not (k or b"").startswith(b"bad")])
    counts.faults["failure at a Delta commit step"] += len(faults)
    counts.records["commit-step failures"] += checked


KILLER = textwrap.dedent("""
    import os, signal, sys, threading, time
    from pathlib import Path

    import deltalake

    op, match, nth, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    write, seen = deltalake.write_deltalake, [0]

    def data_files():
        return {p for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts}

    def killing_write(table, *args, **kwargs):
        if match not in str(getattr(table, "table_uri", table)):
            return write(table, *args, **kwargs)
        seen[0] += 1
        if seen[0] != nth:
            return write(table, *args, **kwargs)
        if op == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        if op == "after":
            write(table, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        # between: die once the commit's data files exist, before its log entry if we can
        log, files = len(list((folder / "_delta_log").glob("*.json"))), data_files()
        threading.Thread(target=write, args=(table, *args), kwargs=kwargs, daemon=True).start()
        while data_files() == files:
            pass
        print("between: log entries", log, "->", len(list((folder / "_delta_log").glob("*.json"))),
              flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    deltalake.write_deltalake = killing_write
    sys.argv = ["lakestream", *sys.argv[5:]]
    from lakestream.cli import main
    sys.exit(main())
""")


def _live_files(dataset: Path) -> set[str]:
    """The data files the Delta log holds live (delta-rs)."""
    from deltalake import DeltaTable

    return {os.path.basename(u) for u in DeltaTable(str(dataset)).file_uris()}


def test_sigkill_before_between_and_after_each_delta_commit_loses_and_doubles_nothing(
        tmp_path: Path, broker: EmbeddedBroker, counts: FaultCounts) -> None:
    topic = unique_topic("faults-kill9")
    write_feed(tmp_path / "feeds", "feed", topic)
    # a flush round is one commit per table for all partitions: rounds of at most 40
    # records a partition give each run several commits of its ~84 records a partition
    config = write_config(tmp_path, kafka={"bootstrap_servers": broker.bootstrap_servers},
                          lake={"max_batch_records": 40, "flush_interval_s": 0.2})
    messages = _with_bad_records(generated(3000, seed=SEED % 991), every=11)
    lake = tmp_path / "lake"
    ingest = ["--config", str(config), "ingest", "--feed", "feed", "--group", "kill9",
              "--until-idle", "--idle-timeout", "2"]
    # (when, table, nth commit of the run): a run lands what came since the last one first
    kills = [("before", "streams/feed", 1), ("between", "streams/feed", 1),
             ("after", "streams/feed", 1), ("before", "_dlq/feed", 1),
             ("between", "_dlq/feed", 1),
             ("after", "_dlq/feed", 1),  # its rows' commit not made: the batch is replayed
             ("after", "streams/feed", 2), ("between", "streams/feed", 2)]
    chunk = len(messages) // (len(kills) + 4) + 1
    pending = list(messages)
    between_orphans = killed = 0
    for when, match, nth in kills:
        folder = lake / match
        # "between" races the writer's log entry (it dies once the data files exist): on
        # a loaded machine the entry may be written first, then the step is run again on
        # new records, up to 3 more times; every run is a real kill -9 at a commit step
        for _attempt in range(4 if when == "between" else 1):
            batch, pending = pending[:chunk], pending[chunk:]
            send(broker.bootstrap_servers, topic, batch)
            done = subprocess.run(
                [sys.executable, "-c", KILLER, when, match, str(nth), str(folder), *ingest],
                cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=180)
            assert done.returncode == -signal.SIGKILL, (when, match, nth, done.stderr[-3000:])
            killed += 1
            if when != "between":
                break
            on_disk = {p.name for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts}
            orphans = len(on_disk - _live_files(folder))
            between_orphans += orphans
            if orphans or len(pending) < chunk:
                break
    send(broker.bootstrap_servers, topic, pending)
    code = subprocess.run([*LAKESTREAM, *ingest], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=240)
    assert code.returncode == 0, code.stderr[-3000:]

    checked = _check_exactly_once(lake, broker.bootstrap_servers, topic, messages)
    # the kills between landed data files no log entry references: on disk, a plain glob
    # would count them; through the log (above) they do not exist
    assert between_orphans > 0, "no kill fell between a commit's data files and its log entry"
    counts.kills["ingest: SIGKILL at a Delta commit step"] += killed
    counts.records["commit-step failures"] += checked
    counts.notes["kill between data files and log entry: unreferenced files"] = \
        str(between_orphans)


def test_processor_retry_after_its_dead_letters_committed_does_not_count_twice(
        tmp_path: Path, own_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch,
        counts: FaultCounts) -> None:
    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap},
                          lake={"max_batch_records": 100, "flush_interval_s": 0.2})
    good = generated(2000, seed=SEED % 997)
    bad = [b"{oops", json.dumps({**json.loads(good[0][1]), "amount": -5}).encode()]
    messages = [m for i, g in enumerate(good)
                for m in ([g, (f"bad{i}".encode(), bad[i % 2])] if i % 25 == 7 else [g])]
    send(bootstrap, "transactions", [])
    faults = [
        Fault("create", "_dlq/processor", 1, after=True),
        Fault("commit", "_dlq/processor", 2, after=True),  # landed; the state has not committed
        Fault("commit", "_dlq/processor", 3, after=False),
        Fault("commit", "_dlq/processor", 5, after=True),
        Fault("read", "_dlq/processor", 6, after=False),
    ]
    processor = _api(config, faults, monkeypatch).processor(until_idle=True, idle_timeout_s=2.0)
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
    counts.faults["failure at a Delta commit step"] += len(faults)
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
    """The current version's rows, read through the table's Delta log (delta-rs)."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    folder = lake / "tables" / TABLE
    current = json.loads((folder / "_metadata.json").read_text())["current_version"]
    live = DeltaTable(str(folder)).to_pyarrow_dataset().to_table()
    rows = live.filter(pc.field("version") == current)
    return dict(zip(rows.column("payment_method_id").to_pylist(),
                    rows.column("transaction_count").to_pylist(), strict=True))


def test_a_table_version_whose_commit_failed_around_the_log_entry_is_kept_not_lost(
        tmp_path: Path, own_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch,
        counts: FaultCounts) -> None:
    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap},
                          lake={"snapshot_interval_s": 0.3})
    messages = _changelog(0, range(20), 80)  # ~5 s: a version every 0.3 s
    send(bootstrap, TABLE, [])
    table = f"tables/{TABLE}"
    faults = [
        Fault("create", table, 1, after=True),
        Fault("commit", table, 2, after=True),  # the version landed; its writer saw a failure
        Fault("commit", table, 3, after=False),
        Fault("read", table, 6, after=False),
    ]
    api = _api(config, faults, monkeypatch)
    engine = api.ingest_engine(api.select_feeds(None, TABLE), until_idle=True,
                               idle_timeout_s=2.0, group_id="tables")
    with producing(bootstrap, TABLE, messages, rate=300):
        engine.run()

    assert [(str(f), f.seen) for f in faults if not f.fired] == []
    assert _current_version(tmp_path / "lake") == _latest_of(messages)
    counts.faults["failure at a Delta commit step"] += len(faults)
    counts.records["commit-step failures"] += len(messages)


def test_a_fenced_table_consumer_rereads_what_the_winning_version_does_not_cover(
        tmp_path: Path, own_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch,
        counts: FaultCounts) -> None:
    from lakestream.ingest.tables import TableIngest
    from lakestream.kafka.client import consumer_config, topic_partitions

    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap})
    api = _api(config, [], monkeypatch)
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
    drain(a)
    drain(b)
    a.snapshot_due(force=True)  # v1
    more = _changelog(100, range(5), 2)  # keys 0-4 change ...
    send(bootstrap, TABLE, more)
    drain(b)
    drain(a)
    b.snapshot_due(force=True)  # fenced by a's v1: b reloads it
    last = _changelog(200, range(5, 10), 2)  # ... then keys 5-9 change
    send(bootstrap, TABLE, last)
    drain(b)
    b.snapshot_due(force=True)  # v2
    a.close()
    b.close()

    assert _current_version(tmp_path / "lake") == _latest_of(sent + more + last)
    counts.records["commit-step failures"] += len(sent + more + last)
