"""Aggregate state: what each function keeps per partition and key, and what it publishes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from lakestream.derive.statements import TablePlan, compile_statements
from tests.derive.statements.helpers import connect

SOURCE = """CREATE STREAM s (k VARCHAR, v DOUBLE, n INT, p DECIMAL(10, 2), name VARCHAR,
  t BIGINT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', TIMESTAMP='t');
"""


def _table(select: str) -> TablePlan:
    plan = compile_statements(SOURCE + f"CREATE TABLE agg AS SELECT k, {select} FROM s "
                                       "GROUP BY k;")
    table = plan.output("agg")
    assert isinstance(table, TablePlan)
    return table


def _deltas(table: TablePlan, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's delta over rows of ``s`` (each with its partition, offset and time)."""
    schema = pa.schema([("k", pa.string()), ("v", pa.float64()), ("n", pa.int32()),
                        ("p", pa.decimal128(10, 2)), ("name", pa.string()), ("t", pa.int64()),
                        ("_source_partition", pa.int32()), ("_source_offset", pa.int64()),
                        ("_event_time", pa.int64())])
    data = pa.Table.from_pylist([{**r, "_event_time": r.get("t")} for r in rows], schema)
    con = connect()
    con.register("s", data)
    result = con.sql(table.delta_sql)
    return [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]


def _row(k: str, offset: int, t: int, partition: int = 0, **values: Any) -> dict[str, Any]:
    return {"k": k, "_source_offset": offset, "t": t, "_source_partition": partition, **values}


def test_exact_sums_keep_integer_micro_units_whatever_the_order() -> None:
    table = _table("SUM(v) AS total, AVG(v) AS mean, COUNT(v) AS n")
    rows = [_row("a", i, i, v=v) for i, v in enumerate([0.1, 0.2, None, 0.30000000000000004])]
    delta = _deltas(table, rows)[0]
    total, mean, count = table.aggregates
    assert delta["_agg0_micro"] == 600_000  # 0.1 + 0.2 + 0.3: never 0.6000000000000001
    assert total.finish(delta) == 0.6
    assert (delta["_agg1_micro"], delta["_agg1_count"]) == (600_000, 3)
    assert mean.finish(delta) == 0.2
    assert count.finish(delta) == 3
    assert [c.merge for c in mean.state_columns()] == ["add", "add"]


def test_an_average_of_no_value_is_null_and_a_sum_of_none_is_zero() -> None:
    table = _table("SUM(v) AS total, AVG(v) AS mean, SUM(n) AS ints")
    delta = _deltas(table, [_row("a", 1, 1)])[0]
    assert [spec.finish(delta) for spec in table.aggregates] == [0.0, None, 0]


def test_decimal_and_integer_sums_are_exact_in_their_own_units() -> None:
    table = _table("SUM(p) AS total, SUM(n) AS ints, AVG(n) AS mean")
    rows = [_row("a", 1, 1, p=Decimal("0.10"), n=2**31 - 1), _row("a", 2, 2, p=Decimal("0.20"),
                                                                     n=2**31 - 1)]
    delta = _deltas(table, rows)[0]
    decimal_sum, int_sum, mean = table.aggregates
    assert decimal_sum.finish(delta) == Decimal("0.30")
    assert str(decimal_sum.output_type) == "DECIMAL(10, 2)"
    assert int_sum.finish(delta) == 2 * (2**31 - 1)  # BIGINT: no int overflow
    assert mean.finish(delta) == 2**31 - 1


def test_latest_by_offset_takes_the_latest_event_time_then_offset_nulls_kept() -> None:
    table = _table("LATEST_BY_OFFSET(name) AS latest, EARLIEST_BY_OFFSET(name) AS earliest, "
                   "LATEST_BY_OFFSET(name, true) AS latest_known")
    rows = [_row("a", 1, 200, name="late-time"), _row("a", 2, 100, name="arrived-last"),
            _row("a", 3, 200, name=None), _row("a", 4, 50, name="first")]
    delta = _deltas(table, rows)[0]
    latest, earliest, known = table.aggregates
    # time 200 twice: offset 3 (NULL) beats offset 1; ignoring nulls, offset 1 wins
    assert (delta["_agg0_time"], delta["_agg0_offset"]) == (200, 3)
    assert latest.finish(delta) is None
    assert earliest.finish(delta) == "first"
    assert known.finish(delta) == "late-time"
    assert [c.merge for c in latest.state_columns()] == ["latest", "latest", "latest"]


def test_deltas_are_per_partition_and_key() -> None:
    table = _table("COUNT(*) AS n, MIN(name) AS least, MAX(v) AS most")
    rows = [_row("a", 1, 1, 0, name="b", v=1.0), _row("a", 1, 1, 1, name="a", v=3.0),
            _row("a", 2, 2, 1, name="c", v=2.0), _row("b", 3, 3, 1, name="z")]
    deltas = {(d["_source_partition"], d["k"]): d for d in _deltas(table, rows)}
    assert {key: (d["_agg0_count"], d["_agg1_min"], d["_agg2_max"])
            for key, d in deltas.items()} == {(0, "a"): (1, "b", 1.0), (1, "a"): (2, "a", 3.0),
                                              (1, "b"): (1, "z", None)}


def test_count_distinct_keeps_the_distinct_values_per_partition_and_key() -> None:
    table = _table("COUNT_DISTINCT(name) AS names")
    rows = [_row("a", 1, 1, name="x"), _row("a", 2, 2, name="x"), _row("a", 3, 3, name=None),
            _row("a", 4, 4, 1, name="y")]
    con = connect()
    con.register("s", pa.Table.from_pylist(
        [{**r, "_event_time": r["t"], "v": None, "n": None, "p": None} for r in rows]))
    [(name, sql)] = table.distinct_sql
    values = sorted(con.execute(sql).fetchall())
    assert values == [(0, "a", "x"), (1, "a", "y")]
    assert table.aggregates[0].finish({f"{name}_values": {v for *_, v in values}}) == 2


def test_rows_with_a_null_key_are_left_out() -> None:
    table = _table("COUNT(*) AS n")
    deltas = _deltas(table, [_row("a", 1, 1), {**_row("a", 2, 2), "k": None}])
    assert [(d["k"], d["_agg0_count"]) for d in deltas] == [("a", 1)]


def test_each_aggregate_describes_its_state() -> None:
    table = _table("SUM(v) AS s, COUNT_DISTINCT(name) AS d, LATEST_BY_OFFSET(name, true) AS l")
    assert [spec.describe() for spec in table.aggregates] == [
        "SUM(v) -> DOUBLE: an exact sum of micro-units (10^-6)",
        "COUNT_DISTINCT(name) -> BIGINT: the set of distinct values (exact)",
        "LATEST_BY_OFFSET(name, TRUE) -> STRING: the value of the latest event by (event time, "
        "offset, partition), nulls skipped"]
    assert json.dumps([c.name for c in table.columns]) == '["k", "s", "d", "l"]'


def test_a_double_too_large_for_micro_units_fails_with_a_clear_message() -> None:
    table = _table("SUM(v) AS total")
    assert _deltas(table, [_row("a", 1, 1, v=8.9e12)])[0]["_agg0_micro"] == 8_900 * 10**15
    with pytest.raises(duckdb.Error, match="micro-units in 64 bits: it cannot add 1000000"):
        _deltas(table, [_row("a", 1, 1, v=1e13)])
    assert _deltas(table, [_row("a", 1, 1, v=float("nan")), _row("a", 2, 2, v=1.5)]
                   )[0]["_agg0_micro"] == 1_500_000
