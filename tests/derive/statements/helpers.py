"""Helpers of the statements tests: the shipped program, batch views, and today's outputs.

"Today's outputs" are computed by the code ``lakestream process`` runs now, called
read-only: ``Processor._load_reference`` / ``_derive`` / ``_json`` / ``_pseudonym`` on
a stand-in ``self`` (a namespace holding what those methods read), the aggregate
state of ``derive/state.py`` in a temporary SQLite file and ``table_messages`` of
``derive/outputs.py``. No broker is involved: only ``Processor.__init__`` needs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from lakestream.decode.json_batch import JsonDecoder
from lakestream.decode.schemas import TRANSACTION_REQUIRED, arrow_schema
from lakestream.derive.outputs import table_messages
from lakestream.derive.processor import Processor
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.state import AggregateState
from lakestream.derive.statements import (
    Plan,
    StreamPlan,
    TablePlan,
    parse_statements,
    plan_statements,
    register_pseudonyms,
)
from lakestream.derive.statements.reference_views import blacklist_table, exchange_rates_table
from lakestream.sources.generator import GeneratorConfig, TransactionGenerator

SHIPPED = Path(__file__).resolve().parents[3] / "sql" / "ksqldb"
ANON_KEY = b"statements-test-key"
PARTITION = 3
STREAMS = ("transaction_flattened", "transaction_stream_anonymized",
           "transaction_stream_blacklisted")


def shipped_plan() -> Plan:
    """The plan of ``sql/ksqldb/*.sql``, in file order."""
    files = [parse_statements(p.read_text(), p.name) for p in sorted(SHIPPED.glob("*.sql"))]
    return plan_statements(files)


def generated_events(n: int = 400, seed: int = 7) -> list[bytes]:
    """``n`` realistic events of a fixed seed and clock (some late, some blacklisted users)."""
    gen = TransactionGenerator(seed=seed, config=GeneratorConfig(users=40, products=15,
                                                                 late_fraction=0.1),
                               now=lambda: datetime(2025, 1, 15, 12))
    return [value for _, value in gen.messages(n)]


def spec_event(**changes: Any) -> dict[str, Any]:
    """SPEC §3.1's example event, with ``changes`` (dotted keys reach into objects)."""
    event: dict[str, Any] = {
        "transaction_id": "0b7e4f0a-3c1e-4a53-9a55-3a1f3f0d9e11",
        "event_time": "2025-01-15T12:34:56.789Z", "transaction_type": "purchase",
        "status": "completed", "amount": 59.98, "currency": "USD", "quantity": 2,
        "user": {"user_id": "U00042", "name": "Alice Martin",
                 "email": "alice.martin@example.com", "country": "FR", "city": "Paris"},
        "payment_method": {"payment_method_id": "PM03", "name": "paypal",
                           "category": "wallet", "is_active": True},
        "product": {"product_id": "P0107", "name": "Wireless Mouse",
                    "category": "electronics", "unit_price": 29.99},
        "device": {"ip_address": "203.0.113.7", "user_agent": "Mozilla/5.0"},
        "card_last4": "4242",
    }
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = event
        for part in parents:
            target = target[part]
        target[leaf] = value
    return event


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up as both processors set theirs up."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def register_batch(con: duckdb.DuckDBPyConnection, plan: Plan, stream: str,
                   values: Sequence[bytes], offsets: Sequence[int],
                   partition: int = PARTITION) -> None:
    """Register the view of a source stream for one batch, as the plan describes it."""
    source = plan.sources[[s.name for s in plan.sources].index(stream)]
    decoded = JsonDecoder(source.arrow_schema()).decode(values)
    assert decoded.table is not None and not decoded.rejected, decoded.rejected
    rows = decoded.table.num_rows
    raw = decoded.table.select([c.name for c in source.columns]).append_column(
        "_source_partition", pa.array([partition] * rows, pa.int32())).append_column(
        "_source_offset", pa.array(offsets, pa.int64()).take(decoded.indices))
    con.register(f"raw_{stream}", raw)
    event_time = source.event_time.sql(f"raw_{stream}") or "CAST(NULL AS BIGINT)"
    con.execute(f'CREATE OR REPLACE TEMP VIEW "{stream}" AS SELECT *, '
                f'{event_time} AS _event_time FROM "raw_{stream}"')


def register_reference(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """Register the shipped reference data (or ``folder``'s overrides) as table views."""
    store = ReferenceStore(folder)
    con.register("exchange_rates", exchange_rates_table(store.rates()))
    con.register("blacklist", blacklist_table(store.blacklist()))


def run_stream(con: duckdb.DuckDBPyConnection, stream: StreamPlan,
               key: bytes | None = ANON_KEY) -> list[dict[str, Any]]:
    """Run a derived stream's SQL; its result becomes the stream's view; rows as JSON values."""
    register_pseudonyms(con, stream.pseudonym_inputs_sql, key)
    con.execute(f'CREATE OR REPLACE TEMP TABLE "{stream.name}" AS {stream.sql}')
    result = con.sql(f'SELECT * EXCLUDE (_event_time) FROM "{stream.name}"')
    return [orjson.loads(orjson.dumps(dict(zip(result.columns, row, strict=True))))
            for row in result.fetchall()]


def run_table(con: duckdb.DuckDBPyConnection, table: TablePlan) -> list[dict[str, Any]]:
    """One batch of one partition through a table: its delta is the state, finished and
    projected by the output SQL (what the executor does, minus merging batches)."""
    register_pseudonyms(con, table.pseudonym_inputs_sql, ANON_KEY)
    delta = con.sql(table.delta_sql)
    states = [dict(zip(delta.columns, row, strict=True)) for row in delta.fetchall()]
    keys = [c for c in table.key_columns if c in table.group_columns]
    window = ["_window_start", "_window_end"] if table.window else []
    values: dict[tuple[str, tuple[Any, ...]], set[Any]] = {}
    for name, sql in table.distinct_sql:
        for row in con.sql(sql).fetchall():
            values.setdefault((name, tuple(row[1:-1])), set()).add(row[-1])
    rows = []
    for state in states:
        group = tuple(state[k] for k in [*keys, *window])
        for name, _ in table.distinct_sql:
            state[f"{name}_values"] = values.get((name, group), set())
        rows.append({**{k: state[k] for k in [*keys, *window]},
                     **{spec.name: spec.finish(state) for spec in table.aggregates}})
    if not rows:
        return []
    con.register("aggregated", pa.Table.from_pylist(rows))
    result = con.sql(table.output_sql)
    out = [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]
    return sorted(out, key=lambda r: tuple(str(r[k]) for k in table.key_columns))


def todays_outputs(values: Sequence[bytes], offsets: Sequence[int], folder: Path
                   ) -> dict[str, list[dict[str, Any]]]:
    """What ``lakestream process`` publishes today for one batch: stream records and the
    tables' rows (each a JSON value as published)."""
    con = connect()
    self = SimpleNamespace(db=con, anon_key=ANON_KEY, _pseudonyms={},
                           reference=ReferenceStore(folder), _reference_version=None,
                           _usd_to_eur=0.0)
    self._pseudonym = lambda user_id: Processor._pseudonym(self, user_id)  # type: ignore
    self._json = lambda columns, source: Processor._json(self, columns, source)  # type: ignore
    Processor._load_reference(self)  # type: ignore[arg-type]
    decoded = JsonDecoder(arrow_schema("transactions", "event_time"),
                          TRANSACTION_REQUIRED).decode(values)
    assert decoded.table is not None
    rows = decoded.table.num_rows
    events = decoded.table.append_column(
        "_source_partition", pa.array([PARTITION] * rows, pa.int32())).append_column(
        "_source_offset", pa.array(offsets, pa.int64()).take(decoded.indices))
    outputs, invalid = Processor._derive(self, events)  # type: ignore[arg-type]
    published: dict[str, list[dict[str, Any]]] = {
        s: [orjson.loads(v) for v in outputs[s][1]] for s in STREAMS}
    published["invalid"] = [{"offset": o, "reason": r} for o, r in invalid]
    state = AggregateState(folder / "state.sqlite")
    try:
        state.apply(outputs["deltas"])
        tables = table_messages(state, outputs["deltas"], self._usd_to_eur)
    finally:
        state.close()
    for table, messages in tables.items():
        published[table] = [orjson.loads(v) for _, v in messages]
    return published
