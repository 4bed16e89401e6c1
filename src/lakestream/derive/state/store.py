"""The processor's state store: exact aggregate state and input positions, in one database.

SQLite by default (``<data_dir>/state/processor.sqlite``); PostgreSQL or MariaDB
(``state_url``) when processors on several hosts share the work. One batch of one
input partition changes the store in **one transaction** (:meth:`StateStore.transaction`):
the partition's state rows, its distinct values, its next offset and stream time
together, so after a crash the state is exactly "every event before the stored offsets".

**The store-wide lock.** Every batch transaction starts by locking the one row of
``lakestream_lock`` (``SELECT … FOR UPDATE``; on SQLite ``BEGIN IMMEDIATE`` takes the
file's write lock) and holds it through reading the partition's next offset, writing the
state, publishing the outputs (the publisher waits for the broker's acknowledgements)
and committing. So:

- a processor that lost its partition (a zombie, frozen past its session timeout) finds
  the offsets its successor committed and skips or trims its stale batch;
- two hosts that touch the same table key publish its values in commit order: the
  value published last is the value of the state committed last.

The cost: batch commits of all hosts are serialized. Decoding, validation and the
statements' SQL run before the lock, in parallel; reading and writing the touched keys'
state, publishing (the broker's acknowledgement included) and committing run one batch
at a time across the whole group. Large batches keep that from limiting throughput;
more hosts do not make that part faster.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from lakestream.config import Settings
from lakestream.config.databases import database_url
from lakestream.derive.state import legacy
from lakestream.derive.state.errors import (
    ProgramChangedError,
    StateStoreRefusedError,
    translate,
    url_text,
)
from lakestream.derive.state.schema import (
    BASE_TABLES,
    STORE_FORMAT,
    TableLayout,
    canonical,
    catalog,
    distinct_values,
    layout_of,
    lock,
    metadata,
    positions,
    store_info,
)
from lakestream.derive.statements import TablePlan

log = logging.getLogger(__name__)

_CHUNK = 500  # keys per IN (...) list
_READ_ONLY = "lakestream_read_only"  # an execution option: no write lock on SQLite
_SETUP_LOCK = "lakestream_state_setup"  # MariaDB named lock of table creation
_SETUP_KEY = 7_281_337_001  # PostgreSQL advisory lock key of table creation
_PROGRAM = "program"  # lakestream_store row: the program the processors run, and who started it
_CONNECT_TIMEOUT_S = 10
# the keys a read looks up, one bound list (its statement is compiled once)
_HASHES: sa.BindParameter[list[str]] = sa.bindparam("hashes", expanding=True)
_DISTINCT_COLUMNS = ("table_name", "key_hash", "aggregate", "value_hash", "part")


def state_url(settings: Settings) -> sa.URL:
    """The configured store (with a driver), or the embedded SQLite file."""
    default = Path(settings.data_dir) / "state" / "processor.sqlite"
    raw = settings.state_url or f"sqlite:///{default}"
    return database_url("state_url", raw,
                        "postgresql://user:password@host:5432/lakestream_state, "
                        "mysql://user:password@host:3306/lakestream_state or leave it "
                        "unset for the SQLite file")


def _dialect(url: sa.URL) -> str:
    backend = url.get_backend_name()
    return {"mariadb": "mysql", "postgres": "postgresql"}.get(backend, backend)


def _engine(url: sa.URL) -> sa.Engine:
    kind = _dialect(url)
    if kind == "sqlite":
        if url.database and url.database != ":memory:":
            folder = Path(url.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateStoreRefusedError(
                    f"the state store's folder {folder} cannot be created: {exc.strerror}",
                    "set data_dir (or state_url) to a folder Lakestream may write") from None
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    if kind == "mysql":
        connect_args["charset"] = "utf8mb4"
    return sa.create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED",
                            connect_args=connect_args)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions begin as _sqlite_begin says
    cursor = dbapi_connection.cursor()
    try:
        # WAL is kept in the file; switching to it does not wait for a busy file (several
        # processors opening a new store at once), so it is tried again for a while
        deadline = time.monotonic() + 60
        while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                cursor.execute("PRAGMA journal_mode = WAL").fetchall()
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    if connection.get_execution_options().get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")  # a reader of a WAL file waits for no writer
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock: the store-wide lock


class StateStore:
    """A connection pool to the state store; :meth:`attach` the program's tables first.

    Args:
        url: The store's SQLAlchemy URL (:func:`state_url`).
    """

    def __init__(self, url: sa.URL | str) -> None:
        self.url = sa.make_url(url)
        self.dialect = _dialect(self.url)
        self.engine = _engine(self.url)
        self.meta = sa.MetaData()
        self.layouts: dict[str, TableLayout] = {}
        self._upserts: dict[tuple[str, bool], tuple[str, list[str], bool]] = {}
        with self._guard("open"):
            self.legacy = self.dialect == "sqlite" and legacy.is_legacy(self.engine)
            if not self.legacy:
                with self._setup() as conn:
                    self._create_base(conn)

    @classmethod
    def for_settings(cls, settings: Settings) -> StateStore:
        """The store ``settings`` name (``state_url``, else the SQLite file)."""
        return cls(state_url(settings))

    def __repr__(self) -> str:
        return f"StateStore({url_text(self.url)})"

    def close(self) -> None:
        """Close every connection."""
        self.engine.dispose()

    # -- set-up --------------------------------------------------------------------------

    @contextmanager
    def _setup(self) -> Iterator[sa.Connection]:
        """A transaction that creates tables, one host at a time (several processors may
        start at once): SQLite's write lock, PostgreSQL's transaction advisory lock, or a
        MariaDB named lock (its DDL commits implicitly, so it is held on the session)."""
        with self.engine.connect() as conn:
            if self.dialect == "mysql":
                conn.exec_driver_sql(f"SELECT GET_LOCK('{_SETUP_LOCK}', 120)")
                conn.commit()  # the lock belongs to the session, not to this transaction
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SETUP_KEY})")
                    yield conn
            finally:
                if self.dialect == "mysql":
                    conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{_SETUP_LOCK}')")
                    conn.commit()

    def _create_base(self, conn: sa.Connection) -> None:
        metadata.create_all(conn, tables=list(BASE_TABLES), checkfirst=True)
        found = conn.execute(sa.select(store_info.c.value)
                             .where(store_info.c.name == "format")).scalar()
        if found is not None and found != STORE_FORMAT:
            raise StateStoreRefusedError(
                f"the state store at {url_text(self.url)} has format {found}, written by a "
                "newer Lakestream", "upgrade Lakestream on this host")
        tx = StoreTransaction(self, conn)
        tx.upsert(store_info, [{"name": "format", "value": STORE_FORMAT}], ignore=True)
        tx.upsert(lock, [{"id": 1}], ignore=True)

    def attach(self, tables: Sequence[TablePlan], legacy_rate: float | None = None) -> None:
        """Create the state tables of a program's aggregate tables (first use), or check that
        the stored state has their shape; migrate a state file of the format before this
        store (``legacy_rate``: the USD→EUR rate in force, which that format did not keep).

        Raises:
            StateStoreRefusedError: A table's definition changed since its state was built,
                or an old state file cannot be migrated to these tables.
        """
        layouts = {t.name: layout_of(t, self.meta) for t in tables}
        with self._guard("set up the state tables"):
            with self._setup() as conn:
                if self.legacy and legacy.is_legacy(self.engine, conn):
                    metadata.create_all(conn, tables=list(BASE_TABLES), checkfirst=True)
                    tx = StoreTransaction(self, conn)
                    tx.upsert(lock, [{"id": 1}], ignore=True)
                    self._register(conn, layouts)
                    legacy.migrate(tx, layouts, legacy_rate)
                    tx.upsert(store_info, [{"name": "format", "value": STORE_FORMAT}])
                elif self.legacy:  # another processor migrated it meanwhile
                    self._create_base(conn)
                self._register(conn, layouts)
            self.legacy = False
        self.layouts.update(layouts)

    def _register(self, conn: sa.Connection, layouts: dict[str, TableLayout]) -> None:
        tx = StoreTransaction(self, conn)
        for name, layout in layouts.items():
            layout.sql_table.create(conn, checkfirst=True)
            tx.upsert(catalog, [{"name": name, "sql_table": layout.sql_table.name,
                                 "signature": layout.signature,
                                 "layout": canonical(layout.description)}], ignore=True)
            row = conn.execute(sa.select(catalog).where(catalog.c.name == name)).one()
            if row.signature != layout.signature:
                raise StateStoreRefusedError(
                    f"the state of table {name} in the store at {url_text(self.url)} was "
                    f"built by another definition of it (stored {row.layout}, now "
                    f"{canonical(layout.description)})",
                    "give the changed statement a new table name (its state starts from the "
                    f"current offsets), or drop the SQL table {row.sql_table} and its "
                    "lakestream_tables row to rebuild it from the start of the input")

    def claim_program(self, fingerprint: str, who: str) -> None:
        """Record that ``who`` now runs the program ``fingerprint`` on this store (nothing is
        written when the store already runs it: a restarted processor changes nothing).

        A processor that started with another program (a statements file was added
        or removed since) is refused its next commit (:meth:`StoreTransaction.
        check_program`): every batch from now on feeds this program's outputs.
        """
        with self.transaction("record the program") as tx:
            found = tx.program()
            if found is None or found[0] != fingerprint:  # a restart writes nothing
                tx.upsert(store_info, [{"name": _PROGRAM, "value": f"{fingerprint} {who}"}])

    # -- reading and writing -------------------------------------------------------------

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The first input offset of ``topic[partition]`` not yet in the state."""
        if self.legacy:
            raise StateStoreRefusedError(
                f"the state store at {url_text(self.url)} is a state file of an earlier "
                "Lakestream", "run `lakestream process` once: it migrates the file")
        with self._guard("read the input offsets"), self.engine.connect() as conn:
            conn = conn.execution_options(**{_READ_ONLY: True})
            found = conn.execute(sa.select(positions.c.next_offset).where(
                positions.c.topic == topic, positions.c.part == partition)).scalar()
        return None if found is None else int(found)

    def check_program(self, fingerprint: str) -> None:
        """Between batches (a read, no lock): refuse to go on with a program the store no
        longer runs (:meth:`StoreTransaction.check_program`)."""
        with self._guard("read the program"), self.engine.connect() as conn:
            conn = conn.execution_options(**{_READ_ONLY: True})
            StoreTransaction(self, conn).check_program(fingerprint)

    @contextmanager
    def transaction(self, doing: str = "commit a batch") -> Iterator[StoreTransaction]:
        """One batch's transaction, holding the store-wide lock until it commits."""
        with self._guard(doing), self.engine.connect() as conn, conn.begin():
            if self.dialect != "sqlite":
                conn.execute(sa.select(lock.c.id).where(lock.c.id == 1).with_for_update())
            yield StoreTransaction(self, conn)

    def upsert_sql(self, table: sa.Table, ignore: bool) -> tuple[str, list[str], bool]:
        """``(SQL, parameter names in order, positional)`` of an upsert into ``table``."""
        found = self._upserts.get((table.name, ignore))
        if found is not None:
            return found
        keys = [c.name for c in table.primary_key.columns]
        others = [c.name for c in table.columns if c.name not in keys]
        values: dict[str, Any] = {c.name: sa.bindparam(c.name) for c in table.columns}
        statement: sa.Insert
        if self.dialect == "mysql":
            insert = mysql.insert(table).values(values)
            update = ({keys[-1]: table.c[keys[-1]]} if ignore or not others
                      else {c: insert.inserted[c] for c in others})
            statement = insert.on_duplicate_key_update(update)
        else:
            module = postgresql if self.dialect == "postgresql" else sqlite
            plain = module.insert(table).values(values)
            statement = (plain.on_conflict_do_nothing(index_elements=keys)
                         if ignore or not others else plain.on_conflict_do_update(
                             index_elements=keys, set_={c: plain.excluded[c] for c in others}))
        compiled = statement.compile(dialect=self.engine.dialect)
        positional = bool(compiled.positional)
        names = list(compiled.positiontup or []) if positional else list(values)
        found = (str(compiled), names, positional)
        self._upserts[(table.name, ignore)] = found
        return found

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc, self.url, doing) from exc


