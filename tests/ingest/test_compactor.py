"""In-band compaction beside the ingest's appends (issue #16)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lakestream.config import S3Settings
from lakestream.ingest.compactor import InBandCompactor
from lakestream.lake.delta_maintenance import partition_files
from lakestream.lake.snapshot import live_files
from lakestream.lake.storage import open_storage
from tests.lake.lakegen import FEED, land


def test_the_compactor_thread_merges_small_files_while_appends_go_on(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    sink = land(storage, 20, per_batch=5, partitions=2, days=("2025-01-15",), delta=True)
    before = len(live_files(storage, FEED.dataset))
    assert before == 40
    compactor = InBandCompactor(storage, [FEED.dataset, "_dlq/feed"], min_files=8,
                                target_bytes=64 << 20, every_s=0.2)
    stop = threading.Event()

    def appends() -> None:  # the ingest's flushes go on meanwhile, into the same day
        while not stop.is_set():
            land(storage, 1, per_batch=5, partitions=2, days=("2025-01-15",), delta=True)

    writer = threading.Thread(target=appends)
    compactor.start()
    writer.start()
    deadline = time.monotonic() + 60
    while compactor.merged == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    writer.join()
    compactor.stop(wait_s=30)
    assert compactor.merged > 0, "no pass merged anything within a minute"
    offsets = sink.data.transaction_versions([f"lakestream/{FEED.topic}/{p}" for p in (0, 1)])
    landed = {p: offsets[f"lakestream/{FEED.topic}/{p}"] for p in (0, 1)}
    rows = sink.data.table().to_pyarrow_dataset().to_table(
        columns=["_kafka_partition", "_kafka_offset"]).to_pylist()
    pairs = [(r["_kafka_partition"], r["_kafka_offset"]) for r in rows]
    assert len(pairs) == len(set(pairs)), "a record twice"
    assert set(pairs) == {(p, o) for p in (0, 1) for o in range((landed[p] or 0) + 1)}
    small = sum(1 for files in partition_files(sink.data).values() for _ in files)
    assert small < before + (landed[0] or 0) // 5, "compaction left every file"


def test_stopping_mid_pass_commits_nothing_half(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    land(storage, 20, per_batch=5, partitions=1, days=("2025-01-15",), delta=True)
    compactor = InBandCompactor(storage, [FEED.dataset], min_files=8, target_bytes=64 << 20)
    compactor.stop()  # stopped before the pass: it compacts nothing
    assert compactor.run_once() == 0
    assert len(live_files(storage, FEED.dataset)) == 20
    fresh = InBandCompactor(storage, [FEED.dataset], min_files=8, target_bytes=64 << 20)
    assert fresh.run_once() == 20 and len(live_files(storage, FEED.dataset)) == 1
