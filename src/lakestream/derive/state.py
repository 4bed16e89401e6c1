"""The processor's aggregate state and input offsets, in one SQLite database.

State and offsets change in the same transaction, so after a crash the state
is exactly "every event before the stored offsets" — never more, never less.
Aggregates are kept per input partition as integer micro-units (exact), and a
table's value for a key is the sum over partitions (distinct buyers are kept
as a set and counted distinct across partitions).

Non-key attributes (a payment method's name, a product's name and category)
follow ``LATEST_BY_OFFSET``: they are the attributes of the key's latest
event, taken together from that one event. "Latest" orders by event time, then
by input offset, then by partition number (highest wins). Each partition's row
keeps the attributes with the event time (``attr_time_us``) and offset
(``attr_offset``) of the event that set them, so a late event (older event
time, higher offset) never overwrites newer attributes, and reading a key picks
the latest row across partitions. Offsets of different partitions are unrelated
counters: comparing them only decides between events of the same key stamped
with the same event time in different partitions, arbitrarily but the same way
on every run. State files written before this rule have rows without
``attr_time_us``; those attributes count as older than any new event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
  topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL,
  PRIMARY KEY (topic, part));
CREATE TABLE IF NOT EXISTS user_summary (
  part INTEGER NOT NULL, user_id TEXT NOT NULL, transaction_type TEXT NOT NULL,
  total_micro INTEGER NOT NULL, n INTEGER NOT NULL, total_eur_micro INTEGER NOT NULL,
  PRIMARY KEY (part, user_id, transaction_type));
CREATE TABLE IF NOT EXISTS payment_totals (
  part INTEGER NOT NULL, payment_method_id TEXT NOT NULL, name TEXT,
  total_micro INTEGER NOT NULL, n INTEGER NOT NULL, attr_time_us INTEGER, attr_offset INTEGER,
  PRIMARY KEY (part, payment_method_id));
CREATE TABLE IF NOT EXISTS product_counts (
  part INTEGER NOT NULL, product_id TEXT NOT NULL, name TEXT, category TEXT,
  n INTEGER NOT NULL, revenue_micro INTEGER NOT NULL, price_micro INTEGER NOT NULL,
  price_n INTEGER NOT NULL, attr_time_us INTEGER, attr_offset INTEGER,
  PRIMARY KEY (part, product_id));
CREATE TABLE IF NOT EXISTS product_buyers (
  part INTEGER NOT NULL, product_id TEXT NOT NULL, user_id TEXT NOT NULL,
  PRIMARY KEY (product_id, user_id, part));
"""
# A state file written before the lake was Delta may also hold ``pending_files`` (dead
# letters committed but not yet moved out of ``_staging``): ``lake upgrade`` reads it
# (:func:`pending_dead_letters`); the processor ignores it.

# Columns added after the first release, created on older state files at open.
_ADDED_COLUMNS = {
    "payment_totals": ("attr_time_us INTEGER", "attr_offset INTEGER"),
    "product_counts": ("attr_time_us INTEGER", "attr_offset INTEGER"),
}

# The stored attributes' event is older than the incoming one (legacy rows have no time).
_NEWER = ("(attr_time_us IS NULL OR (excluded.attr_time_us, excluded.attr_offset) "
          "> (attr_time_us, attr_offset))")


def _latest(*columns: str) -> str:
    """SET clauses that take ``columns`` (and their event's time and offset) when newer."""
    return ", ".join(f"{c} = CASE WHEN {_NEWER} THEN excluded.{c} ELSE {c} END"
                     for c in (*columns, "attr_time_us", "attr_offset"))


# Delta name -> (state table, what a row of an already stored key does).
_UPSERTS = {
    "user": ("user_summary", """DO UPDATE SET total_micro = total_micro + excluded.total_micro,
          n = n + excluded.n, total_eur_micro = total_eur_micro + excluded.total_eur_micro"""),
    "payment": ("payment_totals", f"""DO UPDATE SET {_latest("name")},
          total_micro = total_micro + excluded.total_micro, n = n + excluded.n"""),
    "product": ("product_counts", f"""DO UPDATE SET {_latest("name", "category")},
          n = n + excluded.n, revenue_micro = revenue_micro + excluded.revenue_micro,
          price_micro = price_micro + excluded.price_micro,
          price_n = price_n + excluded.price_n"""),
    "buyers": ("product_buyers", "DO NOTHING"),
}

# Ranks each key's per-partition rows, 1 = the partition holding the latest attributes.
_RECENCY = ("row_number() OVER (PARTITION BY {key} "
            "ORDER BY attr_time_us DESC, attr_offset DESC, part DESC) AS recency")


def money(micro: int) -> float:
    """Micro-units as a decimal amount."""
    return round(micro / 1_000_000, 6)


