"""The first enforcement layer: parse a principal's SQL and list every dataset it reads.

The whole statement is parsed with sqlglot (DuckDB dialect) and refused unless
it is exactly one query (``SELECT``, set operations, ``WITH``). Every table
reference is resolved: a CTE name visible at that point, or a lake dataset
(case-insensitive, as DuckDB compares names), or a file path (``FROM 'x.parquet'``)
that must lie inside a dataset's folder. Table functions are refused,
except ``range``/``generate_series``/``unnest`` and ``read_parquet`` over
literal paths inside a lake dataset's folder (which count as reading that
dataset). Functions that reach outside the query (``read_text``, ``glob``,
``query``, ``getenv``, ``duckdb_*`` ...) are refused anywhere in the statement.

The second layer, a DuckDB connection that only holds the permitted views and
has no external access, lives in :class:`lakestream.lake.reader.LakeReader`;
each layer refuses a bypass on its own.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from lakestream.errors import QueryError

_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery, exp.Values)
_FORBIDDEN_NODES = tuple(
    getattr(exp, name) for name in (
        "Copy", "Attach", "Detach", "Install", "Command", "Create", "Insert", "Update", "Delete",
        "Drop", "Set", "Pragma", "Use", "Merge", "Alter", "Export", "Describe", "Summarize",
        "Show", "Into",
    ) if hasattr(exp, name)
)  # fmt: skip
_TABLE_FUNCTIONS_OK = (exp.GenerateSeries, exp.Unnest)
_PARQUET_READERS = frozenset({"read_parquet", "parquet_scan"})
_DENIED_NAMES = frozenset({
    "query", "query_table", "glob", "getenv", "sniff_csv", "load_extension", "current_setting",
    "which_secret", "read_text", "read_blob",
})  # fmt: skip
_DENIED_PATTERN = re.compile(
    r"^(read_|parquet_|iceberg_|delta_|sqlite_|postgres_|mysql_|duckdb_|pragma_|arrow_)|_scan$"
    r"|execute|serialize"
)
_QUALIFIERS_OK = {("", ""), ("main", ""), ("main", "memory")}


class AccessDeniedError(QueryError):
    """A principal's query was refused: it reads a dataset they may not, or is not a query.

    Args:
        message: What was refused.
        hint: How to get access.
        dataset: The dataset refused, when one is to blame.
    """

    def __init__(self, message: str, hint: str | None = None, dataset: str | None = None) -> None:
        super().__init__(message, hint)
        self.dataset = dataset


@dataclass(frozen=True)
class StatementRefs:
    """What one parsed statement reads."""

    datasets: frozenset[str]
    """Lower-cased names of the lake datasets (views) it reads."""
    unknown: frozenset[str]
    """Table names that are neither a dataset nor a CTE."""


def statement_refs(sql: str, folders: Mapping[str, str]) -> StatementRefs:
    """Parse ``sql`` and return the datasets it reads.

    Args:
        sql: The principal's SQL text.
        folders: Dataset name (lower case) → its folder as a path or URL, to map
            ``read_parquet`` paths to datasets.

    Raises:
        AccessDeniedError: Not exactly one query, a forbidden construct, or a
            path outside every dataset.
    """
    tree = _parse_one(sql)
    names = {name.lower() for name in folders}
    datasets: set[str] = set()
    unknown: set[str] = set()
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            _refuse(f"{type(node).__name__.upper()} is not allowed in a query")
        if isinstance(node, exp.Table):
            found = _table_refs(node, folders)
            if found is not None:
                datasets |= found
                continue
            name = node.name.lower()
            if "/" in name or "." in name:  # FROM 'path/file.parquet': DuckDB reads the file
                datasets.add(_dataset_of_path(node.name, folders))
            elif not _is_cte_reference(node, name):
                (datasets if name in names else unknown).add(name)
        elif isinstance(node, exp.Func) and not isinstance(node.parent, exp.Table):
            _check_function(node)
    return StatementRefs(frozenset(datasets), frozenset(unknown))


def _parse_one(sql: str) -> exp.Expr:
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # sqlglot warns on stderr when it falls back to a Command
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _refuse(f"the query cannot be parsed safely: {first}")
    finally:
        quiet.setLevel(level)
    if len(statements) != 1:
        _refuse(f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _QUERY_ROOTS):
        _refuse(f"only a SELECT query is allowed, not {type(tree).__name__.upper()}")
    return tree


def _table_refs(node: exp.Table, folders: Mapping[str, str]) -> set[str] | None:
    """Datasets a table-function reference reads; ``None`` for a plain name."""
    source = node.this
    if isinstance(source, exp.Identifier):
        qualifiers = (node.db.lower(), node.catalog.lower())
        if qualifiers not in _QUALIFIERS_OK:
            _refuse(f"qualified table names are not allowed ({node.sql(dialect='duckdb')})")
        return None
    if isinstance(source, _TABLE_FUNCTIONS_OK):
        return set()
    if isinstance(source, exp.Func) and _function_name(source) in _PARQUET_READERS:
        return {_dataset_of_path(p, folders) for p in _literal_paths(source)}
    what = _function_name(source) if isinstance(source, exp.Func) else type(source).__name__
    _refuse(f"table function {what}() is not allowed; query the dataset views")


def _is_cte_reference(table: exp.Table, name: str) -> bool:
    """Whether ``table`` names a CTE visible where it stands (else it names a dataset)."""
    node: exp.Expr = table
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.With) and isinstance(node, exp.CTE):
            ctes = list(parent.expressions)
            visible = ctes[: ctes.index(node) + (1 if parent.args.get("recursive") else 0)]
            if name in {c.alias_or_name.lower() for c in visible}:
                return True
            node = parent.parent if parent.parent is not None else parent
            if node is parent:
                return False
            continue
        with_ = next((v for v in parent.args.values() if isinstance(v, exp.With)), None)
        if with_ is not None and node is not with_ \
                and name in {c.alias_or_name.lower() for c in with_.expressions}:
            return True
        node = parent
    return False


def _check_function(node: exp.Func) -> None:
    name = _function_name(node)
    if name in _PARQUET_READERS or name in _DENIED_NAMES or _DENIED_PATTERN.search(name):
        _refuse(f"function {name}() is not allowed; query the dataset views")


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _literal_paths(func: exp.Func) -> list[str]:
    first = func.this if isinstance(func.this, exp.Expr) else None
    if first is None and func.expressions:
        first = func.expressions[0]
    items = first.expressions if isinstance(first, exp.Array) else [first]
    paths = [i.this for i in items if isinstance(i, exp.Literal) and i.is_string]
    if not paths or len(paths) != len(items):
        _refuse("read_parquet() needs literal paths")
    return [str(p) for p in paths]


def _dataset_of_path(path: str, folders: Mapping[str, str]) -> str:
    scheme, sep, rest = path.partition("://")
    # DuckDB reads a relative path from the working directory: compare it the same way
    normal = f"{scheme}://{posixpath.normpath(rest)}" if sep else os.path.abspath(path)
    for name, folder in folders.items():
        if normal.startswith(folder.rstrip("/") + "/"):
            return name.lower()
    _refuse(f"read_parquet('{path}') is outside the lake's datasets")


def _refuse(message: str) -> NoReturn:
    raise AccessDeniedError(message, "with --as, query only the dataset views you may read")
