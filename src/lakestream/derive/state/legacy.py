"""State files of Lakestream before the statements executor: read, migrated, or refused.

Before the processor ran the compiled statements, ``processor.sqlite`` held one
hand-written table per shipped aggregate table (``user_summary``, ``payment_totals``,
``product_counts``, ``product_buyers``) and ``offsets``. The first ``lakestream process``
of this version migrates such a file in place, in one transaction: every row becomes the
state of the shipped table it fed (sums and counts as they were, names and categories
with the event time and offset that set them, buyers as distinct values), the offsets
move over, and the old tables are dropped. A file whose program does not define those
tables as shipped is refused, with what to do.

A state file written before the lake was Delta may also hold ``pending_files`` (dead
letters committed but not yet moved out of ``_staging``): ``lake upgrade`` reads it
(:func:`pending_dead_letters`), so migration keeps it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from lakestream.derive.state.errors import StateStoreRefusedError, url_text
from lakestream.derive.state.schema import TableLayout, key_hash_sql, value_hash_sql

if TYPE_CHECKING:
    from lakestream.derive.state.store import StoreTransaction

LEGACY_TABLES = ("offsets", "user_summary", "payment_totals", "product_counts", "product_buyers")
_RATE = object()  # the USD→EUR rate in force: the old format published it, never stored it
_TIME = "attr_time_us"  # microseconds then; event times are milliseconds now

# Each shipped table: (old table, old key columns, {aggregate call: {state part: old column}}).
_SHIPPED: dict[str, tuple[str, tuple[str, ...], dict[str, dict[str, Any]]]] = {
    "user_transaction_summary": ("user_summary", ("user_id", "transaction_type"), {
        "SUM(amount_usd)": {"micro": "total_micro"},
        "COUNT(*)": {"count": "n"},
        "AVG(amount_usd)": {"micro": "total_micro", "count": "n"}}),
    "user_transaction_summary_eur": ("user_summary", ("user_id", "transaction_type"), {
        "SUM(f.amount_usd * r.usd_to_eur)": {"micro": "total_eur_micro"},
        "COUNT(*)": {"count": "n"},
        "AVG(f.amount_usd * r.usd_to_eur)": {"micro": "total_eur_micro", "count": "n"},
        "LATEST_BY_OFFSET(r.usd_to_eur)": {"value": _RATE, "time": None, "offset": None}}),
    "payment_method_totals": ("payment_totals", ("payment_method_id",), {
        "LATEST_BY_OFFSET(payment_method_name)": {"value": "name", "time": _TIME,
                                                  "offset": "attr_offset"},
        "SUM(amount_usd)": {"micro": "total_micro"},
        "COUNT(*)": {"count": "n"},
        "AVG(amount_usd)": {"micro": "total_micro", "count": "n"}}),
    "product_purchase_counts": ("product_counts", ("product_id",), {
        "LATEST_BY_OFFSET(product_name)": {"value": "name", "time": _TIME,
                                           "offset": "attr_offset"},
        "LATEST_BY_OFFSET(product_category)": {"value": "category", "time": _TIME,
                                               "offset": "attr_offset"},
        "COUNT(*)": {"count": "n"},
        "SUM(amount_usd)": {"micro": "revenue_micro"},
        "AVG(product_unit_price)": {"micro": "price_micro", "count": "price_n"},
        "COUNT_DISTINCT(user_id)": {}}),
}
_WHAT_TO_DO = ("run the earlier Lakestream version until `transactions` is fully processed, "
               "then move processor.sqlite away: this version rebuilds the state from the "
               "input topic (it must still hold every event), or restore the shipped "
               "statements for the first run")


def is_legacy(engine: sa.Engine, conn: sa.Connection | None = None) -> bool:
    """Whether the SQLite store is a state file of the format before this store."""
    names = set(sa.inspect(conn if conn is not None else engine).get_table_names())
    return "lakestream_store" not in names and "offsets" in names and "user_summary" in names


def pending_dead_letters(path: Path) -> list[tuple[str, str]]:
    """``(staging, final)`` of the dead letters a processor of the lake before Delta
    committed in its state at ``path`` but had not moved into place yet (for
    ``lake upgrade``); empty for a state file without that table."""
    if not path.exists():
        return []
    con = sqlite3.connect(path, timeout=60)
    try:
        known = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                            "AND name = 'pending_files'").fetchone()
        return [(a, b) for a, b in con.execute("SELECT staging, final FROM pending_files")
                ] if known else []
    finally:
        con.close()


def migrate(tx: StoreTransaction, layouts: Mapping[str, TableLayout],
            rate: float | None) -> None:
    """Move an old state file's rows into the store's tables (inside ``tx``), then drop them.

    Raises:
        StateStoreRefusedError: The program lacks a shipped table, or defines one otherwise.
    """
    where = url_text(tx.store.url)
    conn = tx.conn
    for name, (old_table, keys, calls) in _SHIPPED.items():
        layout = layouts.get(name)
        specs = _specs(layout, calls, where, name)
        assert layout is not None  # _specs refuses a missing table
        rows = [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {old_table}")).mappings()]
        hashes = _key_hashes([[r[k] for k in keys] for r in rows])
        states = []
        for row, hashed in zip(rows, hashes, strict=True):
            state: dict[str, Any] = {"key_hash": hashed, "part": row["part"]}
            state.update({f"key{i}": row[k] for i, k in enumerate(keys)})
            for spec_name, parts in specs:
                for part, source in parts.items():
                    state[f"{spec_name}_{part}"] = _value(row, source, rate)
            states.append(state)
        tx.write(layout, states)
        for distinct in (s for s, parts in specs if not parts):  # COUNT_DISTINCT(user_id)
            buyers = conn.execute(sa.text("SELECT part, product_id, user_id FROM product_buyers"))
            found = [tuple(r) for r in buyers]
            products = _key_hashes([[product] for _, product, _ in found])
            users = _key_hashes([[user] for _, _, user in found], value_hash_sql("k0"))
            tx.add_distinct(name, [(product, distinct, user, part) for (part, _, _), product, user
                                   in zip(found, products, users, strict=True)])
    for topic, part, offset in conn.execute(sa.text("SELECT topic, part, next_offset "
                                                    "FROM offsets")):
        tx.set_position(topic, part, offset, None)
    for table in LEGACY_TABLES:
        conn.execute(sa.text(f"DROP TABLE {table}"))


def _key_hashes(keys: list[list[Any]], sql: str | None = None) -> list[str]:
    """The hashes the executor gives these keys (text values): computed by DuckDB alike."""
    if not keys:
        return []
    width = len(keys[0])
    table = pa.table({f"k{i}": pa.array([k[i] for k in keys], pa.string())
                      for i in range(width)})
    con = duckdb.connect(":memory:")
    try:
        con.register("legacy_keys", table)
        expression = sql or key_hash_sql([f"k{i}" for i in range(width)])
        return [h for (h,) in con.execute(f"SELECT {expression} FROM legacy_keys").fetchall()]
    finally:
        con.close()


def _specs(layout: TableLayout | None, calls: dict[str, dict[str, Any]], where: str,
           name: str) -> list[tuple[str, dict[str, Any]]]:
    """``(aggregate name, {part: old source})`` of a shipped table, checked against ``layout``."""
    if layout is None:
        raise StateStoreRefusedError(
            f"{where} is a state file of an earlier Lakestream holding the table {name}, which "
            "the statements no longer define", _WHAT_TO_DO)
    by_text = layout.aggregate_texts
    if sorted(by_text) != sorted(calls):
        raise StateStoreRefusedError(
            f"{where} is a state file of an earlier Lakestream: its table {name} held "
            f"{', '.join(sorted(calls))}, the statements now define "
            f"{', '.join(sorted(by_text))}", _WHAT_TO_DO)
    return [(by_text[text], parts) for text, parts in calls.items()]


def _value(row: Mapping[str, Any], source: Any, rate: float | None) -> Any:
    if source is None:
        return None
    if source is _RATE:
        return rate
    value = row.get(source)
    if source == _TIME and value is not None:
        return int(value) // 1000
    return value
