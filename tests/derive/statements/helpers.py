"""Helpers of the statements tests: the shipped program, batch views, and today's outputs.

"Today's outputs" are what ``lakestream process`` published before it ran the compiled
statements (its hand-written DuckDB SQL, ``derive/sql.py``, and SQLite state,
``derive/state.py``, at commit a32af20), frozen as test data in
``tests/derive/data/todays_outputs.json.gz``: per case, the batch's events (offsets from
``first_offset`` on, partition 3), the records of each derived stream, each table's rows
after that one batch, and the dead letters (``invalid``: offset and reason).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from lakestream.decode.json_batch import JsonDecoder
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.shipped import shipped_plan as compiled_shipped_plan
from lakestream.derive.statements import (
    Plan,
    StreamPlan,
    TablePlan,
    register_pseudonyms,
)
from lakestream.derive.statements.reference_views import blacklist_table, exchange_rates_table
from lakestream.sources.generator import GeneratorConfig, TransactionGenerator

SHIPPED = Path(__file__).resolve().parents[3] / "src" / "lakestream" / "derive" / "ksqldb"
FROZEN = Path(__file__).resolve().parents[1] / "data" / "todays_outputs.json.gz"
ANON_KEY = b"statements-test-key"
PARTITION = 3
STREAMS = ("transaction_flattened", "transaction_stream_anonymized",
           "transaction_stream_blacklisted")


def shipped_plan() -> Plan:
    """The plan of the shipped ``*.sql`` files, in file order (what ``process`` runs)."""
    return compiled_shipped_plan()


@cache
def _frozen() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(gzip.decompress(FROZEN.read_bytes()))
    return loaded


def frozen_cases() -> list[str]:
    """The names of the frozen cases."""
    return sorted(_frozen())


def frozen_case(name: str) -> tuple[list[bytes], list[int], dict[str, list[dict[str, Any]]]]:
    """A frozen case: its events, their offsets, and what ``process`` published for them."""
    case = _frozen()[name]
    values = [v.encode() for v in case["values"]]
    first = int(case["first_offset"])
    return values, list(range(first, first + len(values))), case["outputs"]


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
