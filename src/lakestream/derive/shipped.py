"""The transactions program that ships with Lakestream: ``derive/ksqldb/*.sql``.

The files (also at ``sql/ksqldb/`` in the source tree, for a ksqlDB CLI) are read in
name order and compiled into the :class:`~lakestream.derive.statements.Plan` that
``lakestream process`` runs. The names of what it publishes — the derived streams,
and each table's key and value columns — are read from that plan, so the statements
are the one definition of the outputs.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

from lakestream.derive.statements import Plan, parse_statements, plan_statements
from lakestream.errors import ConfigError

INPUT_TOPIC = "transactions"


def shipped_files() -> list[Traversable]:
    """The shipped statement files, in name order."""
    folder = resources.files("lakestream.derive").joinpath("ksqldb")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")),
                   key=lambda f: f.name) if folder.is_dir() else []
    if not files:
        raise ConfigError("the shipped statements (lakestream/derive/ksqldb/*.sql) are missing "
                          "from this installation", "reinstall Lakestream")
    return files


@cache
def shipped_plan() -> Plan:
    """The compiled shipped program."""
    return plan_statements([parse_statements(f.read_text(), f.name) for f in shipped_files()])


def published_streams(plan: Plan) -> tuple[str, ...]:
    """The derived streams a program publishes (``CREATE STREAM … AS SELECT``), in order."""
    return tuple(s.name for s in plan.streams if not s.insert)


def published_tables(plan: Plan) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each aggregate table's ``(key columns, value columns)`` as published."""
    return {t.name: (t.key_columns, tuple(c.name for c in t.columns
                                          if c.name not in t.key_columns))
            for t in plan.tables}


STREAMS = published_streams(shipped_plan())
TABLES = published_tables(shipped_plan())
