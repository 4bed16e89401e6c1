"""The Beam export's steps without Beam: batches commit exactly once from the log's offsets."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from lakestream.batchload.beam import Batch, next_offsets, split_chunk, write_batch
from lakestream.cli import main
from lakestream.config import S3Settings
from lakestream.errors import LakestreamError, TerminalError
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.kafka.buffer import PartitionBuffer
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import open_storage
from tests.ingest.helpers import generated

FEED = Feed(name="feed", topic="tx", schema="transactions", time_field="event_time",
            required=("transaction_id", "event_time", "user.user_id"))


def _chunk(messages: list[tuple[bytes | None, bytes]], first: int = 0) -> PartitionBuffer:
    n = len(messages)
    return PartitionBuffer("tx", 0, [v for _, v in messages], [k for k, _ in messages],
                           list(range(first, first + n)), [1_741_600_000_000] * n)


def _sink(tmp_path: Path) -> DeltaLakeSink:
    return DeltaLakeSink(open_storage(str(tmp_path / "lake"), S3Settings()), FEED)


def _offsets(tmp_path: Path) -> list[int]:
    table = DeltaDataset(open_storage(str(tmp_path / "lake"), S3Settings()), FEED.dataset).table()
    return sorted(table.to_pyarrow_dataset().to_table(columns=["_kafka_offset"])
                  .column("_kafka_offset").to_pylist())


def test_a_commit_fenced_by_another_writer_resumes_from_the_new_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = generated(50, seed=6)
    sink, other = _sink(tmp_path), _sink(tmp_path)
    real_write = sink.write
    calls: list[int] = []  # the first offset of each write

    def racing_write(*args: Any) -> Any:
        if not calls:  # another writer commits between our log read and our commit
            other.recover("tx", 0)
            other.write("tx", 0, *_columns(_chunk(messages[:20])))
        calls.append(args[4][0])
        return real_write(*args)

    monkeypatch.setattr(sink, "write", racing_write)
    assert write_batch(sink, Batch("feed", None, _chunk(messages))).records == 30
    assert calls == [0, 20]
    assert _offsets(tmp_path) == list(range(50))


def test_a_batch_after_a_missing_one_is_refused(tmp_path: Path) -> None:
    messages = generated(20, seed=7)
    with pytest.raises(TerminalError, match="an earlier batch is not in the lake"):
        write_batch(_sink(tmp_path), Batch("feed", 10, _chunk(messages[10:], first=10)))
    assert not (tmp_path / "lake/streams/feed").exists()


def test_a_batch_writes_only_what_the_log_does_not_hold_yet(tmp_path: Path) -> None:
    messages = generated(100, seed=8)
    other, sink = _sink(tmp_path), _sink(tmp_path)
    other.recover("tx", 0)  # e.g. a running ingest that got to the first 40 records first
    other.write("tx", 0, *_columns(_chunk(messages[:40])))

    assert write_batch(sink, Batch("feed", None, _chunk(messages))).records == 60
    assert write_batch(sink, Batch("feed", None, _chunk(messages))).records == 0
    assert _offsets(tmp_path) == list(range(100))
    assert next_offsets(sink.data.storage, FEED, [0, 1]) == {0: 100, 1: None}
    with pytest.raises(TerminalError, match="an earlier batch is not in the lake"):
        write_batch(sink, Batch("feed", 120, _chunk(generated(5, seed=9), first=120)))


def test_a_dataset_written_before_delta_is_not_appended_to(tmp_path: Path) -> None:
    folder = tmp_path / "lake/streams/feed/year=2025/month=03/day=10"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"_kafka_offset": [0]}), folder / "tx-0-0-0.parquet")
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    with pytest.raises(TerminalError, match="written before the lake moved to Delta") as caught:
        next_offsets(storage, FEED, [0])
    assert isinstance(caught.value, LakestreamError)  # TerminalError is a mixin: no hint
    assert "lakestream lake upgrade" in str(caught.value.hint)
    assert not (tmp_path / "lake/streams/feed/_delta_log").exists()


def test_chunks_are_split_by_bytes_keeping_every_message_in_order() -> None:
    chunk = _chunk([(None, b"x" * 40)] * 7)
    pieces = list(split_chunk(chunk, 100))
    assert [len(p) for p in pieces] == [2, 2, 2, 1]
    assert [o for p in pieces for o in p.offsets] == chunk.offsets
    assert list(split_chunk(chunk, 10_000)) == [chunk]


@pytest.mark.skipif(importlib.util.find_spec("apache_beam") is not None,
                    reason="Apache Beam is installed here")
def test_runner_beam_without_beam_installed_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lakestream.yaml"
    config.write_text(yaml.safe_dump({"lake": {"root": str(tmp_path / "lake")},
                                      "feeds_dir": str(tmp_path / "feeds")}))
    assert main(["--config", str(config), "export", "--all", "--runner", "beam"]) == 1
    assert "pip install 'lakestream[beam]'" in capsys.readouterr().err
    assert main(["--config", str(config), "export", "--all", "--beam-option", "a=b"]) == 2
    assert "add --runner beam" in capsys.readouterr().err


def _columns(chunk: PartitionBuffer) -> tuple[list[Any], ...]:
    return chunk.values, chunk.keys, chunk.offsets, chunk.timestamps
