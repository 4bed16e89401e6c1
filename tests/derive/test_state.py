"""Exact state: merge rules, each key's latest attributes across partitions, and state files
of earlier Lakestream versions (migrated in place, or refused with what to do)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from lakestream.derive.shipped import TABLES
from lakestream.derive.state import (
    AggregateState,
    StateMerger,
    StateStore,
    StateStoreRefusedError,
    pending_dead_letters,
)
from lakestream.derive.state.schema import StatePart
from lakestream.derive.statements import compile_statements
from tests.derive.expected import expected_tables
from tests.derive.helpers import Runner
from tests.derive.statements.helpers import generated_events, spec_event

LEGACY = Path(__file__).resolve().parent / "data" / "legacy_state.json.gz"

# The state file of the release before latest attributes had their event time (verbatim).
PREVIOUS_SCHEMA = """
CREATE TABLE offsets (
  topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL,
  PRIMARY KEY (topic, part));
CREATE TABLE user_summary (
  part INTEGER NOT NULL, user_id TEXT NOT NULL, transaction_type TEXT NOT NULL,
  total_micro INTEGER NOT NULL, n INTEGER NOT NULL, total_eur_micro INTEGER NOT NULL,
  PRIMARY KEY (part, user_id, transaction_type));
CREATE TABLE payment_totals (
  part INTEGER NOT NULL, payment_method_id TEXT NOT NULL, name TEXT,
  total_micro INTEGER NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (part, payment_method_id));
CREATE TABLE product_counts (
  part INTEGER NOT NULL, product_id TEXT NOT NULL, name TEXT, category TEXT,
  n INTEGER NOT NULL, revenue_micro INTEGER NOT NULL, price_micro INTEGER NOT NULL,
  price_n INTEGER NOT NULL, PRIMARY KEY (part, product_id));
CREATE TABLE product_buyers (
  part INTEGER NOT NULL, product_id TEXT NOT NULL, user_id TEXT NOT NULL,
  PRIMARY KEY (product_id, user_id, part));
CREATE TABLE pending_files (
  staging TEXT PRIMARY KEY, final TEXT NOT NULL);
