"""A user's own statements, registered with the CLI and run by `process`, exact across kill -9.

``lakestream statements add`` registers the user program of
``tests/derive/user_program.py`` (a filtered stream, a join to the rates table, a
tumbling hourly revenue per currency with a 10-minute grace period, a hopping
window with HAVING) under the pipeline ``finance``. Events whose event time
advances over hours arrive in the `transactions` topic, a few of them late —
inside the grace period and past it. Meanwhile `lakestream process` is SIGKILLed
and restarted at random moments (the dead member still in the group), and once
frozen with SIGSTOP past its session timeout while a second instance takes its
partitions over, then let go (a zombie with a batch in hand). `lakestream ingest
--pipeline finance` then lands the four outputs. Read back with delta-rs and
DuckDB, the lake must hold what plain Python computes from the topic's events:
each stream record once, each table row equal, and every late event in the
processor's dead letters — and no other.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lakestream.derive.shipped import TABLES
from lakestream.derive.state import StateStore
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from tests.derive.expected import RATES, expected_tables, latest_per_key
from tests.derive.statements.helpers import spec_event
from tests.derive.user_program import MINUTE, NOON, USER_FILE, recompute
from tests.faults.chaos import (
    Child,
    Children,
    SteadyProducer,
    topic_records,
    wait_until,
    write_config,
)
from tests.faults.conftest import ANON_KEY, SEED, FaultCounts
from tests.ingest.helpers import lake_rows

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 3
EVENTS = 2400
USERS = [f"U{n:03d}" for n in range(24)]


def crafted_events(rng: random.Random) -> list[tuple[bytes, bytes]]:
    """Events 3 s of event time apart (two hours in all); 6 % come 1–40 minutes late."""
    events = []
    for i in range(EVENTS):
        t = NOON + i * 3000
        if rng.random() < 0.06:
            t -= rng.randint(1, 40) * MINUTE
        user = rng.choice(USERS)
        stamp = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        event = spec_event(**{
            "transaction_id": f"T{i:05d}", "event_time": stamp + "Z",
            "amount": round(rng.uniform(1, 2000), 2), "currency": rng.choice(sorted(RATES)),
            "status": rng.choice(["completed"] * 6 + ["failed"]),
            "transaction_type": rng.choice(["purchase"] * 4 + ["refund"]),
            "user.user_id": user})
        events.append((user.encode(), json.dumps(event).encode()))
    return events


def by_partition(records: list[tuple[int, int, bytes]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """The topic's events as one batch per partition, in offset order."""
    parts: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for partition, offset, value in records:
        parts[partition].append((offset, value))
    return [(p, [json.loads(v) for _, v in sorted(rows)]) for p, rows in sorted(parts.items())]


def in_grace(batches: list[tuple[int, list[dict[str, Any]]]]) -> set[str]:
    """Events older than their partition's stream time when they arrived."""
    older = set()
    for _partition, events in batches:
        now = 0
        for event in events:
            t = int(datetime.fromisoformat(event["event_time"]).timestamp() * 1000)
            if t < now:
                older.add(event["transaction_id"])
            now = max(now, t)
    return older


def processed_inputs(bootstrap: str, folder: Path,
                     processors: list[Child]) -> list[tuple[int, int, bytes]]:
    """The input topic's records, once the processors' state store holds every one."""
    inputs = topic_records(bootstrap, "transactions")
    ends: dict[int, int] = {}
    for partition, offset, _ in inputs:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    store = StateStore(f"sqlite:///{folder / 'data' / 'state' / 'processor.sqlite'}")
    try:
        wait_until(lambda: all((store.next_offset("transactions", p) or 0) >= end
                               for p, end in ends.items()),
                   120, "the processors to process every event", children=processors)
    finally:
        store.close()
    return inputs


def latest_version(lake: Path, table: str, columns: str) -> list[tuple[Any, ...]]:
    """A table's rows in its newest version, read by delta-rs and DuckDB."""
    rows = lake_rows(lake, f"tables/{table}", f"version, {columns}")
    newest = max(r[0] for r in rows)
    return [r[1:] for r in rows if r[0] == newest]


