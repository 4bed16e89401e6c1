"""The state store on SQLite, MariaDB and PostgreSQL: the same results, each offset counted
once (a replayed batch, a zombie's stale batch), and batch commits serialized by its lock."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from lakestream.derive.executor import Executor
from lakestream.derive.inputs import InputBatch
from lakestream.derive.reference import ReferenceStore
from lakestream.derive.shipped import TABLES
from lakestream.derive.state import ProgramChangedError, StateStore
from lakestream.derive.statements import compile_statements
from tests.derive.expected import expected_tables
from tests.derive.helpers import ANON_KEY, Published, Runner, table_rows
from tests.derive.statements.helpers import generated_events, shipped_plan

# Every kind of state, over the generated events: the stored values must come back exact.
KINDS = """
CREATE TABLE kinds WITH (KEY_FORMAT = 'JSON') AS SELECT
  f.currency AS currency, f.quantity AS quantity,
  SUM(f.quantity) AS items, SUM(CAST(f.amount AS DECIMAL(12, 2))) AS exact_amount,
  AVG(f.quantity) AS mean_items, MIN(f.user_id) AS first_user, MAX(f.amount_usd) AS largest,
  MIN(PARSE_TIMESTAMP(f.event_time, 'yyyy-MM-dd''T''HH:mm:ss.SSSX')) AS first_time,
  LATEST_BY_OFFSET(f.payment_method_is_active) AS active,
  EARLIEST_BY_OFFSET(f.product_name, true) AS first_product,
  COUNT_DISTINCT(f.product_id) AS products
FROM transaction_flattened f
GROUP BY f.currency, f.quantity
EMIT CHANGES;
"""


def batches(values: list[bytes], seed: int = 3) -> list[tuple[int, list[bytes], list[int]]]:
    """The events split over three partitions, in batches of various sizes."""
    offsets: dict[int, int] = defaultdict(int)
    out = []
    start = 0
    sizes = [1, 70, 33, 120, 5, 260]
    i = 0
    while start < len(values):
        size = sizes[i % len(sizes)]
        partition = (i * seed) % 3
        chunk = values[start:start + size]
        first = offsets[partition]
        out.append((partition, chunk, list(range(first, first + len(chunk)))))
        offsets[partition] += len(chunk)
        start += size
        i += 1
    return out


def run(url: str, folder: Path, values: list[bytes]) -> Published:
    plan = compile_statements(KINDS, "kinds.sql", base=shipped_plan())
    runner = Runner(url, folder, plan)
    try:
        for partition, chunk, offsets in batches(values):
            runner.batch(partition, chunk, offsets)
    finally:
        runner.close()
    return runner.published


def positions(values: list[bytes]) -> list[tuple[int, int, bytes]]:
    return [(p, o, v) for p, chunk, offs in batches(values)
            for o, v in zip(offs, chunk, strict=True)]


def test_every_store_gives_the_recomputed_tables_and_the_same_results(
        store_url: str, tmp_path: Path) -> None:
    values = generated_events(900, seed=12)
    published = run(store_url, tmp_path, values)
    placed = positions(values)
    expected = expected_tables([v for _, _, v in placed], [(p, o) for p, o, _ in placed])
    for table, rows in expected.items():
        assert table_rows(published, table, TABLES[table][0]) == rows, table
    reference = run(f"sqlite:///{tmp_path / 'reference.sqlite'}", tmp_path, values)
    assert published.tables == reference.tables
    kinds = published.tables["kinds"]
    assert len(kinds) > 10
    sample = next(iter(kinds.values()))
    assert isinstance(sample["exact_amount"], float | int | Decimal)
    assert set(sample) == {"currency", "quantity", "items", "exact_amount", "mean_items",
                           "first_user", "largest", "first_time", "active", "first_product",
                           "products"}


def test_a_batch_replayed_after_its_state_committed_adds_nothing(
        store_url: str, tmp_path: Path) -> None:
    values = generated_events(300, seed=13)
    runner = Runner(store_url, tmp_path)
    try:
        runner.batch(0, values[:200], list(range(200)))
        before = {t: dict(rows) for t, rows in runner.published.tables.items()}
        assert runner.batch(0, values[:200], list(range(200))) is None  # the same batch
        assert runner.batch(0, values[50:120], list(range(50, 120))) is None  # a part of it
        partly = runner.batch(0, values[150:], list(range(150, 300)))  # half old, half new
        assert partly is not None and partly.processed == 100 and partly.first == 50
        assert runner.store.next_offset("transactions", 0) == 300
    finally:
        runner.close()
    assert len(runner.published.streams["transaction_flattened"]) == 300
    assert before != runner.published.tables
    expected = expected_tables(values, [(0, o) for o in range(300)])
    for table, rows in expected.items():
        assert table_rows(runner.published, table, TABLES[table][0]) == rows, table


def test_a_zombies_stale_batch_is_skipped_or_trimmed(store_url: str, tmp_path: Path) -> None:
    """Host B froze with batches of partition 1 it prepared while it owned it; host A took
    the partition over and committed past them. B's commits add nothing twice."""
    values = generated_events(400, seed=14)
    host_a = Runner(store_url, tmp_path)
    host_b = Runner(store_url, tmp_path)
    host_b.published = host_a.published  # one topic per output: records in commit order
    try:
        stale = host_b.executor.prepare(_batch(1, values[:100], 0))
        overlapping = _batch(1, values[150:250], 150)
        host_a.batch(1, values[:200], list(range(200)))
        with host_b.store.transaction() as tx:
            assert host_b.executor.apply(stale, tx) is None
        trimmed = host_b.batch(1, overlapping.values, overlapping.offsets)
        assert trimmed is not None and trimmed.first == 50 and trimmed.processed == 50
        host_a.batch(1, values[250:], list(range(250, 400)))
    finally:
        host_a.close()
        host_b.close()
    # every event once: the value published last for each key is its exact value
    expected = expected_tables(values, [(1, o) for o in range(400)])
    for table, rows in expected.items():
        assert table_rows(host_a.published, table, TABLES[table][0]) == rows, table
    streamed = host_a.published.streams["transaction_flattened"]
    assert [r["_source_offset"] for r in streamed] == list(range(400))


