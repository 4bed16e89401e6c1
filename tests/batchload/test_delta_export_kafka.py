"""``lakestream export`` into Delta datasets from a real Tansu broker: append, day rebuild.

Every dataset the export creates is a Delta table: every path of the export
writes and reads the log.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakestream.api import Lakestream
from lakestream.lake.delta import DeltaDataset, app_id
from tests.batchload.helpers import api_for, bootstrap, scan_while
from tests.conftest import s3_env, unique_topic, write_feed
from tests.ingest.helpers import event, generated, send

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 3, 10)  # the generator's "now": most events fall on it
DAY_MS = int(dt.datetime(2025, 3, 10, 9, tzinfo=dt.UTC).timestamp() * 1000)
STRICT = ["transaction_id", "event_time", "user.user_id", "card_last4"]


def _produce_on_day(servers: str, topic: str, values: list[bytes]) -> None:
    """Produce ``values`` with a Kafka timestamp on DAY (their dead-letter day)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": servers})
    for value in values:
        producer.produce(topic, value, key=b"bad", timestamp=DAY_MS)
    assert producer.flush(30) == 0


def _feed_lake(workdir: Path, n: int, seed: int, **env: str) -> tuple[Lakestream, str, list[
        tuple[bytes | None, bytes]]]:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    api = api_for(workdir, **env)
    messages = [*generated(n, seed=seed), event("t-late", "2025-03-09T23:59:00Z")]
    send(bootstrap(workdir), topic, messages)
    _produce_on_day(bootstrap(workdir), topic, [b"{not json", b'{"amount": 1}'])
    return api, topic, messages


def _table(api: Lakestream, rel: str = "streams/feed") -> Any:
    return DeltaDataset(api.storage, rel).table()


def _day(api: Lakestream, rel: str = "streams/feed",
         columns: tuple[str, ...] = ("transaction_id", "_kafka_partition", "_kafka_offset")
         ) -> list[tuple[Any, ...]]:
    """The day's rows (these columns), sorted, from a fresh snapshot."""
    data = _table(api, rel).to_pyarrow_dataset().to_table()
    wanted = f"{DAY.year:04d}-{DAY.month:02d}-{DAY.day:02d}"
    rows = [tuple(r[c] for c in columns) for r in data.to_pylist()
            if f"{r['year']}-{r['month']}-{r['day']}" == wanted]
    return sorted(rows, key=json.dumps)


def _offsets(api: Lakestream, topic: str) -> dict[str, int | None]:
    return {f"{rel}:{p}": _table(api, rel).transaction_version(app_id(topic, p))
            for rel in ("streams/feed", "_dlq/feed") for p in range(4)}


def _count(api: Lakestream) -> Callable[[], int]:
    """Counts the rows of a fresh snapshot (a new DeltaTable each call)."""
    from deltalake import DeltaTable

    data = DeltaDataset(api.storage, "streams/feed")
    return lambda: DeltaTable(data.uri, storage_options=data.options).to_pyarrow_dataset(
    ).count_rows()


def test_a_delta_day_is_rebuilt_from_kafka_exactly_once(workdir: Path) -> None:
    api, topic, messages = _feed_lake(workdir, 1500, seed=31)

    [appended] = api.batch.export(stream="feed")
    assert appended.records == len(messages)
    assert sum(o["last"] - o["first"] + 1 for o in appended.offsets.values()) == len(messages) + 2
    expected = sorted(json.loads(v)["transaction_id"] for _, v in messages
                      if json.loads(v)["event_time"].startswith("2025-03-10"))
    ingested, letters = _day(api), _day(api, "_dlq/feed", ("reason", "_kafka_offset"))
    assert sorted(r[0] for r in ingested) == expected and len(letters) == 2
    offsets, version = _offsets(api, topic), _table(api).version()

    [_, rebuilt] = api.batch.export(stream="feed", day=DAY)

    report = rebuilt.rebuild
    assert report is not None and report.mode == "delta"
    assert (report.records_before, report.records_after) == (len(expected), len(expected))
    assert _day(api) == ingested and _day(api, "_dlq/feed", ("reason", "_kafka_offset")) == letters
    assert _table(api).version() == version + 1
    assert _offsets(api, topic) == offsets
    exported = json.loads((workdir / "lake/streams/feed/_exports.json").read_text())
    assert exported["last_export"]["mode"] == "day"

    more = generated(200, seed=32)  # the ingest's next export continues where the log is
    send(bootstrap(workdir), topic, more)
    assert api.batch.export(stream="feed")[0].records == 200
    ids = [r["transaction_id"] for r in _table(api).to_pyarrow_dataset().to_table(
        columns=["transaction_id"]).to_pylist()]
    assert len(ids) == len(messages) + 200 and Counter(ids).most_common(1)[0][1] == 1


@pytest.mark.parametrize("where", ["local", "s3"])
def test_readers_of_a_delta_day_see_it_before_or_after_a_rebuild(
        where: str, workdir: Path, request: pytest.FixtureRequest) -> None:
    env: dict[str, str] = {}
    if where == "s3":
        server, bucket = request.getfixturevalue("seaweedfs"), request.getfixturevalue("s3_bucket")
        env = {**s3_env(server), "LAKESTREAM_LAKE_ROOT": f"s3://{bucket}/lake"}
    api, topic, _ = _feed_lake(workdir, 800, seed=33, **env)
    api.batch.export(stream="feed")
    before = _table(api).to_pyarrow_dataset().count_rows()
    write_feed(workdir / "feeds", "feed", topic, required=STRICT)  # card_last4 required now
    strict = api_for(workdir, **env)

    seen = scan_while(lambda: [strict.batch.exports.rebuild_day("feed", DAY) for _ in range(2)],
                      _count(strict))

    after = _table(strict).to_pyarrow_dataset().count_rows()
    assert after < before
    assert set(seen) <= {before, after}, Counter(seen)
    coordinates = ["_kafka_partition", "_kafka_offset"]
    rows, dead = (_table(strict, rel).to_pyarrow_dataset().to_table(columns=coordinates)
                  .to_pylist() for rel in ("streams/feed", "_dlq/feed"))
    assert len(dead) == 2 + before - after  # the day's rows without card_last4 moved there
    assert Counter(tuple(r.values()) for r in rows + dead).most_common(1)[0][1] == 1
