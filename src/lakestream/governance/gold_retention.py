"""Retention of the weather gold store: rows of ``gold_weather_*`` older than N days.

Each gold table is cut on its time column (``timestamp`` for the detailed
rows, ``date`` for the daily and hourly aggregates; otherwise its first date
or time column). A row goes when its day is at or before the policy's cutoff
day, the same rule as for date partitions, so today's rows always stay.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.config.databases import database_url
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.failures import WAREHOUSE, RetryPolicy, run_in_transaction

if TYPE_CHECKING:
    from lakestream.governance.retention import Deletion

GOLD_PREFIX = "gold_weather_"
TIME_COLUMNS = ("timestamp", "date", "observed_at", "fetched_at")


def gold_database_url(settings: Settings) -> sa.URL | None:
    """The gold store's URL, or ``None`` when none is configured and the default file is absent."""
    if settings.gold_url is None:
        default = Path(settings.data_dir) / "gold.db"
        if not default.exists():
            return None
        return sa.make_url(f"sqlite:///{default}")
    return database_url("gold_url", settings.gold_url, "postgresql://user@host:5432/weather_dw")


class GoldRetention:
    """Plans and deletes old rows of the gold tables.

    Args:
        url: The gold store.
        retry: Patience with a database that goes away.
    """

    def __init__(self, url: sa.URL, retry: RetryPolicy | None = None) -> None:
        self.url = url
        self.retry = retry or WAREHOUSE
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        """The gold store's engine (created on first use)."""
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def close(self) -> None:
        """Release the engine's connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def tables(self) -> list[str]:
        """The ``gold_weather_*`` tables that exist."""
        names, _ = run_in_transaction(
            self.engine, lambda conn: sa.inspect(conn).get_table_names(), self.retry,
            "listing the gold tables")
        return sorted(n for n in names if n.startswith(GOLD_PREFIX))

    def plan(self, feed: str, table: str, cutoff: dt.date) -> list[Deletion]:
        """The rows of ``table`` dated ``cutoff`` or earlier (one deletion, or none)."""
        from lakestream.governance.retention import Deletion

        def work(conn: sa.Connection) -> tuple[str | None, int]:
            target, column = _reflect(conn, table)
            if column is None:
                return None, 0
            query = sa.select(sa.func.count()).select_from(target).where(
                _older(target.c[column], cutoff))
            return column, int(conn.execute(query).scalar_one())

        (column, rows), _ = run_in_transaction(self.engine, work, self.retry, "planning gold")
        if column is None or not rows:
            return []
        return [Deletion(feed, "gold", table, f"{column} < {cutoff + dt.timedelta(days=1)}",
                         cutoff.isoformat(), (), 0, rows, column)]

    def delete(self, deletion: Deletion) -> int:
        """Delete the rows of one planned deletion; returns how many went."""
        column, day = deletion.column, deletion.date
        assert column is not None and day is not None
        cutoff = dt.date.fromisoformat(day)

        def work(conn: sa.Connection) -> int:
            target, _ = _reflect(conn, deletion.dataset)
            done = conn.execute(sa.delete(target).where(_older(target.c[column], cutoff)))
            return int(done.rowcount)

        deleted, _ = run_in_transaction(self.engine, work, self.retry, "deleting gold rows")
        return deleted


def _reflect(conn: sa.Connection, name: str) -> tuple[sa.Table, str | None]:
    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    columns = {c.name: c for c in table.columns}
    for preferred in TIME_COLUMNS:
        if preferred in columns and isinstance(columns[preferred].type, sa.Date | sa.DateTime):
            return table, preferred
    timed = [c.name for c in table.columns if isinstance(c.type, sa.Date | sa.DateTime)]
    return table, timed[0] if timed else None


def _older(column: sa.ColumnElement[object], cutoff: dt.date) -> sa.ColumnElement[bool]:
    """``column`` falls on ``cutoff`` or earlier (timestamps compared as UTC)."""
    boundary = cutoff + dt.timedelta(days=1)
    kind = column.type
    if isinstance(kind, sa.DateTime):
        moment = dt.datetime(boundary.year, boundary.month, boundary.day)
        return column < (moment.replace(tzinfo=dt.UTC) if kind.timezone else moment)
    return column < boundary