def _batch(partition: int, values: list[bytes], first: int) -> InputBatch:
    n = len(values)
    return InputBatch("transactions", partition, values, [None] * n,
                      list(range(first, first + n)), [None] * n)


def test_a_batch_commit_waits_for_the_one_in_progress(store_url: str, tmp_path: Path) -> None:
    """The store-wide lock: a second host's commit starts only when the first one's ends,
    even on another partition (so table values are published in commit order)."""
    first = StateStore(store_url)
    second = StateStore(store_url)
    entered = threading.Event()
    try:
        with first.transaction() as tx:
            tx.set_position("transactions", 0, 10, None)

            def other() -> None:
                with second.transaction() as tx2:
                    entered.set()
                    tx2.set_position("transactions", 1, 5, None)

            thread = threading.Thread(target=other)
            thread.start()
            time.sleep(1.0)
            assert not entered.is_set(), "the second commit ran while the first held the lock"
        thread.join(30)
        assert entered.is_set()
        assert (second.next_offset("transactions", 0), second.next_offset("transactions", 1)) \
            == (10, 5)
    finally:
        first.close()
        second.close()


def test_two_hosts_committing_at_once_keep_every_table_exact(
        store_url: str, tmp_path: Path) -> None:
    values = generated_events(600, seed=15)
    plan = shipped_plan()
    halves = {0: values[:300], 1: values[300:]}
    published: dict[int, Published] = {}
    errors: list[BaseException] = []

    def host(partition: int) -> None:
        try:
            runner = Runner(store_url, tmp_path, plan)
        except BaseException as exc:  # reported below
            errors.append(exc)
            return
        try:
            chunk = halves[partition]
            for start in range(0, len(chunk), 40):
                runner.batch(partition, chunk[start:start + 40],
                             list(range(start, min(start + 40, len(chunk)))))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            runner.close()
            published[partition] = runner.published

    threads = [threading.Thread(target=host, args=(p,)) for p in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    store = StateStore(store_url)
    executor = Executor(plan, store, ReferenceStore(tmp_path), ANON_KEY)
    try:
        with store.transaction() as tx:
            current = executor.current_tables(tx)
    finally:
        executor.close()
        store.close()
    expected = expected_tables(values, [(0, o) for o in range(300)] +
                               [(1, o) for o in range(300)])
    for table, rows in expected.items():
        keys = TABLES[table][0]
        got = {tuple(json.loads(v)[k] for k in keys): {c: x for c, x in json.loads(v).items()
                                                       if c not in keys}
               for _, v in current[table] if v is not None}
        assert got == rows, table


@pytest.mark.parametrize("url", ["oracle://scott@db/orcl", "not a url"])
def test_an_unsupported_state_url_is_a_clear_configuration_error(url: str,
                                                                tmp_path: Path) -> None:
    from lakestream.config import Settings
    from lakestream.derive.state import state_url
    from lakestream.errors import ConfigError

    with pytest.raises(ConfigError, match="state_url"):
        state_url(Settings(data_dir=str(tmp_path), state_url=url))
    default = state_url(Settings(data_dir=str(tmp_path)))
    assert default.database == str(tmp_path / "state" / "processor.sqlite")
    assert state_url(Settings(state_url="postgresql://u:p@h/db")).drivername == (
        "postgresql+psycopg")




def test_a_store_that_is_down_is_waited_for_and_a_wrong_database_is_not(
        tmp_path: Path) -> None:
    """Down: transient, so the consumer loop retries; a missing database: one clear line."""
    from lakestream.derive.state import StateStoreRefusedError, StateStoreUnavailableError
    from lakestream.retry import STREAMING

    with pytest.raises(StateStoreUnavailableError) as down:
        StateStore("mysql+pymysql://root@127.0.0.1:1/lakestream_state")
    assert STREAMING.retries(down.value)
    assert "the state store at mysql+pymysql://root@127.0.0.1:1/lakestream_state failed to " \
           "open" in str(down.value)
    locked = tmp_path / "not-a-folder"
    locked.write_text("a file where the store's folder should be")
    with pytest.raises(StateStoreRefusedError) as refused:
        StateStore(f"sqlite:///{locked}/processor.sqlite")
    assert not STREAMING.retries(refused.value)


def test_a_processor_of_another_program_is_refused_its_next_commit(store_url: str) -> None:
    """`statements add` then a restarted host: the hosts still running the old program
    must not commit a batch the new program's outputs would then miss."""
    store = StateStore(store_url)
    try:
        with store.transaction() as tx:
            tx.check_program("old")  # no program recorded yet: anyone may commit
        store.claim_program("old", "host-a pid 1")
        with store.transaction() as tx:
            tx.check_program("old")
        store.claim_program("new", "host-b pid 2 at 2026-12-05T12:00:00Z")
        with pytest.raises(ProgramChangedError, match="started by host-b pid 2") as err, \
                store.transaction() as tx:
            tx.check_program("old")
        assert err.value.hint and "restart this `lakestream process`" in err.value.hint
        with store.transaction() as tx:
            tx.check_program("new")
    finally:
        store.close()
