"""The warehouse as the facade sees it: ``init``, ``ddl``, ``sync``, ``status``, ``check``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa

from lakestream.config import Settings
from lakestream.errors import WarehouseRefusedError
from lakestream.lake.storage import Storage, open_storage
from lakestream.warehouse import ddl
from lakestream.warehouse.connection import (
    create_database,
    dialect_name,
    make_engine,
    warehouse_url,
)
from lakestream.warehouse.failures import WAREHOUSE, RetryPolicy, run_in_transaction
from lakestream.warehouse.loaders import BulkLoader, bulk_loader
from lakestream.warehouse.schema import FACT_TABLES, metadata
from lakestream.warehouse.sync import Syncer, SyncReport, orphan_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitReport:
    """What ``init`` did: whether it created the database, and which tables."""

    url: str
    database_created: bool
    tables_created: tuple[str, ...]
    tables_total: int


@dataclass(frozen=True)
class TableStatus:
    """Rows and snapshot versions of one warehouse table."""

    table: str
    rows: int
    snapshots: tuple[str, ...]


class WarehouseService:
    """The star-schema warehouse of one configuration.

    Args:
        settings: Lakestream settings (``warehouse_url``, ``data_dir``, the lake).
        storage: The lake (default: opened from the settings on first use).
        retry: Patience with a warehouse that goes away during a load.
        local_infile: Allow MySQL ``LOAD DATA LOCAL INFILE`` (else multi-row upserts).
    """

    def __init__(
        self,
        settings: Settings,
        storage: Storage | None = None,
        retry: RetryPolicy | None = None,
        local_infile: bool = True,
    ) -> None:
        self.settings = settings
        self.url = warehouse_url(settings)
        self.dialect = dialect_name(self.url)
        self.retry = retry or WAREHOUSE
        self._storage = storage
        self._local_infile = local_infile

    @property
    def display_url(self) -> str:
        """The URL with its password hidden."""
        return self.url.render_as_string(hide_password=True)

    @cached_property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (pooled, pre-pinged)."""
        return make_engine(self.url, local_infile=self._local_infile)

    @cached_property
    def loader(self) -> BulkLoader:
        """The bulk loader of this dialect."""
        return bulk_loader(self.dialect)

    @property
    def storage(self) -> Storage:
        """The lake that ``sync`` reads."""
        if self._storage is None:
            self._storage = open_storage(self.settings.lake.root, self.settings.s3)
        return self._storage

    def close(self) -> None:
        """Release the engine's connections."""
        if "engine" in self.__dict__:
            self.engine.dispose()
            del self.__dict__["engine"]

    # -- schema ------------------------------------------------------------------------

    def init(self, create_db: bool = True) -> InitReport:
        """Create the database (MySQL/PostgreSQL, if missing) and every missing table.

        Idempotent: a second run creates nothing and changes nothing.
        """
        created_db = create_database(self.url) if create_db else False

        def work(conn: sa.Connection) -> tuple[str, ...]:
            existing = set(sa.inspect(conn).get_table_names())
            created: list[str] = []
            for group in ddl.table_groups():
                for table in group:
                    if table.name in existing:
                        continue
                    for element in ddl.ddl_elements(table, conn.dialect):
                        conn.execute(element)
                    created.append(table.name)
            return tuple(created)

        created, _ = run_in_transaction(self.engine, work, self.retry, "creating the schema")
        return InitReport(self.display_url, created_db, created, len(metadata.tables))

    @staticmethod
    def ddl(dialect: str, database: str = ddl.DEFAULT_DATABASE) -> dict[str, str]:
        """The schema scripts of ``dialect`` by file name (what ``sql/`` holds for MySQL)."""
        return ddl.render_all(dialect, database)

    @staticmethod
    def write_ddl(dialect: str, out_dir: Path) -> list[Path]:
        """Write the schema scripts of ``dialect`` into ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in ddl.render_all(dialect).items():
            (out_dir / name).write_text(text, encoding="utf-8")
            written.append(out_dir / name)
        return written

    # -- loads -------------------------------------------------------------------------

    def sync(self, tables: Sequence[str] | None = None, run_id: str | None = None) -> SyncReport:
        """Load dimensions and the current version of each lake table (see :mod:`.sync`).

        ``run_id``: the run the sync is a task of (its loads are logged under it);
        default: a run of its own.
        """
        self._require_schema()
        return Syncer(self.engine, self.storage, self.loader, self.retry, run_id).run(tables)

    # -- inspection --------------------------------------------------------------------

    def orphans(self) -> dict[str, int]:
        """Fact rows without their dimension row, per fact table (zeros when sound)."""
        counts, _ = run_in_transaction(self.engine, orphan_counts, self.retry, "checking")
        return counts

    def status(self) -> list[TableStatus]:
        """Row counts of every table, and the snapshot versions of the facts."""
        self._require_schema()

        def work(conn: sa.Connection) -> list[TableStatus]:
            result = []
            for table in (t for group in ddl.table_groups() for t in group):
                rows = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                snapshots: tuple[str, ...] = ()
                if table in FACT_TABLES:
                    query = sa.select(table.c.snapshot_version).distinct()
                    snapshots = tuple(sorted(conn.execute(query).scalars(), key=_version_order))
                result.append(TableStatus(table.name, int(rows), snapshots))
            return result

        statuses, _ = run_in_transaction(self.engine, work, self.retry, "reading status")
        return statuses

    def _require_schema(self) -> None:
        def missing(conn: sa.Connection) -> list[str]:
            existing = set(sa.inspect(conn).get_table_names())
            return [name for name in metadata.tables if name not in existing]

        absent, _ = run_in_transaction(self.engine, missing, self.retry, "connecting")
        if absent:
            raise WarehouseRefusedError(
                f"the warehouse at {self.display_url} has no table {', '.join(absent[:3])}"
                + (" ..." if len(absent) > 3 else ""),
                "run `lakestream warehouse init` first",
            )


def _version_order(version: str) -> tuple[int, int, str]:
    """``v2`` before ``v10``; names that are not ``v<N>`` (``live``) last."""
    digits = version[1:]
    if version.startswith("v") and digits.isdigit():
        return (0, int(digits), version)
    return (1, 0, version)
