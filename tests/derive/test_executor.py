"""The executor against independent recomputations (plain Python over the events).

The shipped program over several partitions and batches gives the tables of
``tests/derive/expected.py``; a user's program — a filtered stream, a join to the
rates table, a tumbling hourly revenue with a grace period and a hopping window with
HAVING — gives what a few lines of Python compute from the same events, late events
going to the dead letters.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from lakestream.derive.executor import check_reference_tables
from lakestream.derive.shipped import TABLES
from lakestream.derive.statements import compile_statements
from lakestream.errors import ConfigError
from tests.derive.expected import expected_tables
from tests.derive.helpers import Runner, table_rows
from tests.derive.statements.helpers import generated_events, shipped_plan
from tests.derive.user_program import MINUTE, NOON, USER_FILE, at, recompute

# -- the shipped program ---------------------------------------------------------------------


def test_the_shipped_program_over_partitions_and_batches_gives_the_recomputed_tables(
        tmp_path: Path) -> None:
    values = generated_events(1200, seed=31)
    rng = random.Random(5)
    partitions: dict[int, list[bytes]] = defaultdict(list)
    for value in values:
        partitions[rng.randrange(3)].append(value)
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    positions = []
    try:
        cursor = dict.fromkeys(partitions, 0)
        while any(cursor[p] < len(v) for p, v in partitions.items()):
            p = rng.choice([p for p, v in partitions.items() if cursor[p] < len(v)])
            size = rng.randint(1, 150)
            chunk = partitions[p][cursor[p]:cursor[p] + size]
            offsets = list(range(cursor[p], cursor[p] + len(chunk)))
            runner.batch(p, chunk, offsets)
            positions += [(p, o, v) for o, v in zip(offsets, chunk, strict=True)]
            cursor[p] += len(chunk)
    finally:
        runner.close()
    expected = expected_tables([v for _, _, v in positions], [(p, o) for p, o, _ in positions])
    for table, rows in expected.items():
        assert table_rows(runner.published, table, TABLES[table][0]) == rows, table
    assert len(runner.published.streams["transaction_flattened"]) == 1200
    assert not runner.published.rejected


def test_bad_events_go_to_the_dead_letters_and_the_rest_is_counted(tmp_path: Path) -> None:
    events = [json.dumps(at(1, transaction_id="ok", amount=10.0)).encode(),
              json.dumps(at(2, transaction_id="neg", amount=-1.0)).encode(),
              b"{not json",
              json.dumps(at(3, transaction_id="bigq", quantity=3_000_000_000)).encode(),
              json.dumps(at(4, transaction_id="ok2", amount=5.0)).encode()]
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    try:
        out = runner.batch(0, events, [10, 11, 12, 13, 14])
    finally:
        runner.close()
    assert out is not None and out.processed == 2
    assert runner.published.rejected == {
        (0, 11): "amount must be > 0",
        (0, 12): "JSON parse error: Missing a name for object member.",
        (0, 13): "quantity 3000000000 does not fit the declared INTEGER"}
    assert [r["transaction_id"] for r in runner.published.streams["transaction_flattened"]] == [
        "ok", "ok2"]
    (row,) = runner.published.tables["user_transaction_summary"].values()
    assert (row["transaction_count"], row["total_amount"]) == (2, 15.0)


# -- a user's program ------------------------------------------------------------------------


def user_batches() -> list[tuple[int, list[dict[str, Any]]]]:
    """Batches of two partitions: late events inside and past the grace period, across
    batches; partition 1 runs behind partition 0 without its events being late."""
    u1, u2 = {"user.user_id": "U1"}, {"user.user_id": "U2"}
    return [
        (0, [at(5, transaction_id="a", amount=150.0, **u1),
             at(50, transaction_id="b", amount=20.0, currency="EUR", **u1),
             at(65, transaction_id="c", amount=1500.0, **u2)]),
        (1, [at(2, transaction_id="p1a", amount=7.0, **u2),
             at(8, transaction_id="p1b", amount=8.0, status="failed", **u2)]),
        # stream time 13:05 on partition 0; the 12:00 window closes at 13:10
        (0, [at(68, transaction_id="inside", amount=30.0, **u1),
             at(55, transaction_id="in-grace", amount=40.0, **u1),  # 12:55, stream time 13:08
             at(80, transaction_id="d", amount=2.0, transaction_type="refund", **u2)]),
        (0, [at(59, transaction_id="too-late", amount=99.0, **u1),  # window closed 13:10
             at(90, transaction_id="e", amount=3.0, currency="GBP", **u1)]),
        (1, [at(12, transaction_id="p1c", amount=9.0, **u2)]),  # partition 1 is at 12:08
    ]


def run_user_program(url: str, folder: Path) -> Runner:
    plan = compile_statements(USER_FILE, "mine.sql", base=shipped_plan())
    runner = Runner(url, folder, plan)
    offsets: defaultdict[int, int] = defaultdict(int)
    try:
        for partition, events in user_batches():
            first = offsets[partition]
            runner.batch(partition, [json.dumps(e).encode() for e in events],
                         list(range(first, first + len(events))))
            offsets[partition] += len(events)
    finally:
        runner.close()
    return runner


def test_a_users_program_gives_what_its_statements_define(tmp_path: Path) -> None:
    runner = run_user_program(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    published = runner.published
    expected = recompute(user_batches())
    assert [(r["transaction_id"], r["size"]) for r in published.streams["big_purchases"]] == (
        expected["big_purchases"])
    assert [(r["transaction_id"], r["amount_eur"])
            for r in published.streams["amounts_in_eur"]] == expected["amounts_in_eur"]
    assert table_rows(published, "hourly_revenue",
                      ("currency", "window_start", "window_end")) == expected["hourly_revenue"]
    assert table_rows(published, "busy_users",
                      ("user_id", "windowstart", "windowend")) == expected["busy_users"]
    late = {json.loads(v)["transaction_id"] for v in _rejected_values(runner)}
    assert late == expected["late"] and "too-late" in late and "in-grace" not in late


def _rejected_values(runner: Runner) -> list[bytes]:
    """The values of the dead letters (the batches as sent)."""
    values: dict[tuple[int, int], bytes] = {}
    offsets: dict[int, int] = defaultdict(int)
    for partition, events in user_batches():
        for e in events:
            values[(partition, offsets[partition])] = json.dumps(e).encode()
            offsets[partition] += 1
    return [values[k] for k in runner.published.rejected]


def test_a_late_event_is_a_dead_letter_saying_which_window_closed(tmp_path: Path) -> None:
    runner = run_user_program(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    assert runner.published.rejected == {(0, 6): (
        "late for hourly_revenue: its window 2025-01-15T12:00:00.000Z to "
        "2025-01-15T13:00:00.000Z closed (grace period 10 MINUTES; stream time "
        "2025-01-15T13:20:00.000Z)")}
    # still counted where no window closed: the streams carry it
    assert "too-late" in [r["transaction_id"] for r in runner.published.streams[
        "transaction_flattened"]]
    outputs = [o for o in runner.published.outputs if o is not None]
    assert [o.late for o in outputs] == [0, 0, 0, 1, 0]


def test_a_key_having_drops_is_published_as_a_tombstone(tmp_path: Path) -> None:
    runner = run_user_program(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    first = runner.published.outputs[0]
    assert first is not None
    busy = first.tables["busy_users"]
    # the first batch holds one event per window of U2 (c at 13:05): each key a tombstone
    u2 = [(json.loads(k or b"{}"), v) for k, v in busy if b'"U2"' in (k or b"")]
    assert u2 and all(v is None for _, v in u2)
    assert {k["windowstart"] for k, _ in u2} == {NOON + 40 * MINUTE, NOON + 50 * MINUTE,
                                                  NOON + 60 * MINUTE}


def test_a_table_counts_the_rows_an_insert_into_adds_to_its_stream(tmp_path: Path) -> None:
    """Outputs run after every writer of the stream they read, whatever the statement order."""
    program = """
    CREATE STREAM flagged WITH (KAFKA_TOPIC = 'flagged') AS SELECT transaction_id, user_id,
      'big' AS why FROM transaction_flattened WHERE amount_usd > 100 EMIT CHANGES;
    CREATE TABLE flags AS SELECT why, COUNT(*) AS n FROM flagged GROUP BY why EMIT CHANGES;
    INSERT INTO flagged SELECT transaction_id, user_id, 'refund' AS why
      FROM transaction_flattened WHERE transaction_type = 'refund' EMIT CHANGES;
    """
    plan = compile_statements(program, "flags.sql", base=shipped_plan())
    events = [at(1, amount=500.0), at(2, amount=5.0, transaction_type="refund"),
              at(3, amount=900.0, transaction_type="refund"), at(4, amount=1.0)]
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path, plan)
    try:
        runner.batch(0, [json.dumps(e).encode() for e in events], [0, 1, 2, 3])
    finally:
        runner.close()
    assert table_rows(runner.published, "flags", ("why",)) == {("big",): {"n": 2},
                                                                ("refund",): {"n": 2}}
    assert [(r["_source_offset"], r["why"]) for r in runner.published.streams["flagged"]] == [
        (0, "big"), (1, "refund"), (2, "big"), (2, "refund")]


def test_a_join_to_a_table_the_processor_does_not_feed_is_refused(tmp_path: Path) -> None:
    from lakestream.errors import ConfigError

    program = """
    CREATE TABLE vip (user_id VARCHAR PRIMARY KEY, tier VARCHAR)
      WITH (KAFKA_TOPIC = 'vip_users', VALUE_FORMAT = 'JSON');
    CREATE STREAM vip_events AS SELECT f.transaction_id, v.tier FROM transaction_flattened f
      JOIN vip v ON f.user_id = v.user_id EMIT CHANGES;
    """
    plan = compile_statements(program, "vip.sql", base=shipped_plan())
    with pytest.raises(ConfigError, match=re.escape(
            "the table vip (topic vip_users) is joined, but `lakestream process` provides only "
            "the reference tables exchange_rates, blacklist")):
        Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path, plan)


def test_a_stream_fed_from_two_input_topics_is_refused() -> None:
    """Ingest tells a replayed derived record by its source offset: one topic's per stream."""
    program = """
    CREATE STREAM clicks (user_id VARCHAR KEY, page VARCHAR)
      WITH (KAFKA_TOPIC = 'clicks', VALUE_FORMAT = 'JSON');
    CREATE STREAM activity AS SELECT user_id, 'purchase' AS what FROM transaction_flattened
      EMIT CHANGES;
    INSERT INTO activity SELECT user_id, page AS what FROM clicks EMIT CHANGES;
    """
    plan = compile_statements(program, "activity.sql", base=shipped_plan())
    with pytest.raises(ConfigError, match=r"activity.sql, line 4: stream activity gets records "
                                          r"of several input topics \(clicks, transactions"):
        check_reference_tables(plan)


