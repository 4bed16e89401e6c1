"""The processor's aggregate state and input offsets, in one SQLite database.

State and offsets change in the same transaction, so after a crash the state
is exactly "every event before the stored offsets" — never more, never less.
Aggregates are kept per input partition as integer micro-units (exact), and a
table's value for a key is the sum over partitions (distinct buyers are kept
as a set and counted distinct across partitions).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
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
  total_micro INTEGER NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (part, payment_method_id));
CREATE TABLE IF NOT EXISTS product_counts (
  part INTEGER NOT NULL, product_id TEXT NOT NULL, name TEXT, category TEXT,
  n INTEGER NOT NULL, revenue_micro INTEGER NOT NULL, price_micro INTEGER NOT NULL,
  price_n INTEGER NOT NULL, PRIMARY KEY (part, product_id));
CREATE TABLE IF NOT EXISTS product_buyers (
  part INTEGER NOT NULL, product_id TEXT NOT NULL, user_id TEXT NOT NULL,
  PRIMARY KEY (product_id, user_id, part));
CREATE TABLE IF NOT EXISTS pending_files (
  staging TEXT PRIMARY KEY, final TEXT NOT NULL);
"""

_UPSERTS = {
    "user": """INSERT INTO user_summary VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET total_micro = total_micro + excluded.total_micro,
          n = n + excluded.n, total_eur_micro = total_eur_micro + excluded.total_eur_micro""",
    "payment": """INSERT INTO payment_totals VALUES (?, ?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET name = excluded.name,
          total_micro = total_micro + excluded.total_micro, n = n + excluded.n""",
    "product": """INSERT INTO product_counts VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET name = excluded.name, category = excluded.category,
          n = n + excluded.n, revenue_micro = revenue_micro + excluded.revenue_micro,
          price_micro = price_micro + excluded.price_micro, price_n = price_n + excluded.price_n""",
    "buyers": "INSERT OR IGNORE INTO product_buyers VALUES (?, ?, ?)",
}


def money(micro: int) -> float:
    """Micro-units as a decimal amount."""
    return round(micro / 1_000_000, 6)


def mean(micro: int, n: int) -> float | None:
    """The mean of ``n`` values summing to ``micro`` micro-units."""
    return round(micro / n / 1_000_000, 6) if n else None


class AggregateState:
    """A connection to the state database; use :meth:`begin` / :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.executescript(_SCHEMA)

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
                rows = zip(*(c.to_pylist() for c in table.columns), strict=True)
                self.con.executemany(_UPSERTS[name], rows)

    def add_pending(self, files: Iterable[tuple[str, str]]) -> None:
        """Remember staged files to move into place once the transaction committed."""
        self.con.executemany("INSERT OR REPLACE INTO pending_files VALUES (?, ?)", files)

    def pending(self) -> list[tuple[str, str]]:
        """Staged files of committed batches that still wait to be moved."""
        return [(a, b) for a, b in self.con.execute("SELECT staging, final FROM pending_files")]

    def settled(self, staging: str) -> None:
        """A pending file was moved into place."""
        self.con.execute("DELETE FROM pending_files WHERE staging = ?", (staging,))

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
            "SELECT p.payment_method_id, max(name), sum(total_micro), sum(n) FROM payment_totals p "
            "JOIN k_pm USING (payment_method_id) GROUP BY 1 ORDER BY 1").fetchall()
        return [{"payment_method_id": k, "payment_method_name": name,
                 "total_amount": money(tot), "transaction_count": n,
                 "avg_amount": mean(tot, n)} for k, name, tot, n in rows]

    def product_values(self, keys: list[str]) -> list[dict[str, Any]]:
        """Current ``product_purchase_counts`` rows for ``keys``."""
        self._keys("k_prod", ("product_id",), [(k,) for k in keys])
        rows = self.con.execute(
            "SELECT p.product_id, max(name), max(category), sum(n), sum(revenue_micro), "
            "sum(price_micro), sum(price_n), (SELECT count(DISTINCT user_id) FROM product_buyers b "
            "WHERE b.product_id = p.product_id) FROM product_counts p JOIN k_prod USING "
            "(product_id) GROUP BY 1 ORDER BY 1").fetchall()
        return [{"product_id": k, "product_name": name, "product_category": cat,
                 "purchase_count": n, "total_revenue": money(rev), "avg_price": mean(pm, pn),
                 "unique_buyers": buyers} for k, name, cat, n, rev, pm, pn, buyers in rows]

    def _keys(self, table: str, columns: tuple[str, ...], keys: Sequence[tuple[str, ...]]) -> None:
        self.con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({', '.join(columns)})")
        self.con.execute(f"DELETE FROM {table}")
        marks = ", ".join("?" for _ in columns)
        self.con.executemany(f"INSERT INTO {table} VALUES ({marks})", keys)
