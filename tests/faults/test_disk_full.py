"""Scenario 5: a full disk, a read-only lake, a file where a folder should be.

The lake lives on a small tmpfs mounted for the test (root only; without
mount rights that test is skipped and the third one still runs). Each fault
must end `ingest --until-idle` with one clear error line and exit status 1,
without a traceback, a partial file or a Kafka offset committed past what the
lake holds; once the fault is gone the next run resumes and every record is
in the lake exactly once.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lakestream.kafka.broker import EmbeddedBroker
from tests.conftest import unique_topic, write_feed
from tests.faults.chaos import Children, parquet_rows, write_config
from tests.faults.conftest import SEED, FaultCounts
from tests.ingest.helpers import generated, send

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def small_lake(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at ``tmp_path/lake``, unmounted after the test."""
    mount = tmp_path / "lake"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); "
                    "test_a_file_where_the_lake_needs_a_folder covers the read-only case")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


class Project:
    """A feed on the session broker, a lake, and `ingest --until-idle` runs."""

    def __init__(self, folder: Path, broker: EmbeddedBroker, children: Children) -> None:
        self.folder, self.children = folder, children
        self.bootstrap = broker.bootstrap_servers
        self.topic = unique_topic("faults-disk")
        self.group = f"faults-disk-{uuid.uuid4().hex[:6]}"
        write_feed(folder / "feeds", "feed", self.topic)
        self.config = write_config(folder, kafka={"bootstrap_servers": self.bootstrap})
        self.lake = folder / "lake"
        self.sent: list[str] = []
        self.runs = 0

    def produce(self, n: int) -> None:
        messages = generated(n, seed=SEED % 1000 + len(self.sent))
        send(self.bootstrap, self.topic, messages)
        self.sent += [json.loads(v)["transaction_id"] for _, v in messages]

    def ingest(self, timeout: float = 120) -> tuple[int, str]:
        self.runs += 1
        return self.children.run(f"ingest-{self.runs}", [
            "--config", str(self.config), "ingest", "--feed", "feed", "--group", self.group,
            "--until-idle", "--idle-timeout", "2"], self.folder, timeout=timeout)

    def assert_failed_cleanly(self, code: int, out: str, why: str) -> None:
        """Exit 1, one clear error naming the cause, no traceback, Kafka not ahead of the lake."""
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert code == 1, out[-3000:]
        assert len(errors) == 1 and why in errors[0], out[-3000:]
        assert "Traceback" not in out and "internal error" not in out
        lake, kafka = self.lake_offsets(), self.kafka_offsets()
        assert all(kafka.get(p, -1) <= lake.get(p, -1) for p in kafka), (kafka, lake)
        assert not list(self.lake.rglob(".tmp-*")), "a partial file was left behind"
        log = self.lake / "streams/feed/_delta_log"
        if not log.is_dir():
            return
        for entry in log.glob("*.json"):
            if entry.stem.isdigit():  # every log entry is whole: one JSON action a line
                [json.loads(line) for line in entry.read_text().splitlines() if line]
        for uri in self.table().file_uris():
            pq.read_metadata(uri)  # every file the log references is whole

    def table(self) -> Any:
        """The dataset's Delta table, opened by delta-rs."""
        from deltalake import DeltaTable

        return DeltaTable(str(self.lake / "streams/feed"))

    def assert_exactly_once(self) -> int:
        ids = Counter(r[0] for r in parquet_rows(self.lake, "streams/feed", "transaction_id"))
        assert ids and ids.most_common(1)[0][1] == 1, "a record landed twice"
        assert set(ids) == set(self.sent), f"{len(set(self.sent) - set(ids))} records missing"
        return sum(ids.values())

    def lake_offsets(self) -> dict[int, int]:
        """Next offset per partition according to the Delta log's application transactions."""
        if not (self.lake / "streams/feed/_delta_log").is_dir():
            return {}
        table = self.table()
        out = {}
        for p in range(4):
            last = table.transaction_version(f"lakestream/{self.topic}/{p}")
            if last is not None:
                out[p] = last + 1
        return out

    def kafka_offsets(self) -> dict[int, int]:
        """Offsets committed to Kafka by the ingest's group."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        try:
            found = consumer.committed([TopicPartition(self.topic, p) for p in range(4)], 10)
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; the filler file."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = 1 << 20
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                size //= 2
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_and_a_read_only_lake_fail_clearly_then_resume(
        tmp_path: Path, small_lake: Path, broker: EmbeddedBroker, children: Children,
        counts: FaultCounts) -> None:
    project = Project(tmp_path, broker, children)
    project.produce(3000)
    code, out = project.ingest()
    assert code == 0, out[-3000:]

    filler = fill(small_lake)
    project.produce(3000)
    project.assert_failed_cleanly(*project.ingest(), why="No space left on device")
    filler.unlink()  # space is back
    code, out = project.ingest()
    assert code == 0, out[-3000:]
    project.assert_exactly_once()

    subprocess.run(["mount", "-o", "remount,ro", str(small_lake)], check=True)
    try:
        project.produce(2000)
        project.assert_failed_cleanly(*project.ingest(), why="Read-only file system")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_lake)], check=True)
    code, out = project.ingest()
    assert code == 0, out[-3000:]
    counts.records["disk full / read-only lake"] += project.assert_exactly_once()
    counts.faults["lake: disk full, read-only"] += 2


def test_a_file_where_the_lake_needs_a_folder_fails_clearly_then_resumes(
        tmp_path: Path, broker: EmbeddedBroker, children: Children,
        counts: FaultCounts) -> None:
    project = Project(tmp_path, broker, children)
    project.produce(1000)
    (tmp_path / "lake").mkdir()
    blocker = tmp_path / "lake" / "streams"
    blocker.write_text("not a folder")  # e.g. a stray file, or a read-only mount elsewhere
    code, out = project.ingest(timeout=60)  # a hang here means the fault was retried forever
    project.assert_failed_cleanly(code, out, why="Not a directory")
    os.unlink(blocker)
    code, out = project.ingest()
    assert code == 0, out[-3000:]
    counts.records["disk full / read-only lake"] += project.assert_exactly_once()
    counts.faults["lake: a file where a folder must be"] += 1
