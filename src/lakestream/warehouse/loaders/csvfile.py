"""Arrow → a CSV file both ``LOAD DATA`` and ``COPY … (FORMAT csv)`` read unambiguously.

DuckDB writes it (multi-threaded, straight from Arrow memory). Strings are
always quoted with ``"`` (quotes doubled inside), and NULL is the bare word
``NULL``: MySQL with ``ENCLOSED BY '"'`` and PostgreSQL with ``NULL 'NULL'``
read a bare ``NULL`` as NULL and a quoted ``"NULL"`` or ``""`` as text, so
empty strings, NULLs and the string "NULL" all survive the trip. Booleans
are written as 0/1, which both databases accept.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

NULL_WORD = "NULL"


@contextmanager
def csv_file(rows: pa.Table) -> Iterator[str]:
    """Write ``rows`` (no header) to a temporary CSV file; yield its path; delete it."""
    fd, path = tempfile.mkstemp(prefix="lakestream-load-", suffix=".csv")
    os.close(fd)
    try:
        _write(rows, path)
        yield path
    finally:
        os.unlink(path)


def _write(rows: pa.Table, path: str) -> None:
    select = ", ".join(_expression(field) for field in rows.schema)
    strings = [_ident(f.name) for f in rows.schema if pa.types.is_string(f.type)]
    options = ["HEADER false", f"NULLSTR '{NULL_WORD}'", "DELIMITER ','", "QUOTE '\"'"]
    if strings:
        options.append(f"FORCE_QUOTE ({', '.join(strings)})")
    target = path.replace("'", "''")
    con = duckdb.connect(":memory:")
    try:
        con.register("rows_to_load", rows)
        con.execute(
            f"COPY (SELECT {select} FROM rows_to_load) TO '{target}' ({', '.join(options)})"
        ).fetchall()
    finally:
        con.close()


def _expression(field: pa.Field) -> str:
    name = _ident(field.name)
    if pa.types.is_boolean(field.type):
        return f"CAST({name} AS INTEGER) AS {name}"
    return name


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
