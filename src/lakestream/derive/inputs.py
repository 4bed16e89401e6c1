"""One batch of an input topic as the view its ``CREATE STREAM`` declares.

For each batch of an input partition the executor registers, under the stream's
name, a DuckDB table of the declared columns plus ``_source_partition``,
``_source_offset`` and ``_event_time`` (epoch ms), holding the events that passed:

1. decoding — against the topic's contract (:mod:`.contracts`) when it has one,
   else against the declared columns; ``KEY`` columns come from the record key;
2. the contract's value rules;
3. the declared types: a value the contract admits but the declared type cannot
   hold (a quantity past ``INT``) is rejected, not truncated;
4. the event time: the ``TIMESTAMP`` column (a contract reads it as ISO-8601; a
   declared ``STRING`` column is then handed to the statements written in its
   ``TIMESTAMP_FORMAT``, in UTC), else the Kafka record's timestamp. An event
   without one is rejected.

Every rejected event keeps its reasons, joined by ``"; "``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa

from lakestream.decode.json_batch import JsonDecoder
from lakestream.derive.contracts import DECODED, TopicContract
from lakestream.derive.statements import Column, SourcePlan
from lakestream.derive.statements.types import TIMESTAMP_T, literal, quote

_EVENT_TIME = "_event_time"


@dataclass
class InputBatch:
    """The records of one batch of one input partition, in offset order."""

    topic: str
    partition: int
    values: Sequence[bytes | None]
    keys: Sequence[bytes | None]
    offsets: Sequence[int]
    timestamps: Sequence[int | None]


class SourceReader:
    """Turns batches of one source stream's topic into its view.

    Args:
        source: The ``CREATE STREAM`` over the topic.
        contract: The topic's contract, if it has one.
    """

    def __init__(self, source: SourcePlan, contract: TopicContract | None) -> None:
        self.source = source
        self.contract = contract
        keys = {k.lower() for k in source.key_columns}
        self.value_columns = [c for c in source.columns if c.name.lower() not in keys]
        self.key_columns = [c for c in source.columns if c.name.lower() in keys]
        if contract is not None:
            self.decoder = JsonDecoder(contract.schema, contract.required)
        else:
            declared = pa.schema([pa.field(c.name, c.type.arrow()) for c in self.value_columns])
            self.decoder = JsonDecoder(declared)

    def register_empty(self, con: duckdb.DuckDBPyConnection, partition: int) -> None:
        """Register the view with no rows (a batch of another topic)."""
        self.read(con, InputBatch(self.source.topic, partition, [], [], [], []))

    def read(self, con: duckdb.DuckDBPyConnection, batch: InputBatch) -> dict[int, str]:
        """Register the batch's view; the rejected events as ``{index: reason}``."""
        rejected: dict[int, list[str]] = {}
        decoded = self.decoder.decode(batch.values) if batch.values else None
        for index, reason in decoded.rejected if decoded else ():
            rejected.setdefault(index, []).append(reason)
        table = self._decoded_table(decoded.table if decoded else None,
                                    decoded.indices if decoded else pa.array([], pa.int64()),
                                    batch)
        con.register(DECODED, table)
        if self.contract is not None and table.num_rows:
            for row, reason in con.execute(self.contract.rules_sql).fetchall():
                rejected.setdefault(int(row), []).append(str(reason))
        checks = self._checks()
        if checks and table.num_rows:
            for row, reason in con.execute(checks).fetchall():
                rejected.setdefault(int(row), []).append(str(reason))
        bad = pa.table({"_row": pa.array(sorted(rejected), pa.int64())})
        con.register("_rejected_rows", bad)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(self.source.name)} AS "
                    f"SELECT {self._projection(batch.partition)} FROM {DECODED} "
                    "WHERE _row NOT IN (SELECT _row FROM _rejected_rows) ORDER BY _row")
        con.unregister(DECODED)
        con.unregister("_rejected_rows")
        return {i: "; ".join(reasons) for i, reasons in rejected.items()}

    # -- the decoded table and the SQL over it ---------------------------------------------

    def _decoded_table(self, table: pa.Table | None, indices: pa.Array,
                       batch: InputBatch) -> pa.Table:
        """The decoded events with ``_row``, ``_source_offset``, the record timestamp and key
        columns; the declared columns a record lacks are NULL."""
        if table is None:
            schema = self.contract.schema if self.contract else pa.schema(
                [pa.field(c.name, c.type.arrow()) for c in self.value_columns])
            table = schema.empty_table()
            indices = pa.array([], pa.int64())
        rows = indices.to_pylist() if isinstance(indices, pa.Array) else list(indices)
        present = set(table.column_names)
        for column in self.value_columns:
            if column.name not in present:
                table = table.append_column(column.name, pa.nulls(table.num_rows,
                                                                  column.type.arrow()))
        table = table.select([c.name for c in self.value_columns])
        extra = {
            "_row": pa.array(rows, pa.int64()),
            "_source_offset": pa.array([batch.offsets[i] for i in rows], pa.int64()),
            "_record_time": pa.array([batch.timestamps[i] for i in rows], pa.int64()),
        }
        for column in self.key_columns:
            extra[f"_key_{column.name}"] = pa.array(
                [self._key_value(batch.keys[i], column.name) for i in rows], pa.string())
        for name, values in extra.items():
            table = table.append_column(name, values)
        return table

    def _key_value(self, key: bytes | None, column: str) -> str | None:
        """The text of a ``KEY`` column in the record key (the key itself, or a JSON field)."""
        if key is None:
            return None
        if self.source.key_format == "JSON":
            try:
                found = orjson.loads(key)
            except orjson.JSONDecodeError:
                return None
            value = found.get(column) if isinstance(found, dict) else None
            return None if value is None else str(value)
        return key.decode("utf-8", "replace")

    def _decoded_type(self, name: str) -> pa.DataType | None:
        if self.contract is None or name not in self.contract.schema.names:
            return None
        return self.contract.schema.field(name).type

    def _checks(self) -> str | None:
        """SELECT ``(_row, reason)`` of events whose values do not fit the declared types,
        or without an event time."""
        reasons: list[tuple[str, str]] = []
        time_column = self.source.event_time.column
        for column in self.value_columns:
            decoded = self._decoded_type(column.name)
            if decoded is None or decoded == column.type.arrow() or column.name == time_column:
                continue
            ref = quote(column.name)
            reasons.append((f"{ref} IS NOT NULL AND TRY_CAST({ref} AS {column.type.duckdb()}) "
                            "IS NULL",
                            f"{literal(column.name + ' ')} || CAST({ref} AS VARCHAR) || "
                            f"{literal(f' does not fit the declared {column.type}')}"))
        for column in self.key_columns:
            ref = quote(f"_key_{column.name}")
            reasons.append((f"{ref} IS NOT NULL AND TRY_CAST({ref} AS {column.type.duckdb()}) "
                            "IS NULL",
                            quoted_value(f"key column {column.name}", ref,
                                         f"does not fit the declared {column.type}")))
        missing = self._missing_time_reason()
        if missing is not None:
            reasons.append((f"({self._event_time_sql()}) IS NULL", missing))
        if not reasons:
            return None
        unions = " UNION ALL ".join(f"SELECT _row, {why} AS reason FROM {DECODED} WHERE {test}"
                                    for test, why in reasons)
        return f"SELECT _row, reason FROM ({unions}) ORDER BY _row"

    def _missing_time_reason(self) -> str | None:
        event_time = self.source.event_time
        if event_time.column is None:
            return "'the record has no timestamp (the stream declares no TIMESTAMP column)'"
        if self._decoded_type(event_time.column) is not None:
            return None  # the contract's decoder rejected an unreadable time already
        ref = quote(event_time.column)
        fmt = f" in TIMESTAMP_FORMAT '{event_time.format.java}'" if event_time.format else ""
        missing = literal(f"no event time: {event_time.column} is missing")
        unreadable = quoted_value(f"no event time: {event_time.column}",
                                  f"CAST({ref} AS VARCHAR)", f"is not a time{fmt}")
        return f"CASE WHEN {ref} IS NULL THEN {missing} ELSE {unreadable} END"

    def _event_time_sql(self) -> str:
        """SQL of the event time (epoch ms) over the decoded table."""
        event_time = self.source.event_time
        if event_time.column is None:
            return "_record_time"
        decoded = self._decoded_type(event_time.column)
        if decoded is not None and pa.types.is_timestamp(decoded):
            return f"epoch_ms({quote(event_time.column)})"
        sql = event_time.sql(DECODED)
        assert sql is not None
        return sql

    def _projection(self, partition: int) -> str:
        """The declared columns (in their order), the batch columns and the event time."""
        keys = {c.name for c in self.key_columns}
        items = [self._key_item(c) if c.name in keys else self._value_item(c)
                 for c in self.source.columns]
        items += [f"CAST({partition} AS INTEGER) AS _source_partition", "_source_offset",
                  f"CAST({self._event_time_sql()} AS BIGINT) AS {_EVENT_TIME}"]
        return ", ".join(items)

    def _value_item(self, column: Column) -> str:
        ref = quote(column.name)
        decoded = self._decoded_type(column.name)
        event_time = self.source.event_time
        if decoded is None or decoded == column.type.arrow():
            return ref
        if column.name == event_time.column and event_time.format is not None:
            return f"{event_time.format.format_sql(ref)} AS {ref}"
        if column.type.base == TIMESTAMP_T:
            return f"CAST({ref} AS TIMESTAMP) AS {ref}"
        return f"TRY_CAST({ref} AS {column.type.duckdb()}) AS {ref}"

    @staticmethod
    def _key_item(column: Column) -> str:
        return (f"TRY_CAST({quote(f'_key_{column.name}')} AS {column.type.duckdb()}) "
                f"AS {quote(column.name)}")


def quoted_value(before: str, value_sql: str, after: str) -> str:
    """SQL of the text ``before 'value' after``, the texts as literals whatever they hold."""
    head, tail = literal(before + " '"), literal("' " + after)
    return f"{head} || {value_sql} || {tail}"
