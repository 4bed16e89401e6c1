"""A user's own statements file on top of the shipped ones: plan, describe, and its windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from lakestream.derive.statements import TablePlan, WindowSpec, compile_statements
from tests.derive.statements.helpers import (
    connect,
    register_batch,
    register_reference,
    run_stream,
    run_table,
    shipped_plan,
    spec_event,
)

USER_FILE = """\
-- My own statements: big purchases, hourly revenue, a sliding count.
SET 'auto.offset.reset' = 'latest';

CREATE STREAM big_purchases WITH (KAFKA_TOPIC = 'big_purchases') AS SELECT
  transaction_id, user_id, amount_usd, currency,
  CASE WHEN amount_usd >= 1000 THEN 'huge' ELSE 'big' END AS size
FROM transaction_flattened
WHERE status = 'completed' AND transaction_type = 'purchase' AND amount_usd > 100
EMIT CHANGES;

CREATE TABLE hourly_revenue_by_currency WITH (KEY_FORMAT = 'JSON') AS SELECT
  currency,
  WINDOWSTART AS window_start,
  WINDOWEND AS window_end,
  SUM(amount_usd) AS revenue_usd,
  COUNT(*) AS purchases
FROM transaction_flattened
WINDOW TUMBLING (SIZE 1 HOUR, GRACE PERIOD 10 MINUTES)
WHERE status = 'completed'
GROUP BY currency
EMIT CHANGES;

CREATE TABLE busy_users AS SELECT
  user_id, COUNT(*) AS purchases, MAX(amount_usd) AS largest
FROM transaction_flattened
WINDOW HOPPING (SIZE 30 MINUTES, ADVANCE BY 10 MINUTES)
GROUP BY user_id
HAVING COUNT(*) > 1
EMIT CHANGES;

/* Every event with its rate: unknown currencies kept, with no rate. */
CREATE STREAM local_amounts AS SELECT
  t.transaction_id AS transaction_id,
  t.currency AS currency,
  r.to_usd AS to_usd,
  ROUND(t.amount * r.to_usd, 2) AS amount_usd_2dp
