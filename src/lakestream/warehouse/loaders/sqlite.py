"""SQLite: batched ``executemany`` upserts inside the caller's single transaction.

SQLite has no bulk-load statement; a prepared ``INSERT … ON CONFLICT DO
UPDATE`` run by ``executemany`` in one transaction is its fastest path.
"""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa

from lakestream.warehouse.loaders.base import BulkLoader, Target, python_rows, quoted

_BATCH = 50_000


class SQLiteLoader(BulkLoader):
    """Batched upserts for SQLite (the embedded default)."""

    dialect = "sqlite"

    def _load(self, conn: sa.Connection, target: Target, rows: pa.Table, expect_new: bool) -> None:
        sql = upsert_statement(conn, target)
        for batch in python_rows(rows, _BATCH, decimals_as_float=True):
            conn.exec_driver_sql(sql, batch)


def upsert_statement(conn: sa.Connection, target: Target) -> str:
    """``INSERT … ON CONFLICT (key) DO UPDATE … WHERE`` a value changed (or ``DO NOTHING``)."""
    table = quoted(conn, [target.table.name])[0]
    columns = ", ".join(quoted(conn, target.columns))
    marks = ", ".join("?" for _ in target.columns)
    key = ", ".join(quoted(conn, target.key))
    names = quoted(conn, target.update_columns)
    if names:
        sets = ", ".join(f"{c} = excluded.{c}" for c in names)
        changed = " OR ".join(f"{table}.{c} IS NOT excluded.{c}" for c in names)
        action = f"DO UPDATE SET {sets} WHERE {changed}"
    else:
        action = "DO NOTHING"
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({key}) {action}"
