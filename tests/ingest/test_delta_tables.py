"""Table feeds into Delta tables from a real Tansu broker: restarts resume exactly where the
table's log says, two consumers of one table never both commit, export and ingest agree."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lakestream.api import Lakestream
from lakestream.ingest.tables import TableIngest
from lakestream.kafka.client import consumer_config, topic_partitions
from lakestream.lake.delta import DeltaDataset, app_id, is_delta_table
from lakestream.lake.table_versions import (
    current_delta_version,
    delta_table_versions,
    read_delta_version,
)
from tests.batchload.helpers import api_for, bootstrap
from tests.conftest import unique_topic, write_feed
from tests.ingest.helpers import send

pytestmark = pytest.mark.integration

Changelog = list[tuple[bytes | None, bytes]]


def changes(keys: range, rounds: int, base: int) -> Changelog:
    """Successive values of ``keys``: round ``r`` of key ``k`` is ``base + 10 * r + k``."""
    return [(f"K{k}".encode(), json.dumps({"id": f"K{k}", "n": base + 10 * r + k}).encode())
            for r in range(rounds) for k in keys]


def latest(messages: Changelog) -> dict[str, int]:
    return {json.loads(v)["id"]: json.loads(v)["n"] for _, v in messages}


def table_feed(workdir: Path, **lake: object) -> tuple[Lakestream, str]:
    topic = unique_topic("table")
    write_feed(workdir / "feeds", "totals", topic, kind="table", layer="tables",
               schema={"id": "string", "n": "int64"}, key=["id"], required=[],
               time_field=None)
    send(bootstrap(workdir), topic, [])
    return api_for(workdir, lake or None), topic


def member(api: Lakestream, topic: str) -> TableIngest:
    """A table consumer of ``topic`` writing the Delta table."""
    ingest = TableIngest(api.storage, [api.feeds.get("totals")],
                         consumer_config(api.settings, api.bootstrap(), "t"),
                         snapshot_interval_s=3600, keep=7)
    ingest.start({topic: topic_partitions(api.bootstrap(), topic)})
    return ingest


def drain(ingest: TableIngest, expect: int) -> None:
    """Poll until ``expect`` more records were applied, then 0.5 s more for any surplus."""
    target, deadline = ingest.applied + expect, time.monotonic() + 60
    while ingest.applied < target and time.monotonic() < deadline:
        if not ingest.poll():
            time.sleep(0.02)
    quiet = time.monotonic() + 0.5
    while time.monotonic() < quiet:
        if not ingest.poll():
            time.sleep(0.02)


def current(api: Lakestream) -> dict[str, int]:
    rows = read_delta_version(api.storage, "tables/totals")
    return dict(zip(rows.column("id").to_pylist(), rows.column("n").to_pylist(), strict=True))


def offsets_held(api: Lakestream, topic: str) -> int:
    """How many records the table's offsets cover (offsets of a fresh topic start at 0)."""
    held = DeltaDataset(api.storage, "tables/totals").transaction_versions(
        [app_id(topic, p) for p in topic_partitions(api.bootstrap(), topic)])
    return sum(v + 1 for v in held.values() if v is not None)


def test_a_restart_applies_exactly_what_the_newest_version_does_not_cover(
        workdir: Path) -> None:
    api, topic = table_feed(workdir)
    first, lost, later = changes(range(8), 3, 0), changes(range(4), 2, 100), \
        changes(range(2, 10), 1, 500)
    send(bootstrap(workdir), topic, first)
    a = member(api, topic)
    drain(a, len(first))
    a.snapshot_due(force=True)  # v1
    send(bootstrap(workdir), topic, lost)
    drain(a, len(lost))
    a.consumer.close()  # killed: what it applied since v1 was never committed

    b = member(api, topic)
    send(bootstrap(workdir), topic, later)
    drain(b, len(lost) + len(later))
    b.close()  # v2

    assert a.applied == len(first) + len(lost)
    assert b.applied == len(lost) + len(later)  # nothing of v1 again, nothing missing
    assert current(api) == latest(first + lost + later)
    assert current_delta_version(api.storage, "tables/totals") == "v2"
    assert offsets_held(api, topic) == len(first + lost + later)


def test_a_fenced_consumer_rereads_what_the_winning_version_does_not_cover(
        workdir: Path) -> None:
    api, topic = table_feed(workdir)
    a, b = member(api, topic), member(api, topic)  # the old process still runs
    sent = changes(range(10), 3, 0)
    send(bootstrap(workdir), topic, sent)
    drain(a, len(sent))
    drain(b, len(sent))
    a.snapshot_due(force=True)  # v1
    more = changes(range(5), 2, 100)  # keys 0-4 change ...
    send(bootstrap(workdir), topic, more)
    drain(b, len(more))
    drain(a, len(more))
    b.snapshot_due(force=True)  # fenced by a's v1: b reloads v1 and reads `more` again
    assert delta_table_versions(api.storage, "tables/totals") == ["v1"]
    drain(b, len(more))
    last = changes(range(5, 10), 2, 200)  # ... then keys 5-9 change
    send(bootstrap(workdir), topic, last)
    drain(b, len(last))
    b.snapshot_due(force=True)  # v2
    a.close()  # a is fenced in turn and writes nothing
    b.close()

    assert delta_table_versions(api.storage, "tables/totals") == ["v1", "v2"]
    assert current(api) == latest(sent + more + last)
    assert offsets_held(api, topic) == len(sent + more + last)


def test_ingest_and_export_of_a_new_table_write_one_delta_table_of_versions(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the one switch the move to Delta flips: new datasets are Delta tables
    monkeypatch.setattr("lakestream.lake.delta.new_datasets_are_delta", lambda: True)
    api, topic = table_feed(workdir, table_versions=3, snapshot_interval_s=0.2)
    first = changes(range(6), 4, 0)
    send(bootstrap(workdir), topic, first)
    api.ingest_engine(api.select_feeds(None, "totals"), until_idle=True, idle_timeout_s=1.0,
                      group_id="tables").run()
    assert is_delta_table(api.storage, "tables/totals")
    assert current(api) == latest(first)

    more = changes(range(3, 9), 1, 700)
    send(bootstrap(workdir), topic, more)
    results = [api.batch.export(table="totals")[0] for _ in range(3)]

    versions = delta_table_versions(api.storage, "tables/totals")
    assert [r.version for r in results] == versions  # the last 3, the older ones gone
    assert current(api) == latest(first + more)
    assert results[-1].offsets == {str(p): o for p, o in results[0].offsets.items()}
    assert sum(results[-1].offsets.values()) == len(first + more)
    _, rows = api.query("SELECT id, n FROM totals ORDER BY id")
    assert dict(rows) == latest(first + more)
    _, history = api.query("SELECT version, count(*) FROM totals_history GROUP BY 1 ORDER BY 1")
    assert sorted((v for v, _ in history), key=lambda v: int(v[1:])) == versions
    meta = json.loads((workdir / "lake/tables/totals/_metadata.json").read_text())
    assert (meta["current_version"], meta["format"]) == (versions[-1], "delta")
