"""The shipped ``sql/ksqldb`` statements, compiled and run: today's topics, columns, keys and rows.

"Today" is what ``lakestream process`` published before it ran the statements: its
outputs on fixed batches are frozen test data (see helpers). Each case runs through the
executor with a fresh state store and must give the same records, the same table rows
and the same dead letters with the same reasons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from lakestream.derive.statements import TablePlan, compile_statements
from tests.derive.helpers import Runner
from tests.derive.statements.helpers import (
    PARTITION,
    STREAMS,
    connect,
    frozen_case,
    frozen_cases,
    register_batch,
    register_reference,
    run_stream,
    shipped_plan,
    spec_event,
)

# The tables ``process`` published before the statements, and their key and value columns.
TODAYS_TABLES = {
    "user_transaction_summary": (
        ("user_id", "transaction_type"), ("total_amount", "transaction_count", "avg_amount")),
    "user_transaction_summary_eur": (
        ("user_id", "transaction_type"),
        ("total_amount_eur", "transaction_count", "avg_amount_eur", "exchange_rate")),
    "payment_method_totals": (
        ("payment_method_id",),
        ("payment_method_name", "total_amount", "transaction_count", "avg_amount")),
    "product_purchase_counts": (
        ("product_id",),
        ("product_name", "product_category", "purchase_count", "total_revenue", "avg_price",
         "unique_buyers")),
}
# The columns of each derived stream's records as ``process`` published them, in order
# (then _source_partition and _source_offset).
FLATTENED = (
    "transaction_id", "event_time", "transaction_type", "status", "amount", "currency",
    "amount_usd", "quantity", "user_id", "user_name", "user_email", "user_country", "user_city",
    "payment_method_id", "payment_method_name", "payment_method_category",
    "payment_method_is_active", "product_id", "product_name", "product_category",
    "product_unit_price", "ip_address", "card_last4",
)  # fmt: skip
TODAYS_STREAMS = {
    "transaction_flattened": FLATTENED,
    "transaction_stream_anonymized": tuple(
        c for c in FLATTENED if c not in ("user_name", "user_email", "card_last4")),
    "transaction_stream_blacklisted": (*FLATTENED, "blacklist_reason"),
}


def by_key(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {json.dumps([r[k] for k in keys]): r for r in rows}


def run_case(name: str, tmp_path: Path) -> dict[str, Any]:
    """A frozen case through the executor: its records, table rows and dead letters."""
    values, offsets, _ = frozen_case(name)
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    try:
        out = runner.batch(PARTITION, values, offsets)
    finally:
        runner.close()
    assert out is not None
    got: dict[str, Any] = {t: [orjson.loads(v) for v in vals]
                           for t, (_, vals) in out.streams.items()}
    got.update({t: [orjson.loads(v) for _, v in messages if v is not None]
                for t, messages in out.tables.items()})
    got["invalid"] = [{"offset": offsets[i], "reason": why} for i, why in out.rejected]
    return got


def test_the_shipped_files_plan_every_output_with_todays_topic_and_columns() -> None:
    plan = shipped_plan()
    assert [o.name for o in plan.outputs] == [*STREAMS, *TODAYS_TABLES]
    assert [(s.name, s.kind, s.topic) for s in plan.sources] == [
        ("transaction_stream", "STREAM", "transactions"),
        ("exchange_rates", "TABLE", "reference_exchange_rates"),
        ("blacklist", "TABLE", "reference_blacklist")]
    for name in STREAMS:
        stream = plan.output(name)
        assert (stream.topic, tuple(c.name for c in stream.columns)) == (
            name, TODAYS_STREAMS[name])
        assert (stream.key_columns, stream.key_format) == (("user_id",), "KAFKA")
    for name, (keys, values) in TODAYS_TABLES.items():
        table = plan.output(name)
        assert isinstance(table, TablePlan) and table.window is None
        assert table.topic == name
        assert table.key_columns == keys
        assert table.key_format == ("JSON" if len(keys) > 1 else "KAFKA")
        assert [c.name for c in table.columns] == [*keys, *values]
    assert plan.settings == (("auto.offset.reset", "earliest"),)
    assert plan.needs_anon_key


def test_output_schemas_are_the_arrow_types_of_the_columns() -> None:
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


@pytest.mark.parametrize("case", frozen_cases())
def test_each_frozen_batch_gives_todays_records_rows_and_dead_letters(
        case: str, tmp_path: Path) -> None:
    got = run_case(case, tmp_path)
    _, _, expected = frozen_case(case)
    for stream in STREAMS:
        assert got[stream] == expected[stream], stream
        assert all(list(r) == [*TODAYS_STREAMS[stream], "_source_partition", "_source_offset"]
                   for r in got[stream]), stream
    for table, (keys, _) in TODAYS_TABLES.items():
        assert by_key(got[table], keys) == by_key(expected[table], keys), table
    assert got["invalid"] == expected["invalid"]


def test_the_frozen_cases_cover_what_the_comparison_is_about() -> None:
    """The cases hold what the four settled differences are about (docs/ksqldb.md)."""
    _, _, generated = frozen_case("generated_400_seed_7")
    assert len(generated["transaction_flattened"]) == 400
    assert generated["transaction_stream_blacklisted"], "blacklisted users in the batch"
    _, _, kinds = frozen_case("blacklist_kinds")
    many = next(r for r in kinds["transaction_stream_blacklisted"]
                if r["transaction_id"] == "many")
    assert many["blacklist_reason"] == ("blacklisted user U00013; blacklisted country IR; "
                                        "blacklisted IP range 10.66.0.1; blacklisted card "
                                        "ending 0000")
    _, _, ips = frozen_case("ip_addresses")
    assert [r["ip_address"] for r in ips["transaction_stream_anonymized"]] == [
        "203.0.113.0/24", None, None, None]
    _, _, invalid = frozen_case("invalid_events")
    assert {"offset": 100, "reason": "unknown currency XXX"} in invalid["invalid"]
    _, _, times = frozen_case("event_time_forms")
    assert [r["event_time"] for r in times["transaction_flattened"]] == [
        "2025-01-15T12:34:56.789Z", "2025-01-15T12:34:56.000Z", "2025-01-15T12:34:56.789Z",
        "2025-01-15T12:34:56.789Z", "2025-01-15T00:00:00.000Z"]


def test_the_statements_alone_give_todays_records_on_generated_events(tmp_path: Path) -> None:
    """The plan's SQL over the declared view (no executor): the same records."""
    values, offsets, expected = frozen_case("generated_400_seed_7")
    plan = shipped_plan()
    con = connect()
    register_batch(con, plan, "transaction_stream", values, offsets)
    register_reference(con, tmp_path)
    for stream in plan.streams:
        assert run_stream(con, stream) == expected[stream.name], stream.name


