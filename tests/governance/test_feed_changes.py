"""Feed changes checked against the data in the lake (lakes written by the real sinks).

The CLI repro (`feeds update transaction_stream --set kind=table` accepted, the
next ingest dying with ArrowTypeError) is in tests/test_feeds_lifecycle.py; here
each kind of contradiction is checked on its own.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from lakestream.errors import FeedError
from lakestream.feeds import FeedRegistry
from lakestream.governance.feed_changes import contradictions, fits, update_feed
from lakestream.lake.storage import Storage

from .conftest import api_for
from .lakebuild import build_stream, build_table

TODAY = dt.date(2025, 3, 10)


@pytest.fixture
def lake(project: Path) -> tuple[Storage, FeedRegistry]:
    """`events` holds 3 days of a stream, `totals` 2 versions of a table."""
    api = api_for(project)
    build_stream(api.storage, api.feeds.get("events"), TODAY, days=3)
    build_table(api.storage, api.feeds.get("totals"), versions=2)
    return api.storage, api.feeds


def reasons(storage: Storage, registry: FeedRegistry, name: str, **changes: object) -> list[str]:
    return [c.reason for c in contradictions(storage, registry.get(name),
                                             registry.proposed(name, dict(changes)))]


@pytest.mark.parametrize(("found", "declared", "ok"), [
    (pa.string(), pa.string(), True),
    (pa.null(), pa.float64(), True),
    (pa.int32(), pa.int64(), True),
    (pa.int64(), pa.float64(), True),
    (pa.int64(), pa.int32(), False),
    (pa.float64(), pa.int64(), False),
    (pa.string(), pa.float64(), False),
    (pa.float64(), pa.string(), False),
    (pa.timestamp("ms", tz="UTC"), pa.timestamp("us", tz="UTC"), True),
    (pa.timestamp("us", tz="UTC"), pa.timestamp("ms", tz="UTC"), False),
    (pa.struct([("id", pa.int64()), ("x", pa.string())]), pa.struct([("id", pa.float64())]), True),
    (pa.struct([("id", pa.string())]), pa.struct([("id", pa.float64())]), False),
    (pa.list_(pa.int32()), pa.list_(pa.int64()), True),
    (pa.string(), pa.struct([("id", pa.string())]), False),
])
def test_only_lossless_changes_fit_existing_data(found: pa.DataType, declared: pa.DataType,
                                                 ok: bool) -> None:
    assert fits(found, declared) is ok


def test_a_feed_without_data_may_change_anything(project: Path) -> None:
    api = api_for(project)
    changes = {"topic": "elsewhere", "time_field": None, "schema": {"id": "int64"}}
    assert reasons(api.storage, api.feeds, "events", **changes) == []
    update = update_feed(api.storage, api.feeds, "events", {"kind": "table", "layer": "tables",
                                                            "key": ["id"]})
    assert update.feed.kind == "table" and update.kept == ()


def test_kind_and_layer_changes_are_refused_even_with_keep(
        lake: tuple[Storage, FeedRegistry], project: Path) -> None:
    storage, registry = lake
    found = reasons(storage, registry, "events", kind="table", layer="tables", key=["id"])
    assert found == ["kind 'stream' -> 'table' contradicts the data: streams/events holds 6 "
                     "records in 3 file(s) written as a stream, which a table in tables/events "
                     "cannot continue"]
    assert reasons(storage, registry, "events", layer="bronze")[0].startswith(
        "layer 'streams' -> 'bronze' contradicts the data: streams/events holds")
    before = (project / "feeds" / "active" / "events.yaml").read_text()
    with pytest.raises(FeedError) as err:
        update_feed(storage, registry, "events", {"layer": "bronze"}, keep_existing_data=True)
    assert err.value.message.startswith("feeds update events: layer 'streams' -> 'bronze'")
    assert err.value.hint is not None and err.value.hint.startswith(
        "a stream is a new dataset: declare it as a new feed (lakestream feeds add NAME")
    assert (project / "feeds" / "active" / "events.yaml").read_text() == before


def test_a_topic_change_needs_keep_and_says_what_happens(
        lake: tuple[Storage, FeedRegistry]) -> None:
    storage, registry = lake
    with pytest.raises(FeedError) as err:
        update_feed(storage, registry, "events", {"topic": "t-events-v2"})
    assert err.value.message == (
        "feeds update events: topic 't-events' -> 't-events-v2' contradicts the data: "
        "streams/events holds 6 records in 3 file(s) from 't-events'")
    assert err.value.hint is not None and "--keep-existing-data" in err.value.hint
    assert registry.get("events").topic == "t-events"
    update = update_feed(storage, registry, "events", {"topic": "t-events-v2"},
                         keep_existing_data=True)
    assert FeedRegistry(registry.feeds_dir).get("events").topic == "t-events-v2"
    assert [c.consequence for c in update.kept] == [
        "the data from 't-events' stays; records of 't-events-v2' land beside it, and a day "
        "rebuild (export --date) reads 't-events-v2' only"]


def test_a_time_field_change_names_the_days_to_rebuild(
        lake: tuple[Storage, FeedRegistry]) -> None:
    storage, registry = lake
    assert reasons(storage, registry, "events", time_field="sent_at") == [
        "time_field 'ts' -> 'sent_at' contradicts the data: streams/events holds 6 records in "
        "3 file(s) partitioned by the day of 'ts', and 'sent_at' is not one of its columns"]
    update = update_feed(storage, registry, "events", {"time_field": "sent_at"},
                         keep_existing_data=True)
    assert update.kept[0].consequence == (
        "existing days stay partitioned by 'ts' until their days are rebuilt: lakestream export "
        "--stream events --date 2025-03-08 (and 2 more day(s)); new records go by 'sent_at'")


def test_a_type_the_data_does_not_fit_is_refused_a_widening_is_not(
        lake: tuple[Storage, FeedRegistry]) -> None:
    storage, registry = lake
    spec = {"id": "string", "ts": "timestamp", "email": "string"}
    assert reasons(storage, registry, "events", schema={**spec, "id": "int64"}) == [
        "declaring id: int64 contradicts the data: column 'id' is string in 3 of 3 file(s) of "
        "streams/events"]
    assert reasons(storage, registry, "events", schema={**spec, "new_field": "double"}) == []
    assert reasons(storage, registry, "totals", schema={"k": "string", "n": "double"}) == []
    with pytest.raises(FeedError, match="column 'k' is string in 2 of 2 file"
                       ) as err:  # a table's next version reads the current one: no keep
        update_feed(storage, registry, "totals", {"schema": {"k": "int64", "n": "int"}},
                    keep_existing_data=True)
    assert err.value.hint == ("a table's next version is built from its current one: declare "
                              "the new type in a new feed")
