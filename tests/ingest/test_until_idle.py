"""`ingest --until-idle` means drained, also right after consumers were killed (issue #14).

The killed consumers stay members of the group until their session expires;
the restarted `--until-idle` must wait for them to be expelled and drain
their partitions, never exit 0 with a partition unread. Each round uses other
partition counts and kill moments; the seed is printed so a failure can be
replayed with LAKESTREAM_TEST_SEED.
"""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.client import ensure_topics
from lakestream.kafka.producer import produce
from tests.conftest import subprocess_env, unique_topic, write_feed
from tests.ingest.helpers import generated, lake_rows, transaction_ids
from tests.ingest.test_ingest_crash import LAKESTREAM, _bootstrap, _small_batches
from tests.support.seaweedfs import SeaweedFS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 10


def _seed() -> int:
    return int(os.environ.get("LAKESTREAM_TEST_SEED") or random.randrange(1 << 30))


def _ingest(config: Path, group: str, *extra: str, feed: str = "feed") -> list[str]:
    return [*LAKESTREAM, "--config", str(config), "ingest", "--feed", feed, "--group", group,
            *extra]


def _crash_round(workdir: Path, config: Path, rng: random.Random, lake: Path,
                 round_no: int) -> float:
    """Kill consumers at random moments, then `--until-idle`; returns its seconds."""
    partitions = rng.randint(1, 6)
    session_ms = rng.choice([2000, 6000])  # 6 s is the default: dead members outlive the idle
    idle = rng.choice(["1", "2", "3"])
    settings = yaml.safe_load(config.read_text())
    settings["kafka"]["session_timeout_ms"] = session_ms
    config = config.with_name(f"round{round_no}.yaml")
    config.write_text(yaml.safe_dump(settings))
    topic = unique_topic()
    group = f"g{round_no}-{topic}"
    feed = f"feed{round_no}"  # a dataset of its own per round
    write_feed(workdir / "feeds", feed, topic)
    ensure_topics(_bootstrap(workdir), [topic], partitions)
    messages = generated(rng.randint(3_000, 9_000), seed=round_no)
    live_producer = rng.random() < 0.5  # half the rounds keep producing through the kills
    producer_config = {"bootstrap.servers": _bootstrap(workdir), "linger.ms": 5}
    producer = threading.Thread(target=produce, args=(producer_config, topic, messages,
                                                      3000.0 if live_producer else 0.0))
    producer.start()
    if not live_producer:
        producer.join()
    for _ in range(rng.randint(1, 3)):
        members = [subprocess.Popen(_ingest(config, group, feed=feed), cwd=workdir,
                                    env=subprocess_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
                   for _ in range(rng.choice([1, 1, 2]))]
        time.sleep(rng.uniform(0.5, 5.0))  # before, during or after the group join
        for member in members:
            member.kill()
            member.wait()
    producer.join()
    started = time.monotonic()
    final = subprocess.run(_ingest(config, group, "--until-idle", "--idle-timeout", idle,
                                   feed=feed), cwd=workdir, env=subprocess_env(),
                           capture_output=True, text=True, timeout=240)
    took = time.monotonic() - started
    where = (f"round {round_no}, {partitions} partitions, {len(messages)} events, session "
             f"{session_ms} ms, idle {idle} s")
    assert final.returncode == 0, f"{where}: {final.stderr[-2000:]}"
    rows = lake_rows(lake, f"streams/{feed}", "transaction_id")
    ids = Counter(r[0] for r in rows)
    assert sum(ids.values()) == len(messages), f"{where}: {sum(ids.values())} rows in the lake"
    assert set(ids) == set(transaction_ids(messages)), where
    assert "per partition:" in final.stdout, final.stdout
    return took


def test_until_idle_after_kills_drains_every_partition(workdir: Path) -> None:
    seed = _seed()
    rng = random.Random(seed)
    config = _small_batches(workdir)
    lake = workdir / "lake"
    times = []
    for round_no in range(ROUNDS):
        try:
            times.append(_crash_round(workdir, config, rng, lake, round_no))
        except AssertionError as exc:
            raise AssertionError(f"LAKESTREAM_TEST_SEED={seed}: {exc}") from None
    print(f"until-idle after kills: median {statistics.median(times):.1f}s, "
          f"worst {max(times):.1f}s over {len(times)} rounds (seed {seed})")


@pytest.mark.parametrize("freeze", ["before", "while"])
def test_until_idle_waits_for_a_frozen_member_then_lands_its_partitions(
        workdir: Path, freeze: str) -> None:
    """A member SIGSTOPped (alive, not heartbeating) holds partitions: wait, then drain them.

    Frozen before `--until-idle` starts, or while it joins the group.
    """
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    config = _small_batches(workdir)
    ensure_topics(_bootstrap(workdir), [topic], 4)
    messages = generated(4_000, seed=21)
    produce({"bootstrap.servers": _bootstrap(workdir), "linger.ms": 5}, topic, messages)
    frozen = subprocess.Popen(_ingest(config, "frozen"), cwd=workdir, env=subprocess_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cmd = _ingest(config, "frozen", "--until-idle", "--idle-timeout", "2")
    try:
        _wait_for_rows(workdir / "lake", 1)  # it owns the partitions and has committed some
        if freeze == "before":
            frozen.send_signal(signal.SIGSTOP)
        final = subprocess.Popen(cmd, cwd=workdir, env=subprocess_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if freeze == "while":
            time.sleep(1.0)
            frozen.send_signal(signal.SIGSTOP)
        out, err = final.communicate(timeout=180)
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.kill()
        frozen.wait()
    assert final.returncode == 0, err
    ids = Counter(r[0] for r in lake_rows(workdir / "lake", columns="transaction_id"))
    assert sum(ids.values()) == len(messages) and max(ids.values()) == 1
    assert set(ids) == set(transaction_ids(messages))
    assert re.search(r"per partition: .*\[0\]", out), out


@pytest.fixture
def durable_broker(tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str
                   ) -> Iterator[EmbeddedBroker]:
    """Tansu on the s3 engine: topics and offsets survive a crash and a restart (SPEC §2)."""
    env = {"AWS_ENDPOINT": seaweedfs.endpoint_url, "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
           "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
           "AWS_DEFAULT_REGION": seaweedfs.region, "AWS_ALLOW_HTTP": "true"}
    broker = EmbeddedBroker(tmp_path / "broker", storage_engine=f"s3://{s3_bucket}/", env=env)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_until_idle_gives_up_on_a_broker_that_stays_down_then_the_next_run_finishes(
        workdir: Path, durable_broker: EmbeddedBroker) -> None:
    config_path = _small_batches(workdir)
    config = yaml.safe_load(config_path.read_text())
    config["kafka"]["bootstrap_servers"] = bootstrap = durable_broker.bootstrap_servers
    config_path.write_text(yaml.safe_dump(config))
    topic = unique_topic()
    write_feed(workdir / "feeds", "feed", topic)
    ensure_topics(bootstrap, [topic], 3)
    first = generated(3_000, seed=41)
    produce({"bootstrap.servers": bootstrap, "linger.ms": 5}, topic, first)
    # a long idle timeout keeps the run from finishing before the broker goes away
    cmd = _ingest(config_path, "outage", "--until-idle", "--idle-timeout", "6",
                  "--drain-timeout", "20")
    run = subprocess.Popen(cmd, cwd=workdir, env=subprocess_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_rows(workdir / "lake", len(first))
        assert durable_broker.process is not None
        durable_broker.process.kill()  # a crash: the port stays free for the restart
        durable_broker.process.wait(15)
        durable_broker.process = None
        _out, err = run.communicate(timeout=120)  # bounded: never an endless wait
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert "group outage" in err and f"{topic}[" in err and "not drained" in err, err
    assert "unreachable" in err or "cannot read" in err, err
    assert "waiting for" in err and "gives up after 20s" in err, "the wait is said, not silent"
    assert "Traceback" not in err
    assert len(lake_rows(workdir / "lake", columns="transaction_id")) == len(first)

    durable_broker.start()
    second = generated(1_000, seed=42)
    produce({"bootstrap.servers": bootstrap, "linger.ms": 5}, topic, second)
    done = subprocess.run(_ingest(config_path, "outage", "--until-idle", "--idle-timeout", "2"),
                          cwd=workdir, env=subprocess_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    ids = Counter(r[0] for r in lake_rows(workdir / "lake", columns="transaction_id"))
    assert sum(ids.values()) == len(first) + len(second) and max(ids.values()) == 1
    assert set(ids) == set(transaction_ids(first + second))


def _wait_for_rows(lake: Path, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(lake_rows(lake, columns="transaction_id")) >= at_least:
            return
        time.sleep(0.3)
    raise AssertionError("the first consumer never committed a batch")



def _wait_for_connection(run: subprocess.Popen[str], port: int, timeout: float = 60) -> None:
    """Wait until process ``run`` holds a TCP connection to ``port`` on this machine."""
    pid = run.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError(f"ingest exited {run.returncode}: {run.communicate()}")
        if any(c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
               for c in psutil.Process(pid).net_connections("tcp")):
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} never connected to port {port}")


def test_a_table_feed_is_drained_only_once_read_to_its_end(
        workdir: Path, durable_broker: EmbeddedBroker) -> None:
    """Table feeds are read by manual assignment: a broker that goes away is not 'the end'."""
    import json

    bootstrap = durable_broker.bootstrap_servers
    config_path = _small_batches(workdir)
    config = yaml.safe_load(config_path.read_text())
    config["kafka"]["bootstrap_servers"] = bootstrap
    config_path.write_text(yaml.safe_dump(config))
    table = "payment_method_totals"
    ensure_topics(bootstrap, [table], 3)

    def changes(first: int, n: int) -> list[tuple[bytes, bytes]]:
        return [(f"PM{i:02d}".encode(), json.dumps(
            {"payment_method_id": f"PM{i:02d}", "payment_method_name": f"m{i}",
             "total_amount": 10.0 * i, "transaction_count": i, "avg_amount": 10.0}).encode())
            for i in range(first, first + n)]

    produce({"bootstrap.servers": bootstrap, "linger.ms": 5}, table, changes(0, 30))
    cmd = [*LAKESTREAM, "--config", str(config_path), "ingest", "--feed", table,
           "--until-idle", "--idle-timeout", "6", "--drain-timeout", "25"]
    run = subprocess.Popen(cmd, cwd=workdir, env=subprocess_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        # started and reading (a loaded machine may take seconds to start the process: a
        # broker killed before it connected is "cannot reach Kafka", another test's case);
        # the idle timeout has not passed
        _wait_for_connection(run, int(bootstrap.rsplit(":", 1)[1]))
        time.sleep(2.0)
        assert durable_broker.process is not None
        durable_broker.process.kill()
        durable_broker.process.wait(15)
        durable_broker.process = None
        _out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert f"{table}[" in err and "not drained" in err, err

    durable_broker.start()
    produce({"bootstrap.servers": bootstrap, "linger.ms": 5}, table, changes(30, 10))
    done = subprocess.run(cmd, cwd=workdir, env=subprocess_env(), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    rows = subprocess.run([*LAKESTREAM, "--config", str(config_path), "query",
                           f"SELECT count(*) FROM {table}", "--format", "csv"], cwd=workdir,
                          env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert rows.stdout.strip().splitlines()[-1] == "40", rows.stdout + rows.stderr
