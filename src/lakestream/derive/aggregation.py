"""One aggregate table's batch: deltas merged into the exact state, new values published.

For a batch of input partition ``p`` (its pre-aggregation rows already trimmed to
the offsets the store does not hold and cleared of late windows):

1. the table's delta SQL gives the batch's state per key (and window), its distinct
   SQL the distinct values of each ``COUNT_DISTINCT``;
2. the store's rows of those keys are read, every partition's at once; ``p``'s row of
   each key is merged with the delta (:class:`~lakestream.derive.state.StateMerger`)
   and written back whole, the distinct values are added;
3. each key's rows of all partitions are merged into its value, the aggregates
   finished (:meth:`~lakestream.derive.statements.AggregateSpec.finish`), and the
   table's output SQL projects the published row. A key the output SQL drops
   (``HAVING``) is published as a tombstone.

Keys and values are JSON (or the key's text for ``KEY_FORMAT='KAFKA'``) written by
DuckDB, as the derived streams' records are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from lakestream.derive.state import (
    StateMerger,
    StoreTransaction,
    TableLayout,
    key_hash_sql,
    value_hash_sql,
)
from lakestream.derive.statements import TablePlan
from lakestream.derive.statements.plan import AGGREGATED, WINDOW_END, WINDOW_START
from lakestream.derive.statements.table_sql import delta_sql, distinct_sql
from lakestream.derive.statements.types import quote

Message = tuple[bytes | None, bytes | None]


def key_sql(columns: Iterable[tuple[str, str]], key_format: str) -> str:
    """SQL of a record key from ``(name, SQL)`` of its columns (NULL when it has none)."""
    pairs = list(columns)
    if not pairs:
        return "CAST(NULL AS BLOB)"
    if key_format == "KAFKA" and len(pairs) == 1:
        return f"encode(CAST({pairs[0][1]} AS VARCHAR))"
    inner = ", ".join(f"{quote(name)} := {sql}" for name, sql in pairs)
    return f"encode(to_json(struct_pack({inner}))::VARCHAR)"


class TableRunner:
    """Runs the batches of one aggregate table against the store."""

    def __init__(self, plan: TablePlan, layout: TableLayout) -> None:
        self.plan = plan
        self.layout = layout
        self.merger = StateMerger(layout.parts)
        self.windowed = plan.window is not None
        self.keyed = list(plan.group_columns) + (
            [WINDOW_START, WINDOW_END] if self.windowed else [])
        # the columns of a written state row, in the order run() builds them
        self.written_columns = ("key_hash", "part", *layout.key_names, *self.merger.names)
        self.finishers = [(spec.name, spec.state == "distinct", spec.finisher())
                          for spec in plan.aggregates]
        types = {c.name: c.type for c in plan.columns}
        fields = [pa.field(k, types[k].arrow()) for k in plan.group_columns]
        if self.windowed:
            fields += [pa.field(WINDOW_START, pa.int64()), pa.field(WINDOW_END, pa.int64())]
        fields += [pa.field(s.name, s.output_type.arrow()) for s in plan.aggregates]
        self.aggregated_schema = pa.schema(fields)

    def run(self, con: duckdb.DuckDBPyConnection, tx: StoreTransaction, partition: int,
            rows: str) -> list[Message]:
        """Apply a batch whose pre-aggregation rows are the relation ``rows``; its messages."""
        plan = self.plan
        keyed = self.keyed
        batch_delta = delta_sql(f"SELECT * FROM {rows}", plan.group_columns, plan.aggregates,
                                self.windowed)
        state_names = self.merger.names
        # each row: its key's hash, the key's values, then the state (merger's order)
        fetched = con.sql(
            f"SELECT {key_hash_sql([quote(k) for k in keyed])} AS _key_hash, "
            f"{', '.join(quote(c) for c in (*keyed, *state_names))} FROM ({batch_delta}) "
            "ORDER BY _key_hash").fetchall()
        if not fetched:
            return []
        hashes = [row[0] for row in fetched]
        stored: dict[str, dict[int, dict[str, Any]]] = {}
        for held in tx.read(self.layout, hashes):
            stored.setdefault(held["key_hash"], {})[held["part"]] = held
        merge = self.merger.merge
        split = 1 + len(keyed)
        written: list[tuple[Any, ...]] = []
        keys: list[tuple[Any, ...]] = []
        for row in fetched:
            h = row[0]
            key = row[1:split]
            keys.append(key)
            delta = dict(zip(state_names, row[split:], strict=True))
            states = stored.get(h)
            if states is None:
                stored[h] = {partition: delta}
                written.append((h, partition, *row[1:]))
                continue
            merged = merge(states.get(partition), partition, delta, partition)
            states[partition] = merged
            written.append((h, partition, *key, *(merged[n] for n in state_names)))
        tx.write_rows(self.layout, self.written_columns, written)
        counts = self._distinct(con, tx, partition, rows, hashes)
        aggregated = [self._finished(key, stored[h], counts, h)
                      for key, h in zip(keys, hashes, strict=True)]
        return self._messages(con, aggregated)

    def current(self, con: duckdb.DuckDBPyConnection, tx: StoreTransaction) -> list[Message]:
        """The value of every key the store holds, as published (what the table's compacted
        topic holds once it is caught up; tombstones for keys HAVING drops)."""
        states: dict[str, dict[int, dict[str, Any]]] = {}
        for row in tx.read_all(self.layout):
            states.setdefault(row["key_hash"], {})[row["part"]] = row
        if not states:
            return []
        hashes = sorted(states)
        counts = tx.count_distinct(self.plan.name, hashes) if self.layout.distinct else {}
        aggregated = []
        for h in hashes:
            any_row = next(iter(states[h].values()))
            key = [any_row[name] for name in self.layout.key_names]
            aggregated.append(self._finished(key, states[h], counts, h))
        return self._messages(con, aggregated)

    def _distinct(self, con: duckdb.DuckDBPyConnection, tx: StoreTransaction, partition: int,
                  rows: str, hashes: list[str]) -> dict[tuple[str, str], int]:
        if not self.layout.distinct:
            return {}
        plan = self.plan
        keyed = [quote(k) for k in self.keyed]
        added: list[tuple[str, str, str, int]] = []
        for name, sql in distinct_sql(f"SELECT * FROM {rows}", plan.group_columns,
                                      plan.aggregates, self.windowed):
            # in primary-key order: the store's index takes them in one pass
            hashed = con.execute(f"SELECT DISTINCT {key_hash_sql(keyed)} AS k, "
                                 f"{value_hash_sql('value')} AS v FROM ({sql}) "
                                 "ORDER BY k, v").fetchall()
            added += [(key, name, value, partition) for key, value in hashed]
        tx.add_distinct(plan.name, added)
        return tx.count_distinct(plan.name, hashes)

    def _finished(self, key: Sequence[Any], states: dict[int, dict[str, Any]],
                  counts: dict[tuple[str, str], int], h: str) -> tuple[Any, ...]:
        """The aggregated row of a key: its columns, window bounds and finished aggregates
        (in :attr:`aggregated_schema` order)."""
        if len(states) == 1:
            (merged,) = states.values()  # finishing only reads the state's columns
        else:
            merged = self.merger.combine(sorted(states.items()))
        return (*key, *(counts.get((h, name), 0) if distinct else finish(merged)
                        for name, distinct, finish in self.finishers))

    def _messages(self, con: duckdb.DuckDBPyConnection,
                  aggregated: list[tuple[Any, ...]]) -> list[Message]:
        """The published rows (and tombstones for keys HAVING drops), ordered by key."""
        plan = self.plan
        schema = self.aggregated_schema
        columns = list(zip(*aggregated, strict=True))
        con.register(AGGREGATED, pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
            schema=schema))
        try:
            sources = [quote(k) for k in plan.group_columns] + (
                [WINDOW_START, WINDOW_END] if self.windowed else [])
            every_key = key_sql(zip(plan.key_columns, sources, strict=True), plan.key_format)
            kept_key = key_sql(((k, f"x.{quote(k)}") for k in plan.key_columns),
                               plan.key_format)
            published = con.execute(
                f"SELECT {kept_key}, encode(to_json(x)::VARCHAR) FROM ({plan.output_sql}) AS x"
            ).fetchall()
            keys = [k for (k,) in con.execute(f"SELECT {every_key} FROM {AGGREGATED}")
                    .fetchall()]
        finally:
            con.unregister(AGGREGATED)
        messages: dict[bytes | None, bytes | None] = dict.fromkeys(keys)
        messages.update({k: v for k, v in published})
        return sorted(messages.items(), key=lambda item: item[0] or b"")