def test_a_users_registered_statements_are_exact_across_kills_and_a_zombie(
        tmp_path: Path, children: Children, counts: FaultCounts) -> None:
    rng = random.Random(f"{SEED}-user-statements")
    with EmbeddedBroker(tmp_path / "broker") as broker:
        bootstrap = broker.bootstrap_servers
        ensure_topics(bootstrap, ["transactions"], PARTITIONS)
        config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap,
                                               "partitions": PARTITIONS})
        program = tmp_path / "mine.sql"
        program.write_text(USER_FILE)
        code, out = children.run("add", ["--config", str(config), "statements", "add",
                                         str(program), "--pipeline", "finance"], tmp_path)
        assert code == 0, out
        assert "4 output(s)" in out and "busy_users" in out

        def start(name: str) -> Child:
            return children.spawn(name, ["--config", str(config), "process"], tmp_path,
                                  LAKESTREAM_ANON_KEY=ANON_KEY)

        producer = SteadyProducer(bootstrap, "transactions", rate=200, seed=SEED,
                                  messages=crafted_events(rng))
        producer.start()
        running = start("process-1")
        kills = 0
        for _ in range(3):
            time.sleep(rng.uniform(1.5, 3.5))  # mid-batch: batches commit every 0.3 s
            running.kill()
            kills += 1
            time.sleep(rng.uniform(0.3, 1.5))  # the dead member stays in the group meanwhile
            running = start("process-1")
        # a zombie: frozen past its session timeout (2 s) while another member takes over
        time.sleep(rng.uniform(2.0, 3.0))
        assert running.proc is not None
        os.kill(running.proc.pid, signal.SIGSTOP)
        other = start("process-2")
        time.sleep(6.0)
        os.kill(running.proc.pid, signal.SIGCONT)
        producer.join(120)
        producer.stop()

        inputs = processed_inputs(bootstrap, tmp_path, [running, other])
        assert len(inputs) == producer.sent == EVENTS
        for child in (running, other):
            assert child.terminate() == 0, child.output()[-3000:]
            assert "Traceback" not in child.output(), child.output()[-3000:]

        code, out = children.run("ingest", ["--config", str(config), "ingest", "--pipeline",
                                            "finance", "--until-idle"], tmp_path,
                                 env={"LAKESTREAM_ANON_KEY": ANON_KEY})
        assert code == 0, out

    expected = recompute(by_partition(inputs))
    lake = tmp_path / "lake"
    big = lake_rows(lake, "streams/big_purchases", "transaction_id, size")
    assert Counter(big) == Counter(expected["big_purchases"])  # each once, none missing
    eur = lake_rows(lake, "streams/amounts_in_eur", "transaction_id, amount_eur")
    assert Counter(eur) == Counter(expected["amounts_in_eur"])
    hourly = {(c, s, e): {"revenue_usd": r, "purchases": n} for c, s, e, r, n in latest_version(
        lake, "hourly_revenue", "currency, window_start, window_end, revenue_usd, purchases")}
    assert hourly == expected["hourly_revenue"]
    busy = {(u, s, e): {"events": n, "largest": m} for u, s, e, n, m in latest_version(
        lake, "busy_users", "user_id, windowstart, windowend, events, largest")}
    assert busy == expected["busy_users"]
    late = {json.loads(raw)["transaction_id"] for (raw,) in lake_rows(lake, "_dlq/processor",
                                                                        "raw")}
    assert late == expected["late"]
    for output in ("big_purchases", "amounts_in_eur", "hourly_revenue", "busy_users"):
        assert lake_rows(lake, f"_dlq/{output}") == [], output  # ingest landed every record
    assert expected["late"] and len(expected["hourly_revenue"]) > 10
    assert in_grace(by_partition(inputs)) - expected["late"], "no late event inside the grace"
    counts.kills["process running a user's statements (and one zombie)"] += kills + 1
    counts.records["user statements"] += len(inputs)


REVENUE = """\
CREATE TABLE revenue_per_currency AS SELECT currency, SUM(amount_usd) AS revenue,
  COUNT(*) AS n FROM transaction_flattened WHERE status = 'completed' GROUP BY currency
EMIT CHANGES;
"""


def test_a_process_running_before_a_file_was_added_stops_and_the_tables_stay_exact(
        tmp_path: Path, children: Children, counts: FaultCounts) -> None:
    """A file added while `process` runs: the host restarted with it claims the store, and
    the host still running the old program is refused its next commit (exit 1, saying to
    restart), so no batch misses the new outputs; the shipped tables stay exact."""
    with EmbeddedBroker(tmp_path / "broker") as broker:
        bootstrap = broker.bootstrap_servers
        ensure_topics(bootstrap, ["transactions"], PARTITIONS)
        config = write_config(tmp_path, kafka={"bootstrap_servers": bootstrap,
                                               "partitions": PARTITIONS})

        def start(name: str) -> Child:
            return children.spawn(name, ["--config", str(config), "process"], tmp_path,
                                  LAKESTREAM_ANON_KEY=ANON_KEY)

        producer = SteadyProducer(bootstrap, "transactions", rate=200, seed=SEED + 5)
        producer.start()
        old = start("process-old")
        store = StateStore(f"sqlite:///{tmp_path / 'data' / 'state' / 'processor.sqlite'}")
        try:  # the old program has committed batches before the file is added
            wait_until(lambda: any(store.next_offset("transactions", p)
                                   for p in range(PARTITIONS)),
                       120, "the old program's first commit", children=[old])
        finally:
            store.close()
        time.sleep(1.0)
        (tmp_path / "revenue.sql").write_text(REVENUE)
        code, out = children.run("add", ["--config", str(config), "statements", "add",
                                         str(tmp_path / "revenue.sql")], tmp_path)
        assert code == 0, out
        new = start("process-new")
        assert old.wait(90) == 1, old.output()[-3000:]
        assert "now runs other statements (started by " in old.output(), old.output()[-3000:]
        assert "Traceback" not in old.output()
        time.sleep(2.0)
        producer.stop()
        # the old member may leave while the group re-forms around the new one: Tansu then
        # strands the group on the departed leader until the new process repairs it
        # (lakestream.kafka.group_repair), within about a minute
        inputs = processed_inputs(bootstrap, tmp_path, [new])
        assert new.terminate() == 0, new.output()[-3000:]
        topics = {t: topic_records(bootstrap, t) for t in [*TABLES, "revenue_per_currency"]}

    assert len(inputs) == producer.sent
    expected = expected_tables([v for _, _, v in inputs], [(p, o) for p, o, _ in inputs])
    for table, rows in expected.items():
        assert latest_per_key(topics[table], list(TABLES[table][0])) == rows, table
    revenue = latest_per_key(topics["revenue_per_currency"], ["currency"])
    completed = sum(1 for _, _, v in inputs if json.loads(v).get("status") == "completed")
    assert 0 < sum(r["n"] for r in revenue.values()) < completed  # since the new program began
    counts.records["a file added to a running program"] += len(inputs)
