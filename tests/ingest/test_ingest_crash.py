"""Real processes: kill -9 of `lakestream ingest` mid-batch, and two consumers in one group."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lakestream.kafka.client import ensure_topics
from lakestream.kafka.producer import produce
from tests.conftest import subprocess_env, unique_topic, write_feed
from tests.ingest.helpers import generated, lake_rows, transaction_ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAKESTREAM = [sys.executable, "-m", "lakestream"]


def _small_batches(workdir: Path) -> Path:
    config = yaml.safe_load((workdir / "lakestream.yaml").read_text())
    config["lake"].update(flush_interval_s=0.3, max_batch_records=400)
    path = workdir / "crash.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _ingest_cmd(config: Path, *extra: str) -> list[str]:
    return [*LAKESTREAM, "--config", str(config), "ingest", "--feed", "feed", "--group", "crash",
            *extra]


def test_kill_9_mid_batch_then_restart_leaves_every_record_once(workdir: Path) -> None:
    """Events keep arriving while the consumer is killed -9 at random moments, 4+ times."""
    rng = random.Random(20261122)
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    config = _small_batches(workdir)
    ensure_topics(_bootstrap(workdir), [topic], 4)
    messages = generated(30_000, seed=11)
    producer = threading.Thread(target=produce, args=(
        {"bootstrap.servers": _bootstrap(workdir), "linger.ms": 5}, topic, messages, 2500.0))
    producer.start()
    lake = workdir / "lake"

    kills = 0
    while producer.is_alive() or kills < 4:
        proc = subprocess.Popen(_ingest_cmd(config), cwd=workdir, env=subprocess_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 5.0))  # join (~1-5 s), then batches commit every 0.3 s
        proc.kill()
        proc.wait()
        kills += 1
    producer.join()

    final = subprocess.run(_ingest_cmd(config, "--until-idle", "--idle-timeout", "3"),
                           cwd=workdir, env=subprocess_env(), capture_output=True, text=True,
                           timeout=180)
    assert final.returncode == 0, final.stderr

    ids = Counter(r[0] for r in lake_rows(lake, columns="transaction_id"))
    assert kills >= 4
    assert sum(ids.values()) == len(messages), "every record exactly once"
    assert set(ids) == set(transaction_ids(messages))
    assert max(ids.values()) == 1  # read through the log: a killed commit's files never count


def test_two_consumers_in_one_group_split_the_partitions(workdir: Path) -> None:
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    config = _small_batches(workdir)
    ensure_topics(_bootstrap(workdir), [topic], 4)
    messages = generated(16_000, seed=12)
    cmd = _ingest_cmd(config, "--until-idle", "--idle-timeout", "6")
    procs = [subprocess.Popen(cmd, cwd=workdir, env=subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    producer = threading.Thread(target=produce, args=(
        {"bootstrap.servers": _bootstrap(workdir), "linger.ms": 5}, topic, messages, 2000.0))
    producer.start()
    producer.join()
    outputs = [p.communicate(timeout=180) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    written = [_ingested(out) for out, _ in outputs]
    ids = Counter(r[0] for r in lake_rows(workdir / "lake", columns="transaction_id"))
    assert sum(ids.values()) == len(messages) and max(ids.values()) == 1
    assert set(ids) == set(transaction_ids(messages))
    assert sum(written) == len(messages)
    assert min(written) > 0, f"both consumers should have had partitions: {written}"


def _ingested(stdout: str) -> int:
    """The record count an ingest run reports ("ingested 1,234 records")."""
    found = re.search(r"ingested ([\d,]+) records", stdout)
    assert found is not None, stdout[-3000:]
    return int(found.group(1).replace(",", ""))


def _bootstrap(workdir: Path) -> str:
    return str(yaml.safe_load((workdir / "lakestream.yaml").read_text())["kafka"]
               ["bootstrap_servers"])