def test_a_users_source_with_a_quoted_timestamp_format_sends_each_bad_event_away_with_why(
        tmp_path: Path) -> None:
    """Texts in the reasons are SQL literals whatever they hold: a TIMESTAMP_FORMAT with
    quoted letters ('T') and a column called it's."""
    program = """
    CREATE STREAM clicks (user_id VARCHAR KEY, page VARCHAR, `it's` BIGINT, ts VARCHAR)
      WITH (KAFKA_TOPIC = 'clicks', VALUE_FORMAT = 'JSON', TIMESTAMP = 'ts',
            TIMESTAMP_FORMAT = 'yyyy-MM-dd''T''HH:mm:ssX');
    CREATE TABLE clicks_per_page AS SELECT page, COUNT(*) AS n FROM clicks
      WINDOW TUMBLING (SIZE 1 HOUR, GRACE PERIOD 10 MINUTES) GROUP BY page EMIT CHANGES;
    """
    plan = compile_statements(program, "clicks.sql", base=shipped_plan())
    good = {"page": "/a", "it's": 5, "ts": "2025-01-15T12:00:00Z"}
    events = [json.dumps(good).encode(),
              json.dumps({**good, "ts": "15/01/2025"}).encode(),
              json.dumps({k: v for k, v in good.items() if k != "ts"}).encode(),
              json.dumps({**good, "it's": "many"}).encode(),
              b"not json",
              json.dumps({**good, "ts": "2025-01-15T12:30:00+01:00"}).encode()]
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path, plan, topic="clicks")
    try:
        out = runner.batch(0, events, range(6))
    finally:
        runner.close()
    assert out is not None and out.processed == 2
    assert runner.published.rejected == {
        (0, 1): "no event time: ts '15/01/2025' is not a time in TIMESTAMP_FORMAT "
                "'yyyy-MM-dd'T'HH:mm:ssX'",
        (0, 2): "no event time: ts is missing",
        (0, 3): "field it's: expected int64, found string",
        (0, 4): "JSON parse error: Expecting value: line 1 column 1 (char 0)"}
    rows = runner.published.tables["clicks_per_page"]
    assert sorted((r["windowstart"], r["n"]) for r in rows.values()) == [
        (1736938800000, 1), (1736942400000, 1)]


