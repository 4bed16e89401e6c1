"""PostgreSQL: ``COPY`` into a temporary staging table, then ``INSERT … ON CONFLICT``.

* New rows (``expect_new``): ``COPY`` straight into the table inside a
  savepoint; if a key already exists (unique violation) the savepoint is
  rolled back and the staged path runs instead.
* Otherwise: ``COPY`` into ``TEMP … ON COMMIT DROP``, then ``INSERT … SELECT …
  ON CONFLICT (key) DO UPDATE … WHERE`` something changed, so re-loading the
  same rows writes no new row versions at all.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from lakestream.warehouse.loaders.base import BulkLoader, Target, quoted
from lakestream.warehouse.loaders.csvfile import NULL_WORD, csv_file

_CHUNK = 1 << 20
_UNIQUE_VIOLATION = "23505"


class PostgresLoader(BulkLoader):
    """Bulk upserts for PostgreSQL (psycopg 3)."""

    dialect = "postgresql"

    def _load(self, conn: sa.Connection, target: Target, rows: pa.Table, expect_new: bool) -> None:
        with csv_file(rows) as path:
            if expect_new and self._copy_new(conn, target, path):
                return
            self._staged_upsert(conn, target, path)

    def _copy_new(self, conn: sa.Connection, target: Target, path: str) -> bool:
        """COPY into the table itself; ``False`` (and nothing written) if a key existed."""
        try:
            with conn.begin_nested():
                _copy(conn, path, quoted(conn, [target.table.name])[0], target.columns)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            return False
        return True

    def _staged_upsert(self, conn: sa.Connection, target: Target, path: str) -> None:
        table = quoted(conn, [target.table.name])[0]
        stage = quoted(conn, [f"_stage_{target.table.name}"])[0]
        columns = ", ".join(quoted(conn, target.columns))
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        _copy(conn, path, stage, target.columns)
        conn.exec_driver_sql(
            f"INSERT INTO {table} AS t ({columns}) SELECT {columns} FROM {stage} "
            f"ON CONFLICT ({', '.join(quoted(conn, target.key))}) {_on_conflict(conn, target)}"
        )
        conn.exec_driver_sql(f"DROP TABLE {stage}")


def _on_conflict(conn: sa.Connection, target: Target) -> str:
    if not target.update_columns:
        return "DO NOTHING"
    names = quoted(conn, target.update_columns)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in names)
    changed = " OR ".join(f"t.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in names)
    return f"DO UPDATE SET {sets} WHERE {changed}"


def _copy(conn: sa.Connection, path: str, table: str, columns: tuple[str, ...]) -> None:
    sql = (
        f"COPY {table} ({', '.join(quoted(conn, columns))}) FROM STDIN "
        f"(FORMAT csv, NULL '{NULL_WORD}')"
    )
    dbapi: Any = conn.connection.dbapi_connection  # a psycopg.Connection
    with dbapi.cursor() as cursor, cursor.copy(sql) as copy, open(path, "rb") as source:
        while chunk := source.read(_CHUNK):
            copy.write(chunk)
