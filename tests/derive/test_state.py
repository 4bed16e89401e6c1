"""The processor's state keeps each key's latest attributes across partitions and versions."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pyarrow as pa

from lakestream.derive.state import AggregateState, pending_dead_letters

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


def at(hour: int, minute: int = 0) -> int:
    """An event time on the test day, in microseconds since the epoch."""
    moment = dt.datetime(2025, 3, 10, hour, minute, tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000


def sale(part: int, offset: int, time_us: int, product: tuple[str, str, str],
         method: tuple[str, str], usd: float = 10.0) -> dict[str, pa.Table]:
    """The deltas of one completed purchase, shaped as ``derive/sql.py`` returns them."""
    micro = round(usd * 1_000_000)
    product_id, name, category = product
    return {
        "payment": pa.table({
            "part": [part], "payment_method_id": [method[0]], "name": [method[1]],
            "attr_time_us": [time_us], "attr_offset": [offset], "total_micro": [micro],
            "n": [1]}),
        "product": pa.table({
            "part": [part], "product_id": [product_id], "name": [name], "category": [category],
            "attr_time_us": [time_us], "attr_offset": [offset], "n": [1],
            "revenue_micro": [micro], "price_micro": [micro], "price_n": [1]}),
        "buyers": pa.table({"part": [part], "product_id": [product_id],
                            "user_id": [f"U{offset}"]}),
    }


def apply(state: AggregateState, *batches: dict[str, pa.Table]) -> None:
    for deltas in batches:
        state.begin()
        state.apply(deltas)
        state.commit()


def product(state: AggregateState, product_id: str) -> tuple[object, ...]:
    row = state.product_values([product_id])[0]
    return row["product_name"], row["product_category"], row["purchase_count"]


def method(state: AggregateState, payment_method_id: str) -> tuple[object, ...]:
    row = state.payment_values([payment_method_id])[0]
    return row["payment_method_name"], row["transaction_count"], row["total_amount"]


ZETA = ("P0205", "Zeta Lamp", "home")
ALPHA = ("P0205", "Alpha Lamp", "lighting")
OLD_WALLET = ("PM90", "zz_old_wallet")
NEW_WALLET = ("PM90", "aa_new_wallet")


def test_the_latest_event_across_partitions_gives_all_attributes(tmp_path: Path) -> None:
    state = AggregateState(tmp_path / "state.sqlite")
    apply(state, sale(1, 40, at(9), ZETA, OLD_WALLET), sale(0, 3, at(12), ALPHA, NEW_WALLET))
    assert product(state, "P0205") == ("Alpha Lamp", "lighting", 2)
    assert method(state, "PM90") == ("aa_new_wallet", 2, 20.0)

    # arriving last with a higher offset does not make an older event the latest
    apply(state, sale(1, 41, at(8), ZETA, OLD_WALLET), sale(0, 4, at(11), ZETA, OLD_WALLET))
    assert product(state, "P0205") == ("Alpha Lamp", "lighting", 4)
    assert method(state, "PM90") == ("aa_new_wallet", 4, 40.0)
    state.close()


def test_equal_event_times_go_to_the_higher_offset_then_the_higher_partition(
        tmp_path: Path) -> None:
    state = AggregateState(tmp_path / "state.sqlite")
    apply(state, sale(3, 7, at(12), ZETA, OLD_WALLET), sale(0, 9, at(12), ALPHA, NEW_WALLET))
    assert product(state, "P0205")[:2] == ("Alpha Lamp", "lighting")
    assert method(state, "PM90")[0] == "aa_new_wallet"

    apply(state, sale(2, 9, at(12), ZETA, OLD_WALLET))
    assert product(state, "P0205")[:2] == ("Zeta Lamp", "home")
    assert method(state, "PM90")[0] == "zz_old_wallet"
    state.close()


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

    state = AggregateState(path)
    assert state.next_offset("transactions", 0) == 120
    assert method(state, "PM90") == ("zz_old_wallet", 3, 12.0)
    assert product(state, "P0205") == ("Zeta Lamp", "home", 3)

    # any new event is newer than attributes stored without an event time
    apply(state, sale(0, 120, at(1), ALPHA, NEW_WALLET))
    assert method(state, "PM90") == ("aa_new_wallet", 4, 22.0)
    assert product(state, "P0205") == ("Alpha Lamp", "lighting", 4)
    state.close()

    reopened = AggregateState(path)  # a second open finds nothing left to migrate
    assert product(reopened, "P0205") == ("Alpha Lamp", "lighting", 4)
    reopened.close()
    # the dead letters it had not moved out of _staging stay for `lake upgrade`
    assert pending_dead_letters(path) == [("_staging/processor/t-0/a.parquet",
                                           "_dlq/processor/year=2025/month=03/day=10/a.parquet")]


def test_a_state_file_without_pending_dead_letters_has_none(tmp_path: Path) -> None:
    AggregateState(tmp_path / "state.sqlite").close()
    assert pending_dead_letters(tmp_path / "state.sqlite") == []
    assert pending_dead_letters(tmp_path / "absent.sqlite") == []