def test_the_rehearsal_runs_a_users_source_on_a_record_its_contract_takes(
        tmp_path: Path) -> None:
    from dataclasses import replace

    from lakestream.derive.reference import ReferenceStore
    from lakestream.derive.rehearsal import rehearse, sample
    from lakestream.derive.statements import StreamPlan

    program = """
    CREATE STREAM clicks (user_id VARCHAR KEY, page VARCHAR, ms BIGINT, tags ARRAY<VARCHAR>,
      who STRUCT<name VARCHAR, age INT>, ok BOOLEAN, ts VARCHAR)
      WITH (KAFKA_TOPIC = 'clicks', VALUE_FORMAT = 'JSON', TIMESTAMP = 'ts',
            TIMESTAMP_FORMAT = 'dd/MM/yyyy HH:mm:ss.SSS Z');
    CREATE STREAM long_clicks AS SELECT user_id, page, who->name AS name FROM clicks
      WHERE ms > 5 EMIT CHANGES;
    """
    plan = compile_statements(program, "clicks.sql", base=shipped_plan())
    runner = Runner(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path, plan, topic="clicks")
    try:
        record = sample(plan.relations["clicks"], runner.executor.con)  # type: ignore[arg-type]
        assert record["ts"] == "15/01/2025 12:00:00.000 +0000"
        runner.batch(0, [json.dumps(record).encode()], [0])
    finally:
        runner.close()
    assert not runner.published.rejected
    assert runner.published.streams["long_clicks"] == [
        {"user_id": None, "page": "x", "name": "x", "_source_partition": 0, "_source_offset": 0}]
    reference = ReferenceStore(tmp_path)
    rehearse(plan, reference, "clicks.sql")  # runs clean
    broken = [replace(o, sql=o.sql.replace("SELECT", "SELEC", 1))
              if isinstance(o, StreamPlan) and o.name == "long_clicks" else o
              for o in plan.outputs]
    with pytest.raises(ConfigError, match=r"^clicks.sql: the program compiles but DuckDB "
                                          r"refused its SQL when run on a sample record"):
        rehearse(replace(plan, outputs=tuple(broken)), reference, "clicks.sql")