def mean(micro: int, n: int) -> float | None:
    """The mean of ``n`` values summing to ``micro`` micro-units."""
    return round(micro / n / 1_000_000, 6) if n else None


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


class AggregateState:
    """A connection to the state database; use :meth:`begin` / :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a state file of an earlier version up to the current schema, in place."""
        self.con.execute("BEGIN IMMEDIATE")  # several processors may open the file at once
        try:
            for table, columns in _ADDED_COLUMNS.items():
                have = {row[1] for row in self.con.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in have:
                        self.con.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""
        self.con.close()

    def begin(self) -> None:
        """Start the write transaction of one batch."""
        self.con.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Make the batch's state, offsets and pending files durable together."""
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        """Forget the batch (after a failure to publish its outputs)."""
        if self.con.in_transaction:
            self.con.execute("ROLLBACK")

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The first input offset not yet in the state."""
        row = self.con.execute("SELECT next_offset FROM offsets WHERE topic = ? AND part = ?",
                               (topic, partition)).fetchone()
        return None if row is None else int(row[0])

    def set_next_offset(self, topic: str, partition: int, offset: int) -> None:
        """Record that every input offset below ``offset`` is in the state."""
        self.con.execute("INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
                         "SET next_offset = excluded.next_offset", (topic, partition, offset))

    def apply(self, deltas: dict[str, pa.Table]) -> None:
        """Add one batch's aggregate deltas (``user``, ``payment``, ``product``, ``buyers``)."""
        for name, table in deltas.items():
            if table.num_rows:
                target, on_conflict = _UPSERTS[name]
                columns = ", ".join(table.column_names)
                marks = ", ".join("?" for _ in table.column_names)
                rows = zip(*(c.to_pylist() for c in table.columns), strict=True)
                self.con.executemany(f"INSERT INTO {target} ({columns}) VALUES ({marks}) "
                                     f"ON CONFLICT {on_conflict}", rows)

    def user_values(self, keys: list[tuple[str, str]], usd_to_eur: float) -> list[dict[str, Any]]:
        """Current rows of both user summary tables for ``keys`` (user_id, transaction_type)."""
        self._keys("k_user", ("user_id", "transaction_type"), keys)
        rows = self.con.execute(
            "SELECT s.user_id, s.transaction_type, sum(total_micro), sum(n), sum(total_eur_micro) "
            "FROM user_summary s JOIN k_user k USING (user_id, transaction_type) GROUP BY 1, 2 "
            "ORDER BY 1, 2").fetchall()
        return [{"user_id": u, "transaction_type": t, "total_micro": tot, "n": n, "eur_micro": e,
                 "rate": usd_to_eur} for u, t, tot, n, e in rows]

    def payment_values(self, keys: list[str]) -> list[dict[str, Any]]:
        """Current ``payment_method_totals`` rows for ``keys``."""
        self._keys("k_pm", ("payment_method_id",), [(k,) for k in keys])
        rows = self.con.execute(
            "SELECT payment_method_id, max(name) FILTER (WHERE recency = 1), sum(total_micro), "
            f"sum(n) FROM (SELECT p.*, {_RECENCY.format(key='payment_method_id')} "
            "FROM payment_totals p JOIN k_pm USING (payment_method_id)) GROUP BY 1 ORDER BY 1"
        ).fetchall()
        return [{"payment_method_id": k, "payment_method_name": name,
                 "total_amount": money(tot), "transaction_count": n,
                 "avg_amount": mean(tot, n)} for k, name, tot, n in rows]

    def product_values(self, keys: list[str]) -> list[dict[str, Any]]:
        """Current ``product_purchase_counts`` rows for ``keys``."""
        self._keys("k_prod", ("product_id",), [(k,) for k in keys])
        rows = self.con.execute(
            "SELECT product_id, max(name) FILTER (WHERE recency = 1), "
            "max(category) FILTER (WHERE recency = 1), sum(n), sum(revenue_micro), "
            "sum(price_micro), sum(price_n), (SELECT count(DISTINCT user_id) FROM product_buyers b "
            f"WHERE b.product_id = p.product_id) FROM (SELECT p.*, "
            f"{_RECENCY.format(key='product_id')} FROM product_counts p JOIN k_prod USING "
            "(product_id)) p GROUP BY 1 ORDER BY 1").fetchall()
        return [{"product_id": k, "product_name": name, "product_category": cat,
                 "purchase_count": n, "total_revenue": money(rev), "avg_price": mean(pm, pn),
                 "unique_buyers": buyers} for k, name, cat, n, rev, pm, pn, buyers in rows]

    def _keys(self, table: str, columns: tuple[str, ...], keys: Sequence[tuple[str, ...]]) -> None:
        self.con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({', '.join(columns)})")
        self.con.execute(f"DELETE FROM {table}")
        marks = ", ".join("?" for _ in columns)
        self.con.executemany(f"INSERT INTO {table} VALUES ({marks})", keys)