class StoreTransaction:
    """The reads and writes of one batch, inside :meth:`StateStore.transaction`."""

    def __init__(self, store: StateStore, conn: sa.Connection) -> None:
        self.store = store
        self.conn = conn

    def check_program(self, fingerprint: str) -> None:
        """Refuse to commit for a program the store no longer runs (see ``claim_program``).

        Raises:
            ProgramChangedError: Another processor started with other statements.
        """
        found = self.program()
        if found is not None and found[0] != fingerprint:
            raise ProgramChangedError(
                f"the state store at {url_text(self.store.url)} now runs other statements "
                f"(started by {found[1]}): a statements file was added or removed since this "
                "process started, or the hosts run different Lakestream versions",
                "restart this `lakestream process`: it then runs the registered statements")

    def program(self) -> tuple[str, str] | None:
        """``(fingerprint, who started it)`` of the program the store runs (``None``: none
        recorded yet)."""
        found = self.conn.execute(sa.select(store_info.c.value)
                                  .where(store_info.c.name == _PROGRAM)).scalar()
        if found is None:
            return None
        fingerprint, _, who = str(found).partition(" ")
        return fingerprint, who or "another processor"

    def position(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        """``(next offset, stream time)`` of an input partition (``None``: not yet read)."""
        row = self.conn.execute(sa.select(positions.c.next_offset, positions.c.stream_time)
                                .where(positions.c.topic == topic,
                                       positions.c.part == partition)).first()
        return (None, None) if row is None else (row[0], row[1])

    def set_position(self, topic: str, partition: int, next_offset: int,
                     stream_time: int | None) -> None:
        """Record that every offset below ``next_offset`` is in the state."""
        self.upsert(positions, [{"topic": topic, "part": partition, "next_offset": next_offset,
                                 "stream_time": stream_time}])

    def read(self, layout: TableLayout, hashes: Sequence[str]) -> list[dict[str, Any]]:
        """Every partition's state row of the keys ``hashes``."""
        table = layout.sql_table
        rows: list[dict[str, Any]] = []
        query = sa.select(table).where(table.c.key_hash.in_(_HASHES))
        for chunk in _chunks(hashes):
            result = self.conn.execute(query, {"hashes": chunk})
            names = list(result.keys())
            rows += [dict(zip(names, r, strict=True)) for r in result]
        return rows

    def read_all(self, layout: TableLayout) -> list[dict[str, Any]]:
        """Every state row of a table (all keys, all partitions)."""
        result = self.conn.execute(sa.select(layout.sql_table))
        names = list(result.keys())
        return [dict(zip(names, r, strict=True)) for r in result]

    def write(self, layout: TableLayout, rows: Sequence[dict[str, Any]]) -> None:
        """Replace (or create) state rows, whole."""
        self.upsert(layout.sql_table, rows)

    def write_rows(self, layout: TableLayout, columns: Sequence[str],
                   rows: Sequence[Sequence[Any]]) -> None:
        """Replace (or create) state rows, whole, given as values of ``columns`` in order."""
        self.upsert_values(layout.sql_table, columns, rows)

    def add_distinct(self, table: str, rows: Sequence[tuple[str, str, str, int]]) -> None:
        """Add ``(key_hash, aggregate, value_hash, partition)`` distinct values (kept once)."""
        self.upsert_values(distinct_values, _DISTINCT_COLUMNS,
                           [(table, k, a, v, p) for k, a, v, p in rows], ignore=True)

    def count_distinct(self, table: str, hashes: Sequence[str]) -> dict[tuple[str, str], int]:
        """``(key_hash, aggregate) → how many distinct values``, across partitions."""
        d = distinct_values.c
        counts: dict[tuple[str, str], int] = {}
        query = (sa.select(d.key_hash, d.aggregate, sa.func.count(sa.distinct(d.value_hash)))
                 .where(d.table_name == table, d.key_hash.in_(_HASHES))
                 .group_by(d.key_hash, d.aggregate))
        for chunk in _chunks(hashes):
            result = self.conn.execute(query, {"hashes": chunk})
            counts.update({(k, a): int(n) for k, a, n in result})
        return counts

    def upsert(self, table: sa.Table, rows: Sequence[dict[str, Any]],
               ignore: bool = False) -> None:
        """Insert rows, replacing (``ignore``: keeping) a row of the same primary key
        (a column a row lacks is NULL)."""
        if not rows:
            return
        _, names, _ = self.store.upsert_sql(table, ignore)
        self.upsert_values(table, names, [[row.get(n) for n in names] for row in rows], ignore)

    def upsert_values(self, table: sa.Table, columns: Sequence[str],
                      rows: Sequence[Sequence[Any]], ignore: bool = False) -> None:
        """:meth:`upsert` of rows given as the values of ``columns`` (every column of
        ``table``), in order.

        The statement is compiled once per table and run as the driver's ``executemany``
        (a batch writes thousands of rows: SQLAlchemy's per-row parameter handling would
        cost more than the database); columns of a decorated type get their bind
        processing here.
        """
        if not rows:
            return
        sql, names, positional = self.store.upsert_sql(table, ignore)
        index = [columns.index(name) for name in names]
        convert = [(i, kind) for i, name in enumerate(names)
                   if isinstance(kind := table.c[name].type, TypeDecorator)]
        dialect = self.conn.dialect
        prepared: list[Any]
        if positional and not convert and index == list(range(len(columns))):
            prepared = [tuple(row) for row in rows]
        else:
            prepared = []
            for row in rows:
                values = [row[i] for i in index]
                for i, kind in convert:
                    values[i] = kind.process_bind_param(values[i], dialect)
                prepared.append(tuple(values) if positional
                                else dict(zip(names, values, strict=True)))
        self.conn.exec_driver_sql(sql, prepared)


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start:start + _CHUNK])
