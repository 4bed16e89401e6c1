"""Governance's tables in the warehouse database, and one way to run work on them.

``data_lake_permissions``, ``audit_log`` and ``api_tokens`` live in the
transactions warehouse (``warehouse_url``) next to the star schema; they are
created on first use when missing, so permissions work before ``warehouse
init`` ran (a MySQL/PostgreSQL database must exist, though).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from lakestream.warehouse.ddl import ddl_elements
from lakestream.warehouse.failures import RetryPolicy, run_in_transaction
from lakestream.warehouse.schema import api_tokens, audit_log, data_lake_permissions

T = TypeVar("T")

GOVERNANCE_TABLES = (data_lake_permissions, audit_log, api_tokens)


def utc_now() -> dt.datetime:
    """Now, in UTC without a zone (how the warehouse stores times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class GovernanceDB:
    """The governance tables of one warehouse database.

    Args:
        engine: The warehouse engine.
        retry: Patience with a database that goes away.
    """

    def __init__(self, engine: sa.Engine, retry: RetryPolicy) -> None:
        self.engine = engine
        self.retry = retry
        self._ready = False

    def run(self, work: Callable[[sa.Connection], T], what: str) -> T:
        """Run ``work`` in one transaction (retried whole), the tables created first if missing."""
        if not self._ready:
            run_in_transaction(self.engine, _create_missing, self.retry, "creating tables")
            self._ready = True
        result, _ = run_in_transaction(self.engine, work, self.retry, what)
        return result


def _create_missing(conn: sa.Connection) -> None:
    existing = set(sa.inspect(conn).get_table_names())
    for table in GOVERNANCE_TABLES:
        if table.name not in existing:
            for element in ddl_elements(table, conn.dialect):
                conn.execute(element)
