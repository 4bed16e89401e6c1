"""The shipped ``sql/ksqldb`` statements, compiled: today's topics, columns, keys and rows.

Each test runs the plan's DuckDB SQL on a batch and compares it with what the
code of ``lakestream process`` computes today for the same batch (see helpers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakestream.derive import sql as today
from lakestream.derive.outputs import table_key
from lakestream.derive.statements import TablePlan, compile_statements
from tests.derive.statements.helpers import (
    STREAMS,
    connect,
    generated_events,
    register_batch,
    register_reference,
    run_stream,
    run_table,
    shipped_plan,
    spec_event,
    todays_outputs,
)

EXPECTED_STREAMS = {"transaction_flattened": today.FLATTENED_COLUMNS,
                    "transaction_stream_anonymized": today.ANONYMIZED_COLUMNS,
                    "transaction_stream_blacklisted": today.BLACKLISTED_COLUMNS}


def test_the_shipped_files_plan_every_output_with_todays_topic_and_columns() -> None:
    plan = shipped_plan()
    assert [o.name for o in plan.outputs] == [*STREAMS, *today.TABLES]
    assert [(s.name, s.kind, s.topic) for s in plan.sources] == [
        ("transaction_stream", "STREAM", "transactions"),
        ("exchange_rates", "TABLE", "reference_exchange_rates"),
        ("blacklist", "TABLE", "reference_blacklist")]
    for name, columns in EXPECTED_STREAMS.items():
        stream = plan.output(name)
        assert (stream.topic, [c.name for c in stream.columns]) == (name, list(columns))
        assert (stream.key_columns, stream.key_format) == (("user_id",), "KAFKA")
    for name, (keys, values) in today.TABLES.items():
        table = plan.output(name)
        assert isinstance(table, TablePlan) and table.window is None
        assert table.topic == name
        assert table.key_columns == keys
        assert table.key_format == ("JSON" if len(keys) > 1 else "KAFKA")
        assert [c.name for c in table.columns] == [*keys, *values]
    assert plan.settings == (("auto.offset.reset", "earliest"),)
    assert plan.needs_anon_key


def test_output_schemas_are_the_arrow_types_of_the_columns() -> None:
    import pyarrow as pa

    plan = shipped_plan()
    schema = plan.output("payment_method_totals").output_schema()
    assert schema == pa.schema([("payment_method_id", pa.string()),
                                ("payment_method_name", pa.string()),
                                ("total_amount", pa.float64()),
                                ("transaction_count", pa.int64()),
                                ("avg_amount", pa.float64())])
    assert plan.output("transaction_flattened").output_schema().field("quantity").type == (
        pa.int32())


def test_the_output_types_match_the_lake_schemas_of_the_derived_feeds() -> None:
    from lakestream.decode.schemas import BUILTIN_SCHEMAS

    names = {"STRING": "string", "DOUBLE": "float64", "BIGINT": "int64", "INTEGER": "int64",
             "BOOLEAN": "bool"}
    plan = shipped_plan()
    for output in plan.outputs:
        lake = BUILTIN_SCHEMAS[output.name]
        for column in output.columns:
            if column.name == "event_time":  # a string in the topic, a timestamp in the lake
                assert str(column.type) == "STRING"
                continue
            assert names[str(column.type)] == lake[column.name], (output.name, column.name)


def _compare_streams(values: list[bytes], tmp_path: Path) -> dict[str, Any]:
    offsets = list(range(100, 100 + len(values)))
    expected = todays_outputs(values, offsets, tmp_path)
    plan = shipped_plan()
    con = connect()
    register_batch(con, plan, "transaction_stream", values, offsets)
    register_reference(con, tmp_path)
    got: dict[str, Any] = {s.name: run_stream(con, s) for s in plan.streams}
    got.update({t.name: run_table(con, t) for t in plan.tables})
    return {"expected": expected, "got": got, "plan": plan}


def test_the_compiled_streams_give_todays_records_on_generated_events(tmp_path: Path) -> None:
    result = _compare_streams(generated_events(), tmp_path)
    expected, got = result["expected"], result["got"]
    assert expected["invalid"] == []
    for stream in STREAMS:
        assert got[stream] == expected[stream], stream
    assert len(got["transaction_flattened"]) == 400
    assert got["transaction_stream_blacklisted"], "the batch should hold blacklisted users"


def test_the_compiled_tables_give_todays_rows_on_generated_events(tmp_path: Path) -> None:
    result = _compare_streams(generated_events(), tmp_path)
    expected, got, plan = result["expected"], result["got"], result["plan"]
    for table in plan.tables:
        keys = table.key_columns
        mine = {table_key(keys, r): r for r in got[table.name]}
        theirs = {table_key(keys, r): r for r in expected[table.name]}
        assert mine == theirs, table.name
        assert len(mine) > 3


def test_the_spec_example_and_a_late_blacklisted_event_match_today(tmp_path: Path) -> None:
    events = [spec_event(),
              spec_event(**{"transaction_id": "t2", "user.user_id": "U00013",
                            "event_time": "2025-01-15T10:00:00.000Z", "currency": "EUR",
                            "amount": 34.75, "product.name": None}),
              spec_event(**{"transaction_id": "t3", "status": "pending", "card_last4": None,
                            "currency": "JPY", "amount": 4475.0, "quantity": 1})]
    values = [json.dumps(e).encode() for e in events]
    result = _compare_streams(values, tmp_path)
    expected, got = result["expected"], result["got"]
    for name in (*STREAMS, *today.TABLES):
        key = result["plan"].output(name).key_columns
        assert sorted(got[name], key=lambda r: table_key(key, r)) == sorted(
            expected[name], key=lambda r: table_key(key, r)), name
    reason = got["transaction_stream_blacklisted"][0]["blacklist_reason"]
    assert reason == "blacklisted user U00013"


def test_the_exact_eur_sum_of_34_75_usd_is_the_decimal_product_rounded_half_up(
        tmp_path: Path) -> None:
    """34.75 × 0.925926 = 32.1759285: binary arithmetic on amount_usd gives …928."""
    values = [json.dumps(spec_event(amount=34.75)).encode()]
    got = _compare_streams(values, tmp_path)["got"]
    assert got["user_transaction_summary_eur"][0]["total_amount_eur"] == 32.175929
    assert round(34.75 * 0.925926 * 1e6) == 32175928  # what a DOUBLE sum would start from


def test_more_blacklist_kinds_are_insert_intos_matching_todays_single_reason_rows(
        tmp_path: Path) -> None:
    """Countries and card endings: one INSERT INTO per kind, on the prefixed entry."""
    extra = "\n".join(
        f"INSERT INTO transaction_stream_blacklisted SELECT f.*, '{text} ' + f.{column} "
        f"AS blacklist_reason FROM transaction_flattened f JOIN blacklist b "
        f"ON '{prefix}' + f.{column} = b.entry EMIT CHANGES;"
        for text, column, prefix in (("blacklisted country", "user_country", "country:"),
                                     ("blacklisted card ending", "card_last4", "card:")))
    plan = compile_statements(extra, "more_blacklists.sql", base=shipped_plan())
    events = [spec_event(**{"transaction_id": "c", "user.country": "KP"}),
              spec_event(**{"transaction_id": "k", "card_last4": "6666"}),
              spec_event(**{"transaction_id": "u", "user.user_id": "U00666"}),
              spec_event(**{"transaction_id": "ok"})]
    values = [json.dumps(e).encode() for e in events]
    offsets = [10, 11, 12, 13]
    expected = todays_outputs(values, offsets, tmp_path)["transaction_stream_blacklisted"]
    con = connect()
    register_batch(con, plan, "transaction_stream", values, offsets)
    register_reference(con, tmp_path)
    got = []
    for stream in plan.streams:
        rows = run_stream(con, stream)
        if stream.name == "transaction_stream_blacklisted":
            got += rows
    assert sorted(got, key=lambda r: r["_source_offset"]) == expected
    assert [r["transaction_id"] for r in expected] == ["c", "k", "u"]


@pytest.mark.parametrize(("ip", "today_value", "statement_value"), [
    ("203.0.113.7", "203.0.113.0/24", "203.0.113.0/24"),
    ("2001:db8::1", None, "2001:db8::1"),
])
def test_the_shipped_ip_truncation_keeps_a_non_ipv4_address_where_today_drops_it(
        tmp_path: Path, ip: str, today_value: str | None, statement_value: str) -> None:
    """A difference to fix in 02_derived_streams.sql before it replaces derive/sql.py."""
    values = [json.dumps(spec_event(**{"device.ip_address": ip})).encode()]
    result = _compare_streams(values, tmp_path)
    assert result["expected"]["transaction_stream_anonymized"][0]["ip_address"] == today_value
    assert result["got"]["transaction_stream_anonymized"][0]["ip_address"] == statement_value


def test_an_event_with_an_unknown_currency_is_dropped_by_the_join_not_rejected(
        tmp_path: Path) -> None:
    """Today's processor sends it to the dead letters; the statements alone drop it."""
    values = [json.dumps(spec_event(currency="XXX")).encode(),
              json.dumps(spec_event(transaction_id="t2")).encode()]
    result = _compare_streams(values, tmp_path)
    assert result["expected"]["invalid"] == [{"offset": 100, "reason": "unknown currency XXX"}]
    assert [r["transaction_id"] for r in result["got"]["transaction_flattened"]] == ["t2"]


def test_describe_names_each_output_its_key_and_the_state_it_keeps() -> None:
    text = shipped_plan().describe()
    assert "STREAM transaction_flattened: topic transaction_flattened, from transaction_stream " \
           "JOIN exchange_rates" in text
    assert "TABLE user_transaction_summary_eur: topic user_transaction_summary_eur" in text
    assert "  key: user_id, transaction_type (JSON)" in text
    assert "SUM(f.amount_usd * r.usd_to_eur) -> DOUBLE: an exact sum of micro-units" in text
    assert "COUNT_DISTINCT(user_id) -> BIGINT: the set of distinct values (exact)" in text
    assert "event time: event_time (STRING, format 'yyyy-MM-dd'T'HH:mm:ss.SSSX')" in text
    assert "${LAKESTREAM_ANON_KEY}" not in text