FROM transaction_stream t
LEFT JOIN exchange_rates r ON t.currency = r.currency
EMIT CHANGES;
"""
NOON = int(datetime(2025, 1, 15, 12, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000


def test_a_users_file_plans_on_top_of_the_shipped_program() -> None:
    plan = compile_statements(USER_FILE, "mine.sql", base=shipped_plan())
    names = [o.name for o in plan.outputs]
    assert names[-4:] == ["big_purchases", "hourly_revenue_by_currency", "busy_users",
                          "local_amounts"]
    assert plan.settings[-1] == ("auto.offset.reset", "latest")
    hourly = plan.output("hourly_revenue_by_currency")
    assert isinstance(hourly, TablePlan)
    assert hourly.window == WindowSpec("TUMBLING", 3_600_000, 3_600_000, 600_000, False, None)
    assert hourly.key_columns == ("currency", "window_start", "window_end")
    assert [c.name for c in hourly.columns] == ["currency", "window_start", "window_end",
                                                "revenue_usd", "purchases"]
    busy = plan.output("busy_users")
    assert isinstance(busy, TablePlan) and busy.having
    assert busy.window is not None and busy.window.grace_ms == 24 * 3_600_000 - 30 * MINUTE
    assert busy.key_columns == ("user_id", "windowstart", "windowend")
    assert (hourly.key_format, busy.key_format) == ("JSON", "JSON")
    assert [c.name for c in busy.columns] == ["user_id", "purchases", "largest", "windowstart",
                                              "windowend"]
    assert plan.output("big_purchases").key_columns == ("user_id",)
    assert plan.output("local_amounts").tables == ("exchange_rates",)


def test_describe_shows_windows_with_their_grace_and_the_having_rule() -> None:
    text = compile_statements(USER_FILE, "mine.sql", base=shipped_plan()).describe()
    assert ("window: TUMBLING (SIZE 1 HOUR, GRACE PERIOD 10 MINUTES); later events go to the "
            "dead letters") in text
    assert ("window: HOPPING (SIZE 30 MINUTES, ADVANCE BY 10 MINUTES, GRACE PERIOD 1410 "
            "MINUTES (ksqlDB's default))") in text
    assert "HAVING: a key that stops matching is deleted (tombstone)" in text
    assert "SET 'auto.offset.reset' = 'latest'" in text
    assert "STREAM local_amounts: topic local_amounts, from transaction_stream LEFT JOIN " \
           "exchange_rates\n  key: none\n" in text


def _run(tmp_path: Path, events: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    plan = compile_statements(USER_FILE, "mine.sql", base=shipped_plan())
    values = [json.dumps(e).encode() for e in events]
    con = connect()
    register_batch(con, plan, "transaction_stream", values, list(range(len(values))))
    register_reference(con, tmp_path)
    out: dict[str, list[dict[str, object]]] = {}
    for output in plan.outputs:
        if isinstance(output, TablePlan):
            out[output.name] = run_table(con, output)
        else:
            out[output.name] = run_stream(con, output)
    return out


def _at(minute: int, **changes: object) -> dict[str, object]:
    stamp = datetime.fromtimestamp((NOON + minute * MINUTE) / 1000, UTC)
    return spec_event(event_time=stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"), **changes)


def test_tumbling_windows_group_events_by_hour_of_event_time(tmp_path: Path) -> None:
    events = [_at(5, amount=100.0), _at(59, amount=50.5, currency="EUR"), _at(60, amount=1.0),
              _at(61, amount=2.0, status="failed")]
    rows = _run(tmp_path, events)["hourly_revenue_by_currency"]
    assert rows == [
        {"currency": "EUR", "window_start": NOON, "window_end": NOON + 60 * MINUTE,
         "revenue_usd": 54.54, "purchases": 1},
        {"currency": "USD", "window_start": NOON, "window_end": NOON + 60 * MINUTE,
         "revenue_usd": 100.0, "purchases": 1},
        {"currency": "USD", "window_start": NOON + 60 * MINUTE,
         "window_end": NOON + 120 * MINUTE, "revenue_usd": 1.0, "purchases": 1},
    ]


def test_hopping_windows_hold_every_event_of_their_span_and_having_filters(
        tmp_path: Path) -> None:
    events = [_at(5, amount=10.0), _at(25, amount=30.0), _at(41, amount=5.0)]
    rows = _run(tmp_path, events)["busy_users"]
    spans = [(r["windowstart"], r["purchases"], r["largest"]) for r in rows]
    # 12:05 is in the windows starting 11:40, 11:50, 12:00; 12:25 in 12:00, 12:10, 12:20;
    # 12:41 in 12:20, 12:30, 12:40. Windows with one event fail HAVING COUNT(*) > 1.
    assert spans == [(NOON, 2, 30.0), (NOON + 20 * MINUTE, 2, 30.0)]


def test_the_filtered_stream_and_the_left_join_keep_what_they_say(tmp_path: Path) -> None:
    events = [_at(1, amount=1500.0, transaction_id="a"), _at(2, amount=50.0, transaction_id="b"),
              _at(3, amount=200.0, transaction_id="c", currency="XXX")]
    out = _run(tmp_path, events)
    assert [(r["transaction_id"], r["size"]) for r in out["big_purchases"]] == [("a", "huge")]
    assert [(r["transaction_id"], r["to_usd"], r["amount_usd_2dp"])
            for r in out["local_amounts"]] == [("a", 1.0, 1500.0), ("b", 1.0, 50.0),
                                               ("c", None, None)]


@pytest.mark.parametrize(("size", "advance", "time", "starts"), [
    (60, 60, 125, (120,)),
    (30, 10, 35, (10, 20, 30)),
    (30, 10, 5, (0,)),  # no window starts before the epoch (Kafka Streams)
    (30, 10, 30, (10, 20, 30)),
    (30, 30, 29, (0,)),
])
def test_window_starts_follow_kafka_streams(size: int, advance: int, time: int,
                                            starts: tuple[int, ...]) -> None:
    spec = WindowSpec("HOPPING", size, advance, 0, False, None)
    assert spec.starts(time) == starts
    con = connect()
    assert tuple(con.execute(f"SELECT {spec.starts_sql(str(time))}").fetchall()[0][0]) == starts


def test_a_window_closes_when_stream_time_reaches_its_end_plus_grace() -> None:
    spec = WindowSpec("TUMBLING", 60, 60, 10, False, None)
    assert not spec.is_late(window_start_ms=0, stream_time_ms=69)
    assert spec.is_late(window_start_ms=0, stream_time_ms=70)


@pytest.mark.parametrize(("column", "declared", "value", "extra"), [
    ("ms", "BIGINT", NOON + 1, ""),
    ("ts", "TIMESTAMP", datetime(2025, 1, 15, 12, 0, 0, 1000), ""),
    ("txt", "VARCHAR", "15/01/2025 12:00:00.001 +0000",
     ", TIMESTAMP_FORMAT='dd/MM/yyyy HH:mm:ss.SSS Z'"),
    ("txt", "VARCHAR", "2025-01-15T13:00:00.001+01:00",
     ", TIMESTAMP_FORMAT='yyyy-MM-dd''T''HH:mm:ss.SSSXXX'"),
])
def test_the_event_time_of_a_source_is_read_from_its_timestamp_column(
        column: str, declared: str, value: object, extra: str) -> None:
    plan = compile_statements(f"CREATE STREAM e ({column} {declared}) WITH (KAFKA_TOPIC='e', "
                              f"VALUE_FORMAT='JSON', TIMESTAMP='{column}'{extra});")
    source = plan.sources[0]
    con = connect()
    con.register("e", pa.table({column: pa.array([value], source.columns[0].type.arrow())}))
    sql = source.event_time.sql("e")
    assert sql is not None
    assert con.execute(f"SELECT {sql} FROM e").fetchall() == [(NOON + 1,)]


def test_a_stream_without_timestamp_takes_the_record_timestamp() -> None:
    plan = compile_statements("CREATE STREAM e (a VARCHAR) WITH (KAFKA_TOPIC='e', "
                              "VALUE_FORMAT='JSON');")
    event_time = plan.sources[0].event_time
    assert (event_time.sql("e"), event_time.declared) == (None, False)
    assert event_time.describe() == "the Kafka record timestamp (no TIMESTAMP column)"


def test_a_users_file_cannot_redefine_a_shipped_name() -> None:
    from lakestream.derive.statements import StatementError

    with pytest.raises(StatementError) as caught:
        compile_statements("\nCREATE STREAM transaction_flattened AS SELECT transaction_id "
                           "FROM transaction_stream;", "mine.sql", base=shipped_plan())
    assert str(caught.value) == ("mine.sql, line 2: transaction_flattened already exists "
                                 "(stream created at 02_derived_streams.sql, line 3)")
