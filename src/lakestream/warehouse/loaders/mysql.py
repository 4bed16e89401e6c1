"""MySQL/MariaDB: ``LOAD DATA LOCAL INFILE``, with multi-row upserts where it is refused.

* New rows (``expect_new``): ``LOAD DATA`` straight into the table. With
  ``LOCAL`` the server skips rows whose key exists (a warning each); if any
  was skipped, the staged path below runs too, so the result is an upsert.
* Otherwise: ``LOAD DATA`` into a temporary staging table, then
  ``INSERT … SELECT … ON DUPLICATE KEY UPDATE``.
* If the server or client refuses ``LOCAL INFILE``: multi-row
  ``INSERT … ON DUPLICATE KEY UPDATE`` batches (PyMySQL's ``executemany``).

``LOCAL`` turns data errors into warnings; any warning other than a skipped
duplicate fails the load instead of storing a truncated value.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import sqlalchemy as sa

from lakestream.errors import WarehouseRefusedError
from lakestream.warehouse.loaders.base import BulkLoader, Target, python_rows, quoted
from lakestream.warehouse.loaders.csvfile import csv_file

log = logging.getLogger(__name__)

_REFUSED = {1148, 2068, 3948, 3950, 4166}  # LOCAL INFILE disabled (server or client)
_DUPLICATE_KEY = 1062
_FALLBACK_BATCH = 5_000


class MySQLLoader(BulkLoader):
    """Bulk upserts for MySQL and MariaDB."""

    dialect = "mysql"

    def __init__(self) -> None:
        self.local_infile = True

    def _load(self, conn: sa.Connection, target: Target, rows: pa.Table, expect_new: bool) -> None:
        if self.local_infile:
            try:
                self._load_file(conn, target, rows, expect_new)
                return
            except sa.exc.DBAPIError as exc:
                if _code(exc) not in _REFUSED:
                    raise
                self.local_infile = False
                log.warning(
                    "the MySQL server refused LOAD DATA LOCAL INFILE (%s); "
                    "falling back to multi-row INSERT (slower; enable local_infile on the server)",
                    exc.orig,
                )
        self._insert_rows(conn, target, rows)

    def _load_file(
        self, conn: sa.Connection, target: Target, rows: pa.Table, expect_new: bool
    ) -> None:
        with csv_file(rows) as path:
            if expect_new:
                inserted = self._load_data(conn, path, target.table.name, target.columns)
                if inserted == rows.num_rows:
                    return
            self._staged_upsert(conn, target, path)

    def _load_data(
        self, conn: sa.Connection, path: str, table: str, columns: tuple[str, ...]
    ) -> int:
        sql = (
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {quoted(conn, [table])[0]} "
            "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
            f"ESCAPED BY '' LINES TERMINATED BY '\\n' ({', '.join(quoted(conn, columns))})"
        )
        result = conn.exec_driver_sql(sql, (path,))
        _raise_on_data_warnings(conn, table)
        return int(result.rowcount)

    def _staged_upsert(self, conn: sa.Connection, target: Target, path: str) -> None:
        table = quoted(conn, [target.table.name])[0]
        stage = quoted(conn, [f"_stage_{target.table.name}"])[0]
        columns = ", ".join(quoted(conn, target.columns))
        engine = "ENGINE=Aria " if getattr(conn.dialect, "is_mariadb", False) else ""
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {stage}")
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {stage} {engine}SELECT {columns} FROM {table} WHERE 1 = 0"
        )
        self._load_data(conn, path, f"_stage_{target.table.name}", target.columns)
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} "
            f"ON DUPLICATE KEY UPDATE {_assignments(conn, target)}"
        )
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE {stage}")

    def _insert_rows(self, conn: sa.Connection, target: Target, rows: pa.Table) -> None:
        columns = ", ".join(quoted(conn, target.columns))
        marks = ", ".join(["%s"] * len(target.columns))
        sql = (
            f"INSERT INTO {quoted(conn, [target.table.name])[0]} ({columns}) VALUES ({marks}) "
            f"ON DUPLICATE KEY UPDATE {_assignments(conn, target)}"
        )
        for batch in python_rows(rows, _FALLBACK_BATCH):
            conn.exec_driver_sql(sql, batch)


def _assignments(conn: sa.Connection, target: Target) -> str:
    """The ``ON DUPLICATE KEY UPDATE`` list (left sides qualified: staging has the names too)."""
    table = quoted(conn, [target.table.name])[0]
    if not target.update_columns:
        first = quoted(conn, target.key[:1])[0]
        return f"{table}.{first} = {table}.{first}"
    return ", ".join(f"{table}.{c} = VALUES({c})" for c in quoted(conn, target.update_columns))


def _raise_on_data_warnings(conn: sa.Connection, table: str) -> None:
    warnings = conn.exec_driver_sql("SHOW WARNINGS LIMIT 20").fetchall()
    bad = [w for w in warnings if int(w[1]) != _DUPLICATE_KEY]
    if bad:
        raise WarehouseRefusedError(
            f"MySQL rejected data loaded into {table}: {bad[0][2]}",
            "a value does not fit its column; see the table definition in sql/",
        )


def _code(exc: sa.exc.DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None
