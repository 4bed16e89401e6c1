"""Silver → gold: the weather gold store (PostgreSQL ``weather_dw``; SQLite by default).

The gold tables are upserted from silver with the warehouse's bulk loaders
(PostgreSQL ``COPY`` + ``INSERT … ON CONFLICT``, MariaDB ``LOAD DATA``, SQLite
batched upserts), all three in one transaction: a load is visible whole or not
at all, and loading the same silver twice writes nothing (an upsert only
touches rows whose values changed). Write-audit-publish: the caller's audit
reads the loaded rows inside that transaction, before it commits; if it
holds the load back, the transaction rolls back and gold stays as it was.
The store also keeps the quality results (``data_quality_results``) and the
weather pipeline's run log (``pipeline_execution_log``, which only
:mod:`lakestream.warehouse.runlog` writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.config.databases import database_url
from lakestream.errors import LakestreamError, WarehouseRefusedError
from lakestream.lake.storage import Storage
from lakestream.medallion.engines import HeldBack, SqlEngine
from lakestream.medallion.gold_schema import (
    GOLD_SOURCES,
    GOLD_TABLES,
    gold_metadata,
    load_columns,
)
from lakestream.medallion.silver import dataset_files
from lakestream.warehouse.connection import create_database, dialect_name, make_engine
from lakestream.warehouse.failures import WAREHOUSE, RetryPolicy, run_in_transaction
from lakestream.warehouse.loaders import BulkLoader, Target, bulk_loader

GoldAudit = Callable[[sa.Connection, Mapping[str, pa.Table]], "str | None"]
"""Reads a load inside its transaction; returns why it must not commit, or ``None``."""



@dataclass
class GoldReport:
    """What one gold load read from silver and upserted."""

    url: str
    engine: str
    rows_in: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Rows given to the loaders over all tables."""
        return sum(self.rows_in.values())


def gold_url(settings: Settings) -> sa.URL:
    """The configured gold URL (with a driver), or ``<data_dir>/gold.db``."""
    raw = settings.gold_url or f"sqlite:///{Path(settings.data_dir) / 'gold.db'}"
    return database_url("gold_url", raw, "postgresql://user@host:5432/weather_dw")


def _as_gold(exc: LakestreamError) -> LakestreamError:
    """A warehouse error reworded for the gold store (its own URL and commands)."""
    message = exc.message.replace("the warehouse", "the gold store")
    hint = (exc.hint or "").replace("LAKESTREAM_WAREHOUSE_URL (or warehouse_url)",
                                    "LAKESTREAM_GOLD_URL (or gold_url)")
    hint = hint.replace("`lakestream warehouse init`", "`lakestream medallion gold`")
    return type(exc)(message, hint or None)


class GoldStore:
    """The gold database of the weather pipeline.

    Args:
        settings: ``gold_url`` and ``data_dir``.
        retry: Patience with a database that goes away during a load.
    """

    def __init__(self, settings: Settings, retry: RetryPolicy | None = None) -> None:
        self.url = gold_url(settings)
        self.dialect = dialect_name(self.url)
        self.retry = retry or WAREHOUSE
        self._ready = False

    @property
    def display_url(self) -> str:
        """The URL with its password hidden."""
        return self.url.render_as_string(hide_password=True)

    @cached_property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine."""
        return make_engine(self.url)

    @cached_property
    def loader(self) -> BulkLoader:
        """The bulk loader of this dialect."""
        return bulk_loader(self.dialect)

    def close(self) -> None:
        """Release the connections."""
        if "engine" in self.__dict__:
            self.engine.dispose()
            del self.__dict__["engine"]

    def _transaction(self, work: Any, what: str) -> Any:
        try:
            result, _ = run_in_transaction(self.engine, work, self.retry, what)
        except LakestreamError as exc:
            raise _as_gold(exc) from exc
        return result

    def ensure_schema(self) -> None:
        """Create the database (PostgreSQL/MySQL, if missing) and any missing table."""
        if self._ready:
            return
        try:
            create_database(self.url)
        except LakestreamError as exc:
            raise _as_gold(exc) from exc
        self._transaction(lambda conn: gold_metadata.create_all(conn, checkfirst=True),
                          "creating the gold schema")
        self._ready = True

    def load(self, tables: Mapping[str, pa.Table],
             audit: GoldAudit | None = None) -> dict[str, int]:
        """Upsert Arrow tables into gold tables of the same names, in one transaction.

        Raises:
            HeldBack: ``audit`` held the load back (the transaction rolled back).
        """
        self.ensure_schema()
        by_name = {t.name: t for t in GOLD_TABLES}

        def work(conn: sa.Connection) -> dict[str, int]:
            counts = {}
            for name, data in tables.items():
                table = by_name[name]
                target = Target(table, GOLD_SOURCES[name][1], load_columns(table))
                empty = conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
                counts[name] = self.loader.load(conn, target, data, expect_new=empty is None)
            verdict = audit(conn, tables) if audit else None
            if verdict:
                raise HeldBack(f"the gold load was held back, gold is unchanged: {verdict}",
                               "see the checks with `lakestream quality show RUN`")
            return counts

        loaded: dict[str, int] = self._transaction(work, "loading gold")
        return loaded

    def insert(self, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert plain rows (small: logs and quality results)."""
        self.ensure_schema()
        if rows:
            self._transaction(lambda conn: conn.execute(sa.insert(table), list(rows)),
                              f"writing {table.name}")

    def select(self, table: sa.Table, *order_by: str) -> list[dict[str, Any]]:
        """Every row of a gold table as dictionaries, in ``order_by`` order."""
        self.ensure_schema()
        query = sa.select(table).order_by(*(table.c[c] for c in order_by))
        rows: list[dict[str, Any]] = self._transaction(
            lambda conn: [dict(r._mapping) for r in conn.execute(query)], f"reading {table.name}")
        return rows


def read_silver(engine: SqlEngine, storage: Storage) -> dict[str, pa.Table]:
    """The silver rows each gold table is loaded from (tables with no silver are left out)."""
    q = engine.dialect.quote
    tables: dict[str, pa.Table] = {}
    for table in GOLD_TABLES:
        dataset, _key = GOLD_SOURCES[table.name]
        files = dataset_files(storage, dataset)
        if not files:
            continue
        view = f"gold_src_{table.name}"
        engine.register(view, files)
        columns = ", ".join(q(c) for c in load_columns(table))
        tables[table.name] = engine.arrow(f"SELECT {columns} FROM {q(view)}")
    return tables


def load_gold(store: GoldStore, engine: SqlEngine, storage: Storage,
              audit: GoldAudit | None = None) -> GoldReport:
    """Read silver with ``engine`` and upsert it into the gold store (after ``audit``)."""
    started = time.monotonic()
    tables = read_silver(engine, storage)
    if not tables:
        raise WarehouseRefusedError("silver holds no weather data yet",
                             "run `lakestream medallion silver` first")
    report = GoldReport(store.display_url, engine.name)
    report.rows_in = store.load(tables, audit)
    report.seconds = time.monotonic() - started
    return report
