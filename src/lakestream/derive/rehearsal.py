"""A program's rehearsal: run once on sample records before it is registered.

The compiler checks the statements against the supported subset; the SQL it
generates is DuckDB's to judge. ``statements add`` therefore runs the whole
program once, in a throwaway state store, on a small batch of every input topic
of the user's own sources: a record of the declared columns (sample values of
their types, the event time written in its ``TIMESTAMP_FORMAT``), an empty
object and a record that is not JSON. Every statement's SQL, the contract's
checks, the tables' merge and the published rows then run, so SQL that DuckDB
refuses is found on add, with the file named, not at the first event of a
running ``process``. Nothing of the rehearsal is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lakestream.derive.executor import Executor
from lakestream.derive.inputs import InputBatch
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.shipped import shipped_plan
from lakestream.derive.state import StateStore
from lakestream.derive.statements import Plan, SourcePlan
from lakestream.errors import ConfigError

_MOMENT = dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC)
_KEY = b"rehearsal"


class _RolledBack(Exception):
    """Leaves the rehearsal's store transaction without committing."""


def rehearse(plan: Plan, reference: ReferenceStore, what: str) -> None:
    """Run ``plan`` once on sample batches of its own sources' topics (not the shipped
    program's input topics: its own tests exercise them, and their contract refuses
    made-up records anyway).

    Args:
        plan: The whole program, the file being added included.
        reference: The reference data the tables join.
        what: The file, for the message.

    Raises:
        ConfigError: DuckDB refused the SQL of a statement (a Lakestream bug: the
            message says what to report).
    """
    with tempfile.TemporaryDirectory(prefix="lakestream-rehearsal-") as folder:
        store = StateStore(f"sqlite:///{Path(folder) / 'state.sqlite'}")
        executor: Executor | None = None
        try:
            executor = Executor(plan, store, reference, _KEY)
            done = {s.topic for s in shipped_plan().sources}
            for reader in executor.readers.values():
                source = reader.source
                if source.topic in done:  # a batch reads every source of its topic
                    continue
                done.add(source.topic)
                values = [json.dumps(sample(source, executor.con)).encode(), b"{}",
                          b"not json"]
                batch = InputBatch(source.topic, 0, values, [b"k"] * len(values),
                                   list(range(len(values))), [0] * len(values))
                prepared = executor.prepare(batch)
                try:
                    with store.transaction() as tx:
                        executor.apply(prepared, tx)
                        raise _RolledBack
                except _RolledBack:
                    pass
        except duckdb.Error as exc:
            raise ConfigError(
                f"{what}: the program compiles but DuckDB refused its SQL when run on a sample "
                f"record ({str(exc).splitlines()[0]}); nothing was registered",
                "a Lakestream bug: please report the file and this message") from None
        finally:
            if executor is not None:
                executor.close()
            store.close()


def sample(source: SourcePlan, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """A JSON record of the source's value columns, each with a value of its type."""
    keys = set(source.key_columns)
    fmt = source.event_time.format
    record: dict[str, Any] = {}
    for column in source.columns:
        if column.name in keys:
            continue
        if column.name == source.event_time.column and fmt is not None:
            ((text,),) = con.execute("SELECT " + fmt.format_sql(
                f"TIMESTAMP '{_MOMENT:%Y-%m-%d %H:%M:%S}'")).fetchall()
            record[column.name] = text
        else:
            record[column.name] = _value(column.type.arrow())
    return record


def _value(kind: pa.DataType) -> Any:
    """A JSON value of the Arrow type (``None`` where no simple one fits)."""
    if pa.types.is_boolean(kind):
        return True
    if pa.types.is_integer(kind):
        return 7
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return 7.5
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "x"
    if pa.types.is_timestamp(kind):
        return _MOMENT.strftime("%Y-%m-%dT%H:%M:%SZ")
    if pa.types.is_list(kind):
        return [_value(kind.value_type)]
    if pa.types.is_struct(kind):
        return {kind.field(i).name: _value(kind.field(i).type) for i in range(kind.num_fields)}
    return None