def test_the_exact_eur_sum_of_34_75_usd_is_the_decimal_product_rounded_half_up(
        tmp_path: Path) -> None:
    """34.75 × 0.925926 = 32.1759285: binary arithmetic on amount_usd gives …928."""
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    try:
        runner.batch(0, [json.dumps(spec_event(amount=34.75)).encode()], [0])
    finally:
        runner.close()
    (row,) = runner.published.tables["user_transaction_summary_eur"].values()
    assert row["total_amount_eur"] == 32.175929
    assert round(34.75 * 0.925926 * 1e6) == 32175928  # what a DOUBLE sum would start from


def test_a_users_insert_into_per_kind_gives_one_record_per_matching_kind(
        tmp_path: Path) -> None:
    """The form for a ksqlDB server that refuses one table joined several times: a stream
    per kind of entry, each its own record with its one reason."""
    extra = "CREATE STREAM flagged WITH (KAFKA_TOPIC = 'flagged') AS SELECT f.*, " \
            "'blacklisted user ' + f.user_id AS blacklist_reason FROM transaction_flattened " \
            "f JOIN blacklist b ON f.user_id = b.entry EMIT CHANGES;\n" + "\n".join(
                f"INSERT INTO flagged SELECT f.*, '{text} ' + f.{column} AS blacklist_reason "
                f"FROM transaction_flattened f JOIN blacklist b "
                f"ON '{prefix}' + f.{column} = b.entry EMIT CHANGES;"
                for text, column, prefix in (("blacklisted country", "user_country", "country:"),
                                             ("blacklisted card ending", "card_last4", "card:")))
    plan = compile_statements(extra, "flagged.sql", base=shipped_plan())
    events = [spec_event(**{"transaction_id": "c", "user.country": "KP"}),
              spec_event(**{"transaction_id": "two", "user.user_id": "U00666",
                            "card_last4": "6666"}),
              spec_event(**{"transaction_id": "ok"})]
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path, plan)
    try:
        runner.batch(0, [json.dumps(e).encode() for e in events], [10, 11, 12])
    finally:
        runner.close()
    flagged = [(r["transaction_id"], r["blacklist_reason"], r["_source_offset"])
               for r in runner.published.streams["flagged"]]
    assert flagged == [("c", "blacklisted country KP", 10),
                       ("two", "blacklisted user U00666", 11),
                       ("two", "blacklisted card ending 6666", 11)]
    shipped = [(r["transaction_id"], r["blacklist_reason"])
               for r in runner.published.streams["transaction_stream_blacklisted"]]
    assert shipped == [("c", "blacklisted country KP"),
                       ("two", "blacklisted user U00666; blacklisted card ending 6666")]


def test_an_event_with_an_unknown_currency_is_dropped_by_the_statements_alone(
        tmp_path: Path) -> None:
    """The join drops it silently: the executor rejects it first (the topic's contract)."""
    values = [json.dumps(spec_event(currency="XXX")).encode(),
              json.dumps(spec_event(transaction_id="t2")).encode()]
    plan = shipped_plan()
    con = connect()
    register_batch(con, plan, "transaction_stream", values, [100, 101])
    register_reference(con, tmp_path)
    flattened = run_stream(con, plan.streams[0])
    assert [r["transaction_id"] for r in flattened] == ["t2"]


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
