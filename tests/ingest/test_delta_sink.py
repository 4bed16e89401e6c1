"""The Delta lake sink: rows and dead letters exactly once, fencing, types, replays."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from lakestream.config import S3Settings
from lakestream.errors import FencedError
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink, Run, split_round
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import Storage, open_storage
from tests.ingest.helpers import event

FEED = Feed(name="feed", topic="t", pipeline="test", schema="transactions",
            time_field="event_time", required=("transaction_id", "event_time", "user.user_id"))


@pytest.fixture
def lake(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "lake"), S3Settings())


def _batch(messages: list[tuple[bytes, bytes]], first: int) -> tuple[list[bytes], list[bytes],
                                                                        list[int], list[int]]:
    keys = [k for k, _ in messages]
    values = [v for _, v in messages]
    offsets = list(range(first, first + len(messages)))
    return values, keys, offsets, [1_741_600_000_000] * len(messages)


def _rows(lake: Storage, rel: str, column: str) -> list[object]:
    table = DeltaDataset(lake, rel).table()
    if table is None:
        return []
    return sorted(table.to_pyarrow_dataset().to_table(columns=[column]).column(column)
                  .to_pylist())


def test_rows_and_dead_letters_land_in_their_tables_with_the_offsets(lake: Storage) -> None:
    sink = DeltaLakeSink(lake, FEED)
    assert sink.recover("t", 0) is None
    good = [event(f"a{i}", f"2026-12-0{1 + i % 3}T10:00:00Z") for i in range(6)]
    bad = [(b"U1", b"{not json"), (b"U1", json.dumps({"event_time": "2026-12-01T00:00:00Z"})
                                   .encode())]
    stats = sink.write("t", 0, *_batch(good + bad, 0))
    assert (stats.records, stats.rejected) == (6, 2)
    assert _rows(lake, "streams/feed", "transaction_id") == [f"a{i}" for i in range(6)]
    assert _rows(lake, "_dlq/feed", "_kafka_offset") == [6, 7]
    assert DeltaLakeSink(lake, FEED).recover("t", 0) == 8
    files = DeltaDataset(lake, "streams/feed").table().file_uris()
    assert {f.split("/streams/feed/")[1].rsplit("/", 1)[0] for f in files} == {
        f"year=2026/month=12/day=0{d}" for d in (1, 2, 3)}


def test_a_crash_between_the_two_commits_replays_without_doubling(lake: Storage) -> None:
    messages = [event("a0", "2026-12-01T10:00:00Z"), (b"U1", b"garbage"),
                event("a1", "2026-12-01T11:00:00Z")]
    crashed = DeltaLakeSink(lake, FEED)
    crashed.recover("t", 0)
    values, keys, offsets, times = _batch(messages, 0)
    result = crashed.decoder.decode(values)
    from lakestream.ingest.sink import _keys

    # the dead letters committed, then the process died before the rows' commit
    run = Run(0, values, keys, offsets, times)
    crashed._commit_dead_letters("t", split_round(result, [run]), {0: _keys(keys)})
    restarted = DeltaLakeSink(lake, FEED)
    assert restarted.recover("t", 0) is None, "the rows table is the resume point"
    restarted.write("t", 0, values, keys, offsets, times)
    assert _rows(lake, "_dlq/feed", "_kafka_offset") == [1]
    assert _rows(lake, "streams/feed", "transaction_id") == ["a0", "a1"]


def test_a_writer_that_lost_its_partition_is_fenced(lake: Storage) -> None:
    stale, owner = DeltaLakeSink(lake, FEED), DeltaLakeSink(lake, FEED)
    stale.recover("t", 0)
    owner.recover("t", 0)
    batch = _batch([event(f"a{i}", "2026-12-01T10:00:00Z") for i in range(5)], 0)
    owner.write("t", 0, *batch)
    shorter = _batch([event(f"a{i}", "2026-12-01T10:00:00Z") for i in range(3)], 0)
    with pytest.raises(FencedError):  # offsets 0..2 on top of nothing: the table holds 0..4
        stale.write("t", 0, *shorter)
    version = DeltaDataset(lake, "streams/feed").table().version()
    # the same batch as the owner's (as a retry whose first commit landed): nothing twice
    stale.write("t", 0, *batch)
    assert DeltaDataset(lake, "streams/feed").table().version() == version
    assert _rows(lake, "streams/feed", "transaction_id") == [f"a{i}" for i in range(5)]


def test_a_field_keeps_the_type_the_table_holds_whatever_batch_it_comes_in(
        lake: Storage) -> None:
    first = DeltaLakeSink(lake, FEED)
    first.recover("t", 0)
    first.write("t", 0, *_batch([event("a0", "2026-12-01T10:00:00Z", score=3)], 0))
    restarted = DeltaLakeSink(lake, FEED)  # types come back from the table's schema
    restarted.recover("t", 0)
    stats = restarted.write("t", 0, *_batch([event("a1", "2026-12-01T10:00:00Z",
                                                   score="high")], 1))
    assert stats.rejected == 1
    reasons = DeltaDataset(lake, "_dlq/feed").table().to_pyarrow_dataset().to_table(
        columns=["reason"]).column("reason").to_pylist()
    assert len(reasons) == 1 and "score" in reasons[0], reasons
    schema = pa.schema(DeltaDataset(lake, "streams/feed").table().schema().to_arrow())
    assert pa.types.is_integer(schema.field("score").type)


def test_a_fraction_for_an_int64_column_widens_it_never_truncated(lake: Storage) -> None:
    """2.5 where the table holds int64 would be cast to 2: the table is rewritten once
    with the column as double (one commit, offsets and protocol kept), then appended."""
    sink = DeltaLakeSink(lake, FEED)
    sink.recover("t", 0)
    sink.write("t", 0, *_batch([event("a0", "2026-12-01T10:00:00Z", score=3)], 0))
    stats = sink.write("t", 0, *_batch([event("a1", "2026-12-02T10:00:00Z", score=2.5),
                                        event("a2", "2026-12-02T10:00:00Z", score=4)], 1))
    assert (stats.records, stats.rejected) == (2, 0)
    data = DeltaDataset(lake, "streams/feed")
    table = data.table().to_pyarrow_dataset().to_table()
    scores = dict(zip(table.column("transaction_id").to_pylist(),
                      table.column("score").to_pylist(), strict=True))
    assert scores == {"a0": 3.0, "a1": 2.5, "a2": 4.0}, "no value truncated, none lost"
    assert pa.schema(data.table().schema().to_arrow()).field("score").type == pa.float64()
    protocol = data.table().protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert data.next_offset("t", 0) == 3
    restarted = DeltaLakeSink(lake, FEED)
    assert restarted.recover("t", 0) == 3


def test_a_derived_stream_drops_replayed_source_records_across_restarts(lake: Storage) -> None:
    feed = Feed(name="derived", topic="d", pipeline="test", schema="transactions",
                time_field="event_time", required=("transaction_id", "event_time"),
                dedupe_source=True)

    def derived(i: int) -> tuple[bytes, bytes]:
        return event(f"s{i}", "2026-12-01T10:00:00Z", _source_partition=0, _source_offset=i)

    sink = DeltaLakeSink(lake, feed)
    sink.recover("d", 0)
    sink.write("d", 0, *_batch([derived(i) for i in range(5)], 0))
    again = DeltaLakeSink(lake, feed)  # `process` replayed source offsets 3..6 after a crash
    assert again.recover("d", 0) == 5
    again.write("d", 0, *_batch([derived(i) for i in range(3, 7)], 5))
    assert _rows(lake, "streams/derived", "transaction_id") == [f"s{i}" for i in range(7)]


def _derived_feed() -> Feed:
    return Feed(name="derived", topic="d", pipeline="test", schema="transactions",
                time_field="event_time", required=("transaction_id", "event_time"),
                dedupe_source=True)


def _record(name: str, source_offset: int) -> tuple[bytes, bytes]:
    return event(name, "2026-12-01T10:00:00Z", _source_partition=0,
                 _source_offset=source_offset)


def test_several_records_of_one_source_offset_land_once_each_across_replays(
        lake: Storage) -> None:
    """A stream fed by INSERT INTO as well gets two records of one source event: both land,
    and a replay that starts between them (or before) adds neither again."""
    sink = DeltaLakeSink(lake, _derived_feed())
    sink.recover("d", 0)
    sink.write("d", 0, *_batch([_record("a0", 0), _record("b0", 0), _record("a1", 1)], 0))
    again = DeltaLakeSink(lake, _derived_feed())
    assert again.recover("d", 0) == 3
    # `process` replayed source offsets 0..2 after a crash: the same records, same order
    again.write("d", 0, *_batch([_record("a0", 0), _record("b0", 0), _record("a1", 1),
                                 _record("b1", 1), _record("a2", 2)], 3))
    third = DeltaLakeSink(lake, _derived_feed())
    third.recover("d", 0)
    third.write("d", 0, *_batch([_record("a2", 2), _record("b2", 2)], 8))
    assert _rows(lake, "streams/derived", "transaction_id") == ["a0", "a1", "a2", "b0", "b1",
                                                                "b2"]


def test_a_batch_of_only_bad_records_still_moves_the_offsets(lake: Storage) -> None:
    sink = DeltaLakeSink(lake, FEED)
    sink.recover("t", 2)
    sink.write("t", 2, *_batch([(b"k", b"nope"), (b"k", b"[]")], 40))
    assert DeltaLakeSink(lake, FEED).recover("t", 2) == 42
    assert _rows(lake, "_dlq/feed", "_kafka_offset") == [40, 41]
    assert _rows(lake, "streams/feed", "transaction_id") == []


def _run(partition: int, messages: list[tuple[bytes, bytes]], first: int) -> Run:
    return Run(partition, *_batch(messages, first))


def test_a_round_of_several_partitions_is_one_commit_per_table(lake: Storage) -> None:
    sink = DeltaLakeSink(lake, FEED)
    for p in range(3):
        sink.recover("t", p)
    runs = [_run(p, [event(f"p{p}-{i}", f"2026-12-0{1 + i % 2}T10:00:00Z") for i in range(4)]
                 + [(b"U", b"{broken")], 10 * p) for p in range(3)]
    data, dlq = DeltaDataset(lake, "streams/feed"), DeltaDataset(lake, "_dlq/feed")
    result = sink.write_round("t", runs)
    assert (result.stats.records, result.stats.rejected, result.fenced) == (12, 3, {})
    assert data.table().version() == 1 and dlq.table().version() == 1  # 0 = CREATE TABLE
    assert _rows(lake, "streams/feed", "transaction_id") == sorted(
        f"p{p}-{i}" for p in range(3) for i in range(4))
    offsets = DeltaDataset(lake, "streams/feed").table().to_pyarrow_dataset().to_table(
        columns=["_kafka_partition", "_kafka_offset", "transaction_id"]).to_pylist()
    assert sorted((r["_kafka_partition"], r["_kafka_offset"]) for r in offsets) == [
        (p, 10 * p + i) for p in range(3) for i in range(4)]
    assert all(r["transaction_id"].startswith(f"p{r['_kafka_partition']}-") for r in offsets)
    assert _rows(lake, "_dlq/feed", "_kafka_offset") == [4, 14, 24]
    restarted = DeltaLakeSink(lake, FEED)
    assert [restarted.recover("t", p) for p in range(3)] == [5, 15, 25]


def test_a_round_drops_only_the_partition_another_writer_took(lake: Storage) -> None:
    stale, owner = DeltaLakeSink(lake, FEED), DeltaLakeSink(lake, FEED)
    for p in (0, 1):
        stale.recover("t", p)
    owner.recover("t", 1)
    owner.write("t", 1, *_batch([event("o0", "2026-12-01T10:00:00Z"), (b"U", b"[1")], 0))
    runs = [_run(0, [event("s0", "2026-12-01T10:00:00Z"), (b"U", b"nope")], 0),
            _run(1, [event("s1", "2026-12-01T10:00:00Z"), event("s2", "2026-12-01T10:00:00Z"),
                     (b"U", b"nope")], 0)]
    result = stale.write_round("t", runs)
    assert list(result.fenced) == [1] and "t[1]" in result.fenced[1]
    assert (result.stats.records, result.stats.rejected) == (1, 1)
    assert _rows(lake, "streams/feed", "transaction_id") == ["o0", "s0"]
    assert _rows(lake, "_dlq/feed", "_kafka_offset") == [1, 1]  # one per partition
    assert stale.next_offset[("t", 0)] == 2 and stale.next_offset[("t", 1)] is None
    # a retry of the same round (its first commit landed, the writer saw a failure):
    # partition 0 is in the table already, nothing lands twice
    versions = (DeltaDataset(lake, "streams/feed").table().version(),
                DeltaDataset(lake, "_dlq/feed").table().version())
    again = DeltaLakeSink(lake, FEED)
    again.recover("t", 0)
    again.next_offset[("t", 0)] = None  # the position it had before the lost response
    again._dlq_last[("t", 0)] = None
    again.recover("t", 1)
    retry = again.write_round("t", [runs[0]])
    assert retry.fenced == {}
    assert (DeltaDataset(lake, "streams/feed").table().version(),
            DeltaDataset(lake, "_dlq/feed").table().version()) == versions
    assert _rows(lake, "streams/feed", "transaction_id") == ["o0", "s0"]


def test_a_new_field_is_typed_once_for_the_whole_round(lake: Storage) -> None:
    """Partitions decoded together: a field new to the table gets one type in the round,
    the records of another partition that disagree are dead letters."""
    sink = DeltaLakeSink(lake, FEED)
    for p in (0, 1):
        sink.recover("t", p)
    result = sink.write_round("t", [
        _run(0, [event("a0", "2026-12-01T10:00:00Z", score=3)], 0),
        _run(1, [event("b0", "2026-12-01T10:00:00Z", score="high"),
                 event("b1", "2026-12-01T10:00:00Z", score=5)], 0)])
    assert (result.stats.records, result.stats.rejected) == (2, 1)
    schema = pa.schema(DeltaDataset(lake, "streams/feed").table().schema().to_arrow())
    assert pa.types.is_integer(schema.field("score").type)
    assert _rows(lake, "streams/feed", "transaction_id") == ["a0", "b1"]
