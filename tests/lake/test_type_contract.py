"""Types are a contract: the lake, the dead letters and the column types do not depend on batching.

In-process, no broker: the ingest's own sink lands a stream of well- and badly
typed records cut into batches (and sinks restarted, so the committed types come
back from the table's schema); a day rebuild then reads the same stream from a scripted
source.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.lake.reader import LakeReader
from lakestream.lake.storage import Storage
from lakestream.rebuild.day import DayRebuild, RebuildReport
from tests.lake.lakegen import local_lake

FEED = Feed(name="orders", topic="orders", schema={"id": "string", "total": "double"},
            time_field="at", required=("id", "at"))
DAYS = ("2025-05-01", "2025-05-02", "2025-05-03")
KAFKA_TIME = 1746093600000  # 2025-05-01T10:00Z
SAME, NEXT, RESTART = 0, 1, 2  # what comes between two records: same batch, next batch, new sink

Observed = tuple[list[dict[str, Any]], list[tuple[Any, ...]], dict[str, str]]

_values = {
    "total": st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 12.5]), st.just("12.50"),
                       st.booleans(), st.none(), st.just({"x": 1})),
    "qty": st.one_of(st.integers(0, 9), st.just(2.5), st.just("7"), st.none(), st.just([1])),
    # no `{}`: see test_an_empty_object_types_nothing_and_a_rebuild_judges_it_by_the_table
    "note": st.one_of(st.sampled_from(["a", "b", "2025-05-01T10:00:00Z"]), st.integers(0, 2),
                      st.none()),
    "meta": st.one_of(st.fixed_dictionaries({}, optional={
        "a": st.sampled_from([1, 1.5, "s"]), "b": st.booleans()}).filter(bool),
        st.just("flat"), st.none()),
    "tags": st.one_of(st.lists(st.sampled_from([1, 2]), max_size=2),
                      st.lists(st.just("t"), max_size=2), st.just(5)),
}
_record = st.fixed_dictionaries(
    {"at": st.sampled_from([*DAYS, None])}, optional=_values
).map(lambda r: {**r, "at": f"{r['at']}T10:00:00Z"} if r["at"] else r)
_message = st.one_of(
    _record.map(lambda r: ("object", r)),
    st.sampled_from([b'{"id": ', b"[1]", b"", b'{"at": "2025-05-01T10:00:00Z"}',
                     b'{"id": 7, "at": "2025-05-02T10:00:00Z"}', b'{"id": "x", "at": "soon"}',
                     b'{"id": "y", "at": "2025-05-03T10:00:00Z", "tags": [1, "a"]}']).map(
        lambda raw: ("raw", raw)),
)


def encode(messages: list[tuple[str, Any]]) -> list[bytes]:
    """Message bytes; every object gets a unique id."""
    out = []
    for i, (kind, body) in enumerate(messages):
        out.append(json.dumps({"id": f"r{i}", **body}).encode() if kind == "object" else body)
    return out


def new_sink(storage: Storage) -> DeltaLakeSink:
    sink = DeltaLakeSink(storage, FEED)
    sink.recover(FEED.topic, 0)
    return sink


def land(storage: Storage, values: list[bytes], cuts: list[int]) -> None:
    """Commit ``values`` (offsets 0..n-1 of partition 0) in the batches ``cuts`` describe."""
    sink, start = new_sink(storage), 0
    for i in range(1, len(values) + 1):
        between = cuts[i - 1] if i < len(values) else NEXT
        if between == SAME:
            continue
        sink.write(FEED.topic, 0, values[start:i], [b"k"] * (i - start), list(range(start, i)),
                   [KAFKA_TIME] * (i - start))
        start = i
        if between == RESTART:
            sink = new_sink(storage)


def observe(storage: Storage) -> Observed:
    """The lake's rows, the dead letters and the column types, through `lakestream query`."""
    reader = LakeReader(storage, feeds=[FEED])
    try:
        columns, rows = reader.query("SELECT * FROM orders ORDER BY _kafka_offset")
        dead = reader.query("SELECT _kafka_offset, reason, raw FROM dlq_orders ORDER BY 1")[1]
        empty = reader.con.sql("SELECT * FROM orders LIMIT 0").to_arrow_table()
        types = {f.name: _named(f.type) for f in empty.schema}
    finally:
        reader.close()
    return [{c: _valued(v) for c, v in zip(columns, r, strict=True)} for r in rows], dead, types


def _named(kind: pa.DataType) -> str:
    """A type, struct fields sorted by name (DuckDB orders them as its files come)."""
    if pa.types.is_struct(kind):
        fields = sorted((kind.field(i) for i in range(kind.num_fields)), key=lambda f: f.name)
        return "struct<" + ", ".join(f"{f.name}: {_named(f.type)}" for f in fields) + ">"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{_named(kind.value_type)}>"
    return str(kind)


def _valued(value: Any) -> Any:
    """An object none of whose fields has a value reads as null.

    The one representation that depends on batching (docs/operations.md): ``{}``
    lands as null when no record of its batch gave the object a field yet (Parquet
    has no struct without fields), and as an object of nulls when one did.
    """
    if isinstance(value, dict):
        fields = {k: _valued(v) for k, v in value.items()}
        return None if all(v is None for v in fields.values()) else fields
    return value