"""


def purchase(hour: int, product: tuple[str, str, str], method: tuple[str, str],
             minute: int = 0, usd: float = 10.0) -> bytes:
    """A completed purchase at 2025-03-10 ``hour``:``minute`` with these attributes."""
    product_id, name, category = product
    return json.dumps(spec_event(**{
        "event_time": f"2025-03-10T{hour:02d}:{minute:02d}:00.000Z", "amount": usd,
        "transaction_id": f"{hour}-{minute}-{name}", "product.product_id": product_id,
        "product.name": name, "product.category": category,
        "payment_method.payment_method_id": method[0], "payment_method.name": method[1]})
    ).encode()


ZETA = ("P0205", "Zeta Lamp", "home")
ALPHA = ("P0205", "Alpha Lamp", "lighting")
OLD_WALLET = ("PM90", "zz_old_wallet")
NEW_WALLET = ("PM90", "aa_new_wallet")


def product(runner: Runner) -> tuple[Any, ...]:
    row = runner.published.tables["product_purchase_counts"][b"P0205"]
    return row["product_name"], row["product_category"], row["purchase_count"]


def method(runner: Runner) -> tuple[Any, ...]:
    row = runner.published.tables["payment_method_totals"][b"PM90"]
    return row["payment_method_name"], row["transaction_count"], row["total_amount"]


@pytest.fixture
def runner(tmp_path: Path) -> Any:
    found = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    yield found
    found.close()


def test_the_latest_event_across_partitions_gives_all_attributes(runner: Runner) -> None:
    runner.batch(1, [purchase(9, ZETA, OLD_WALLET)], [40])
    runner.batch(0, [purchase(12, ALPHA, NEW_WALLET)], [3])
    assert product(runner) == ("Alpha Lamp", "lighting", 2)
    assert method(runner) == ("aa_new_wallet", 2, 20.0)

    # arriving last with a higher offset does not make an older event the latest
    runner.batch(1, [purchase(8, ZETA, OLD_WALLET)], [41])
    runner.batch(0, [purchase(11, ZETA, OLD_WALLET)], [4])
    assert product(runner) == ("Alpha Lamp", "lighting", 4)
    assert method(runner) == ("aa_new_wallet", 4, 40.0)


def test_equal_event_times_go_to_the_higher_offset_then_the_higher_partition(
        runner: Runner) -> None:
    runner.batch(3, [purchase(12, ZETA, OLD_WALLET)], [7])
    runner.batch(0, [purchase(12, ALPHA, NEW_WALLET)], [9])
    assert product(runner)[:2] == ("Alpha Lamp", "lighting")
    assert method(runner)[0] == "aa_new_wallet"

    runner.batch(2, [purchase(12, ZETA, OLD_WALLET)], [9])
    assert product(runner)[:2] == ("Zeta Lamp", "home")
    assert method(runner)[0] == "zz_old_wallet"


def test_each_merge_rule_combines_partitions_whatever_their_order() -> None:
    parts = [StatePart("_agg0_count", "add", "integer"), StatePart("_agg1_min", "min", "value"),
             StatePart("_agg2_max", "max", "value"),
             *(StatePart(f"_agg3_{p}", "latest", "value") for p in ("value", "time", "offset")),
             *(StatePart(f"_agg4_{p}", "earliest", "value") for p in ("value", "time", "offset"))]
    merger = StateMerger(parts)
    a = {"_agg0_count": 2, "_agg1_min": "b", "_agg2_max": None, "_agg3_value": "a-late",
         "_agg3_time": 50, "_agg3_offset": 1, "_agg4_value": "a-early", "_agg4_time": 10,
         "_agg4_offset": 1}
    b = {"_agg0_count": 3, "_agg1_min": "a", "_agg2_max": 7, "_agg3_value": "b-late",
         "_agg3_time": 50, "_agg3_offset": 1, "_agg4_value": None, "_agg4_time": 10,
         "_agg4_offset": 0}
    migrated = {"_agg0_count": 1, "_agg3_value": "old", "_agg3_time": None,
                "_agg3_offset": None}
    want = {"_agg0_count": 6, "_agg1_min": "a", "_agg2_max": 7, "_agg3_value": "b-late",
            "_agg3_time": 50, "_agg3_offset": 1, "_agg4_value": None, "_agg4_time": 10,
            "_agg4_offset": 0}
    for order in ([(0, a), (4, b), (2, migrated)], [(2, migrated), (4, b), (0, a)]):
        assert merger.combine(order) == want
    # a state without an event time is older than any event; within one partition the
    # later event replaces the state, an earlier one does not
    assert merger.merge(migrated, 2, a, 2)["_agg3_value"] == "a-late"
    assert merger.merge(a, 0, {**a, "_agg3_value": "x", "_agg3_time": 49}, 0)[
        "_agg3_value"] == "a-late"
    assert merger.merge(None, 0, b, 0) == b


def legacy_file(path: Path) -> dict[str, Any]:
    """The frozen state file of the format before the store (600 events: partition 0 offsets
    0-399, partition 2 offsets 0-199), and what that processor published from it."""
    data: dict[str, Any] = json.loads(gzip.decompress(LEGACY.read_bytes()))
    with sqlite3.connect(path) as con:
        con.executescript(data["dump"])
    con.close()
    return data


def test_a_state_file_of_the_format_before_the_store_is_migrated_and_goes_on_exactly(
        tmp_path: Path) -> None:
    path = tmp_path / "processor.sqlite"
    data = legacy_file(path)
    runner = Runner(f"sqlite:///{path}", tmp_path)
    try:
        assert runner.store.next_offset("transactions", 0) == 400
        assert runner.store.next_offset("transactions", 2) == 200
        with runner.store.transaction() as tx:
            current = runner.executor.current_tables(tx)
        for table, published in data["published"].items():
            assert all(k is not None for k, _ in current[table]), table
            assert {k.decode(): orjson.loads(v or b"null")
                    for k, v in current[table] if k is not None} == published, table
        more = generated_events(300, seed=6)
        runner.batch(0, more[:100], list(range(400, 500)))
        runner.batch(2, more[100:200], list(range(200, 300)))
        runner.batch(1, more[200:], list(range(0, 100)))
        with runner.store.transaction() as tx:
            after = runner.executor.current_tables(tx)
    finally:
        runner.close()
    old = [v.encode() for v in data["values"]]
    positions = [(0, o) for o in range(250)] + [(2, o) for o in range(200)] + [
        (0, o) for o in range(250, 400)]
    positions += [(0, o) for o in range(400, 500)] + [(2, o) for o in range(200, 300)] + [
        (1, o) for o in range(100)]
    expected = expected_tables(old + more, positions)
    for table, rows in expected.items():
        keys = TABLES[table][0]
        got = {tuple(r[k] for k in keys): {c: v for c, v in r.items() if c not in keys}
               for r in (orjson.loads(v) for _, v in after[table] if v is not None)}
        assert got == rows, table
    names = {r[0] for r in sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not names & {"offsets", "user_summary", "payment_totals", "product_counts",
                        "product_buyers"}


def test_a_state_file_of_the_previous_version_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript(PREVIOUS_SCHEMA)
        old.execute("INSERT INTO offsets VALUES ('transactions', 0, 120)")
        old.executemany("INSERT INTO payment_totals VALUES (?, 'PM90', 'zz_old_wallet', ?, ?)",
                        [(0, 5_000_000, 1), (1, 7_000_000, 2)])
        old.execute("INSERT INTO product_counts VALUES (1, 'P0205', 'Zeta Lamp', 'home', 3, "
                    "30000000, 30000000, 3)")
        old.execute("INSERT INTO pending_files VALUES ('_staging/processor/t-0/a.parquet', "
                    "'_dlq/processor/year=2025/month=03/day=10/a.parquet')")
    old.close()

    runner = Runner(f"sqlite:///{path}", tmp_path)
    try:
        assert runner.store.next_offset("transactions", 0) == 120
        # any new event is newer than attributes stored without an event time
        runner.batch(0, [purchase(1, ALPHA, NEW_WALLET, usd=10.0)], [120])
        assert method(runner) == ("aa_new_wallet", 4, 22.0)
        assert product(runner) == ("Alpha Lamp", "lighting", 4)
    finally:
        runner.close()

    reopened = Runner(f"sqlite:///{path}", tmp_path)  # nothing left to migrate
    try:
        reopened.batch(1, [purchase(0, ZETA, OLD_WALLET)], [0])
        assert product(reopened)[:2] == ("Alpha Lamp", "lighting")
        assert reopened.store.next_offset("transactions", 0) == 121
    finally:
        reopened.close()
    # the dead letters it had not moved out of _staging stay for `lake upgrade`
    assert pending_dead_letters(path) == [("_staging/processor/t-0/a.parquet",
                                           "_dlq/processor/year=2025/month=03/day=10/a.parquet")]


def test_a_state_file_the_program_cannot_take_is_refused_with_what_to_do(
        tmp_path: Path) -> None:
    path = tmp_path / "processor.sqlite"
    legacy_file(path)
    other = compile_statements(
        "CREATE STREAM s (a VARCHAR) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');\n"
        "CREATE TABLE payment_method_totals AS SELECT a, COUNT(*) AS n FROM s GROUP BY a;")
    with pytest.raises(StateStoreRefusedError) as refused:
        Runner(f"sqlite:///{path}", tmp_path, other, topic="s")
    message = str(refused.value)
    assert "is a state file of an earlier Lakestream" in message
    assert "move processor.sqlite away" in message
    store = StateStore(f"sqlite:///{path}")
    try:
        with pytest.raises(StateStoreRefusedError, match="run `lakestream process` once"):
            store.next_offset("transactions", 0)
    finally:
        store.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM user_summary").fetchone()[0] > 0


def test_a_table_whose_definition_changed_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    source = "CREATE STREAM s (a VARCHAR, v INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');\n"
    Runner(url, tmp_path, compile_statements(
        source + "CREATE TABLE t AS SELECT a, SUM(v) AS n FROM s GROUP BY a;"), "s").close()
    changed = compile_statements(source + "CREATE TABLE t AS SELECT a, MAX(v) AS n FROM s "
                                          "GROUP BY a;")
    with pytest.raises(StateStoreRefusedError, match=r"state of table t .* was built by "
                                                     r"another definition of it"):
        Runner(url, tmp_path, changed, "s")


def test_the_state_file_opens_under_its_former_name_and_knows_no_pending_letters(
        tmp_path: Path) -> None:
    AggregateState(tmp_path / "state.sqlite").close()
    assert pending_dead_letters(tmp_path / "state.sqlite") == []
    assert pending_dead_letters(tmp_path / "absent.sqlite") == []
    state = AggregateState(tmp_path / "state.sqlite")
    try:
        assert state.next_offset("transactions", 0) is None
    finally:
        state.close()
