"""Readers of the lake's Delta tables that are not Lakestream, for interop tests (issue #16).

What Lakestream commits must come back with the same rows from every engine
our users read the lake with. Two of those engines cannot live in ``.venv``:
DuckDB's delta extension (delta-kernel-rs, a Delta implementation independent
of delta-rs) exists on PyPI only for ``duckdb==1.5.5`` while the project runs
DuckDB 2, and polars is no dependency of the project. So, as the Airflow test
does, the session builds ``.venv-interop/`` at the repository root (reused
when present and complete; gitignored) and :func:`read_with` runs this very
file in it as a script, which reads the table and prints its rows as JSON.

DuckDB cannot download extensions here: the reader loads the extension file
shipped inside the ``duckdb-extension-delta`` wheel with
``allow_unsigned_extensions``, and reads ``delta_scan('<table>')``. It reads
local tables only (no httpfs offline, SPEC §2). polars' ``read_delta`` takes
the file list and schema from ``deltalake`` (installed beside it, same version
as the project's) and reads the Parquet itself; it reads SeaweedFS with the
storage options of :func:`lakestream.lake.delta.storage_options`.

Every reader's rows go through :func:`jsonable` (timestamps as ISO-8601 in
UTC, structs as dicts), so rows of different engines compare with ``==``.

This module imports only the standard library at the top: the interop venv
does not have the project.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-interop"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".lakestream-interop"
READERS = ("duckdb-delta", "polars")
#: The name the table has in the SQL given to :func:`read_with`.
TABLE = "lake"

Row = dict[str, Any]
Query = str | Sequence[str] | None


def requirements() -> list[str]:
    """What ``.venv-interop`` holds; a change of this list rebuilds it."""
    from importlib.metadata import version

    return [
        "duckdb==1.5.5",
        "duckdb-extension-delta==1.5.5",
        "polars",
        # polars.read_delta replays the log with deltalake: the project's own version.
        f"deltalake=={version('deltalake')}",
        # DuckDB's Python client turns TIMESTAMP WITH TIME ZONE into datetimes with pytz.
        "pytz",
    ]


def ensure_venv(timeout: float = 900) -> Path:
    """Build ``.venv-interop`` unless it is complete; returns its Python.

    The stamp is written last, so a build that was interrupted is finished on
    the next run. A lock inside the folder makes pytest-xdist workers build it
    once.
    """
    wanted = "\n".join(requirements())
    VENV.mkdir(exist_ok=True)
    with open(VENV / ".build-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
            return PYTHON
        if not PYTHON.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", *requirements()],
                       check=True, timeout=timeout)
        STAMP.write_text(wanted)
    return PYTHON


def read_with(reader: str, table_uri: str, query: Query = None, *, python: Path = PYTHON,
              storage_options: Mapping[str, str] | None = None,
              timeout: float = 300) -> list[Row]:
    """The rows ``reader`` reads from the Delta table at ``table_uri``.

    Args:
        reader: ``"duckdb-delta"`` (DuckDB 1.5.5's delta extension) or ``"polars"``.
        table_uri: The table's folder (DuckDB: a local path only) or ``s3://`` URI.
        query: SQL over the table named :data:`TABLE` (DuckDB's SQL, or polars'
            SQLContext over ``scan_delta``), or the columns to read (``None``: all;
            polars then calls ``read_delta``).
        python: The interop venv's Python (the ``interop_python`` fixture).
        storage_options: For an ``s3://`` table (polars only); sent on stdin, never
            on the command line.
        timeout: Seconds the reader may take.
    """
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}: one of {', '.join(READERS)}")
    if reader == "duckdb-delta" and "://" in table_uri:
        raise ValueError("DuckDB reads local tables only here: httpfs cannot be downloaded "
                         "offline (SPEC §2)")
    return _run(python, {"reader": reader, "table": table_uri, "query": query,
                         "storage_options": dict(storage_options or {})}, timeout)


def reader_versions(python: Path = PYTHON) -> dict[str, str]:
    """The versions of the engines installed in the interop venv."""
    return dict(_run(python, {"reader": "versions"}, 120))


def _run(python: Path, request: Mapping[str, Any], timeout: float) -> Any:
    done = subprocess.run([str(python), "-I", __file__], input=json.dumps(request),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{request['reader']} failed on {request.get('table')}:\n"
                             f"{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def read_deltalake(table_uri: str, columns: Sequence[str] | None = None,
                   storage_options: Mapping[str, str] | None = None) -> list[Row]:
    """The rows delta-rs's snapshot gives (``to_pyarrow_dataset``), in :func:`jsonable` form.

    Not ``DeltaTable.to_pyarrow_table``: with deltalake 1.6.6 a process that
    called it aborts at exit now and then ("terminate called without an
    active exception", exit 134; 3 of 12 runs here), which would fail a test
    worker after its tests passed.
    """
    from deltalake import DeltaTable

    table = DeltaTable(table_uri, storage_options=dict(storage_options or {}) or None)
    data = table.to_pyarrow_dataset().to_table(columns=list(columns) if columns else None)
    return [jsonable(row) for row in data.to_pylist()]


def read_spark(spark: Any, table_uri: str, columns: Sequence[str] | None = None) -> list[Row]:
    """The rows Spark reads from the snapshot's files, with the table's schema.

    Spark here has no Delta jars: it reads ``DeltaTable.file_uris()`` as Parquet.
    The partition columns are in the folder names only: ``basePath`` makes
    Spark take them from there, and the table's schema (strings) keeps
    ``day=04`` from being inferred as the integer 4. The schema also fills
    columns that older files lack with nulls: without it (or ``mergeSchema``)
    Spark takes one file's schema and can drop the columns a later commit
    added, silently.
    """
    import pyarrow as pa
    from deltalake import DeltaTable
    from pyspark.sql.pandas.types import from_arrow_schema

    table = DeltaTable(table_uri)
    schema = from_arrow_schema(pa.schema(table.schema().to_arrow()))
    frame = spark.read.schema(schema).option("basePath", table_uri).parquet(*table.file_uris())
    if columns:
        frame = frame.select(*columns)
    return [jsonable(row) for row in frame.toArrow().to_pylist()]


def jsonable(value: Any) -> Any:
    """``value`` as JSON would hold it, the same whichever engine produced it."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # kept naive, so that a reader losing the zone shows
            return value.isoformat(timespec="microseconds")
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


# -- the reader side, run by read_with inside .venv-interop ---------------------------------


def _duckdb_rows(table: str, query: Query, _options: Mapping[str, str]) -> list[Row]:
    import duckdb
    import duckdb_extension_delta

    extension = (Path(duckdb_extension_delta.__file__).parent / "extensions"
                 / f"v{duckdb.__version__}" / "delta.duckdb_extension")
    if not extension.exists():
        raise SystemExit(f"no delta extension for duckdb {duckdb.__version__} at {extension}")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true",
                                 "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    con.execute(f"LOAD {_sql_string(str(extension))}")
    con.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM delta_scan({_sql_string(table)})")
    if not isinstance(query, str):
        columns = ", ".join(f'"{c}"' for c in query) if query else "*"
        query = f"SELECT {columns} FROM {TABLE}"
    result = con.execute(query)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _polars_rows(table: str, query: Query, options: Mapping[str, str]) -> list[Row]:
    import polars as pl

    if isinstance(query, str):
        lazy = pl.scan_delta(table, storage_options=dict(options) or None)
        frame = pl.SQLContext({TABLE: lazy}).execute(query).collect()
    else:
        frame = pl.read_delta(table, columns=list(query) if query else None,
                              storage_options=dict(options) or None)
    rows: list[Row] = frame.rows(named=True)
    return rows


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _main() -> None:
    request = json.load(sys.stdin)
    if request["reader"] == "versions":
        from importlib.metadata import version

        names = ("duckdb", "duckdb-extension-delta", "polars", "deltalake")
        json.dump({name: version(name) for name in names}, sys.stdout)
        return
    read = {"duckdb-delta": _duckdb_rows, "polars": _polars_rows}[request["reader"]]
    rows = read(request["table"], request["query"], request["storage_options"])
    json.dump([jsonable(row) for row in rows], sys.stdout)


if __name__ == "__main__":
    _main()