class Replay:
    """The stream as a Kafka scan would hand it to a day rebuild, in chunks of ``size``."""

    def __init__(self, values: list[bytes], size: int) -> None:
        self.values, self.size = values, size

    def __call__(self, ranges: dict[int, tuple[int, int]]) -> Iterator[PartitionBuffer]:
        first, last = ranges.get(0, (0, -1))
        for lo in range(first, last + 1, self.size):
            hi = min(lo + self.size, last + 1)
            values: list[bytes | None] = list(self.values[lo:hi])
            yield PartitionBuffer(FEED.topic, 0, values, [b"k"] * (hi - lo),
                                  list(range(lo, hi)), [KAFKA_TIME] * (hi - lo))


def rebuild(storage: Storage, values: list[bytes], day: str, chunk: int) -> RebuildReport:
    return DayRebuild(storage, FEED, dt.date.fromisoformat(day)).run(Replay(values, chunk))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_message, min_size=1, max_size=24).flatmap(lambda ms: st.tuples(
    st.just(ms), st.lists(st.sampled_from([SAME, SAME, NEXT, RESTART]), min_size=len(ms) - 1,
                          max_size=len(ms) - 1))),
       st.sampled_from(DAYS), st.integers(1, 7))
def test_rows_dead_letters_and_types_do_not_depend_on_the_cut(
        stream: tuple[list[tuple[str, Any]], list[int]], day: str, chunk: int) -> None:
    messages, cuts = stream
    values = encode(messages)
    note(f"values={values!r} cuts={cuts!r}")
    with TemporaryDirectory() as whole, TemporaryDirectory() as cut:
        one_batch, in_pieces = local_lake(Path(whole)), local_lake(Path(cut))
        land(one_batch, values, [SAME] * (len(values) - 1))
        land(in_pieces, values, cuts)
        expected = observe(one_batch)
        rows, dead, _ = expected

        assert observe(in_pieces) == expected
        assert sorted([r["_kafka_offset"] for r in rows] + [d[0] for d in dead]) == \
            list(range(len(values)))  # every record is in the lake or the DLQ, once

        report = rebuild(in_pieces, values, day, chunk)
        rows_after, dead_after, types_after = observe(in_pieces)
        assert (rows_after, types_after) == (rows, expected[2])
        # the same dead letters; a rebuild judges against the table's types as they are
        # now, so a reason may name another misfit of the record, or its type as it is now
        assert [(o, raw) for o, why, raw in dead_after if why] == [(o, raw) for o, _, raw in dead]
        assert report.read == report.records_after + report.dead_letters
        assert report.records_after == sum(r["at"].date().isoformat() == day for r in rows)
        assert report.new_dead_letters == 0


def test_an_empty_object_types_nothing_and_a_rebuild_judges_it_by_the_table(
        tmp_path: Path) -> None:
    """``{}`` has no field a Delta table can store: landing, it types nothing (like null),
    in any cut. A later record types the column; a day rebuild then judges the ``{}``
    against that type and moves it to the dead letters, counted: no record is lost."""
    values = [b'{"id": "r0", "at": "2025-05-01T10:00:00Z", "note": {}}',
              b'{"id": "r1", "at": "2025-05-01T10:00:00Z", "note": "a"}']
    for cuts in ([SAME], [NEXT], [RESTART]):
        storage = local_lake(tmp_path / str(cuts[0]))
        land(storage, values, cuts)
        rows, dead, types = observe(storage)
        assert [(r["id"], r["note"]) for r in rows] == [("r0", None), ("r1", "a")]
        assert dead == [] and types["note"] == "string"
    report = rebuild(storage, values, DAYS[0], 1)
    assert (report.read, report.records_after, report.new_dead_letters) == (2, 1, 1)
    rows, dead, _ = observe(storage)
    assert [r["id"] for r in rows] == ["r1"]
    assert [(o, why) for o, why, _ in dead] == [(0, "field note: expected string, found object")]


def test_the_types_of_the_issue_stream_hold_in_every_cut(tmp_path: Path) -> None:
    """The issue's stream: numbers, then 100 string totals in a batch of their own."""
    numbers = [{"at": f"{DAYS[i % 3]}T10:00:00Z", "total": i + 0.5} for i in range(20)]
    strings = [{"at": f"{DAYS[i % 3]}T10:00:00Z", "total": "12.50"} for i in range(5)]
    values = encode([("object", r) for r in numbers + strings])
    storage = local_lake(tmp_path)
    land(storage, values, [SAME] * 19 + [RESTART] + [SAME] * 4)
    rows, dead, types = observe(storage)
    assert types["total"] == "double" and len(rows) == 20
    assert [(o, r) for o, r, _ in dead] == [
        (o, "field total: expected double, found string") for o in range(20, 25)]


def test_a_partition_handed_over_brings_the_types_its_writer_committed(tmp_path: Path) -> None:
    storage = local_lake(tmp_path)
    later = DeltaLakeSink(storage, FEED)  # started before anything was committed
    first = new_sink(storage)
    first.write(FEED.topic, 0, encode([("object", {"at": f"{DAYS[0]}T10:00:00Z", "qty": 2})]),
                [b"k"], [0], [KAFKA_TIME])

    later.recover(FEED.topic, 0)

    result = later.decoder.decode([json.dumps({"id": "r1", "at": f"{DAYS[0]}T10:00:00Z",
                                               "qty": "7"}).encode()])
    assert result.rejected == [(0, "field qty: expected int64, found string")]
