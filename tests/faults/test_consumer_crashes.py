"""Scenario 1: SIGKILL of `ingest`, `process` and `ingest --sink warehouse` at random moments.

All three run at once on a private broker while events keep arriving; each is
killed 24 times (20 after it was seen committing, so kills land between and
inside batches, 4 during start-up, group join and recovery), with a second
`ingest` in the group for part of the run. Then each runs once more to the end
and the results are checked independently: every event once in every lake
stream, the tables and the warehouse's `live` snapshot equal to a plain-Python
recomputation (tests/derive/expected.py).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from lakestream.derive.processor import STREAMS
from lakestream.derive.shipped import TABLES
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from tests.derive.expected import expected_tables
from tests.faults.chaos import (
    Children,
    KillLoop,
    SteadyProducer,
    commits,
    files_state,
    parquet_rows,
    topic_records,
    write_config,
)
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.warehouse.checks import (
    FACT_COLUMNS,
    assert_facts_equal,
    assert_foreign_keys_hold,
    fact_rows,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

INGESTED = ("streams/transaction_stream", "streams/transaction_flattened",
            "streams/transaction_stream_anonymized", "streams/transaction_stream_blacklisted")
RATE = 150.0  # events/s while the consumers are being killed
GROUP = "faults-lake"
# the shipped default blacklist (derive/defaults/blacklist.json), restated as the test's oracle
BLACKLIST = {"user_ids": {"U00013", "U00666"}, "countries": {"KP", "IR"},
             "ip_prefixes": ("198.51.100.", "10.66."), "card_last4": {"0000", "6666"}}


def test_sigkill_of_every_consumer_at_random_moments_loses_and_doubles_nothing(
        tmp_path: Path, own_broker: EmbeddedBroker, children: Children,
        counts: FaultCounts) -> None:
    bootstrap = own_broker.bootstrap_servers
    config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap},
                          warehouse_url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    ensure_topics(bootstrap, ["transactions", *STREAMS, *TABLES], 4)
    base = ["--config", str(config)]
    lake, state = tmp_path / "lake", tmp_path / "data" / "state"

    def process() -> Any:
        return children.spawn("process", [*base, "process"], tmp_path,
                              LAKESTREAM_ANON_KEY=ANON_KEY)

    def ingest() -> Any:
        return children.spawn("ingest", [*base, "ingest", "--pipeline", "transactions",
                                         "--group", GROUP], tmp_path)

    def second_ingest() -> Any:
        return children.spawn("ingest-2", [*base, "ingest", "--pipeline", "transactions",
                                           "--group", GROUP], tmp_path)

    def warehouse() -> Any:
        return children.spawn("warehouse", [*base, "ingest", "--sink", "warehouse"], tmp_path)

    producer = SteadyProducer(bootstrap, "transactions", RATE, seed=SEED)
    producer.start()
    loops = [
        KillLoop("process", process, lambda: files_state(state, "processor.sqlite-wal"),
                 random.Random(f"{SEED}-process")),
        KillLoop("ingest", ingest, lambda: commits(lake, *INGESTED),
                 random.Random(f"{SEED}-ingest"), partner=second_ingest, partner_span=(12, 19)),
        KillLoop("warehouse", warehouse, lambda: files_state(tmp_path, "warehouse.db-wal"),
                 random.Random(f"{SEED}-warehouse")),
    ]
    for loop in loops:
        loop.start()
    reports = [loop.check() for loop in loops]
    producer.stop()

    for name, args, env in (
        ("process-final", ["process"], {"LAKESTREAM_ANON_KEY": ANON_KEY}),
        ("ingest-final", ["ingest", "--pipeline", "transactions", "--group", GROUP], {}),
        ("warehouse-final", ["ingest", "--sink", "warehouse"], {}),
    ):
        code, out = children.run(name, [*base, *args, "--until-idle", "--idle-timeout", "3"],
                                 tmp_path, env=env)
        assert code == 0, out[-3000:]

    counts.records["consumer crashes"] += _check_everything(tmp_path, bootstrap, producer.acked)
    for report in reports:
        assert report.mid_batch >= 20 and report.kills >= 24, report
        counts.kills[f"consumer: {report.name}"] += report.kills


def _check_everything(project: Path, bootstrap: str, values: list[bytes]) -> int:
    lake = project / "lake"
    events = [json.loads(v) for v in values]
    ids = {e["transaction_id"] for e in events}
    assert len(ids) == len(values) > 0
    topic = topic_records(bootstrap, "transactions")
    assert sorted(v for _, _, v in topic) == sorted(values), "the topic holds what was acked"
    checked = 0

    raw = parquet_rows(lake, "streams/transaction_stream",
                       "transaction_id, _kafka_partition, _kafka_offset")
    assert Counter(r[0] for r in raw).most_common(1)[0][1] == 1, "an event landed twice"
    assert {r[0] for r in raw} == ids, "an event is missing from transaction_stream"
    assert {(r[1], r[2]) for r in raw} == {(p, o) for p, o, _ in topic}
    checked += len(raw)

    for stream in ("transaction_flattened", "transaction_stream_anonymized"):
        rows = parquet_rows(lake, f"streams/{stream}", "transaction_id")
        assert len(rows) == len(ids) and {r[0] for r in rows} == ids, stream
        checked += len(rows)
    flagged = parquet_rows(lake, "streams/transaction_stream_blacklisted",
                           "transaction_id, blacklist_reason")
    assert Counter(r[0] for r in flagged) == Counter(
        e["transaction_id"] for e in events if _blacklisted(e)), "blacklisted stream"
    assert all(r[1] for r in flagged)
    checked += len(flagged)

    expected = expected_tables(values)
    for table, table_rows in expected.items():
        assert _lake_table(lake, table) == table_rows, f"lake table {table}"
        checked += len(table_rows)
    checked += _check_warehouse(project / "warehouse.db", expected, events)

    for dlq in (lake / "_dlq").glob("*"):
        assert not parquet_rows(lake, f"_dlq/{dlq.name}", "*"), "good events went to a DLQ"
    return checked


def _blacklisted(event: dict[str, Any]) -> bool:
    user, ip = event["user"], event["device"]["ip_address"]
    return bool(user["user_id"] in BLACKLIST["user_ids"]
                or user["country"] in BLACKLIST["countries"]
                or ip.startswith(BLACKLIST["ip_prefixes"])
                or event.get("card_last4") in BLACKLIST["card_last4"])


def _lake_table(lake: Path, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's current version, read through its Delta log (delta-rs, not Lakestream)."""
    from deltalake import DeltaTable

    folder = lake / "tables" / table
    current = json.loads((folder / "_metadata.json").read_text())["current_version"]
    live = DeltaTable(str(folder)).to_pyarrow_dataset().to_table()
    keys = TABLES[table][0]
    out = {}
    for record in live.filter(pc.field("version") == current).drop_columns(["version"]) \
            .to_pylist():
        out[tuple(record.pop(k) for k in keys)] = record
    return out


def _check_warehouse(path: Path, expected: dict[str, Any],
                     events: list[dict[str, Any]]) -> int:
    engine = sa.create_engine(f"sqlite:///{path}")
    checked = 0
    try:
        for table, rows in expected.items():
            _, _key, columns = FACT_COLUMNS[table]
            want = {k: tuple(r[c] for c in columns) for k, r in rows.items()}
            assert_facts_equal(fact_rows(engine, table, "live"), want)
            checked += len(want)
        assert_foreign_keys_hold(engine)
        with engine.connect() as conn:
            users = set(conn.exec_driver_sql("SELECT user_id FROM dim_users").scalars())
            methods = set(conn.exec_driver_sql(
                "SELECT payment_method_id FROM dim_payment_methods").scalars())
        assert users == {e["user"]["user_id"] for e in events}
        assert methods == {e["payment_method"]["payment_method_id"] for e in events}
        return checked + len(users) + len(methods)
    finally:
        engine.dispose()
