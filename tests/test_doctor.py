"""`lakestream doctor` against good and broken configurations (real services)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from lakestream.kafka.broker import EmbeddedBroker, free_port
from tests.conftest import s3_env, subprocess_env
from tests.support.seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration


def doctor(
    workdir: Path, config: Mapping[str, object], *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    (workdir / "lakestream.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "lakestream", "doctor", *args], cwd=workdir,
                          env=subprocess_env(LAKESTREAM_ANON_KEY="k", **env),
                          capture_output=True, text=True, timeout=120)


def test_a_good_configuration_passes_every_check(
        tmp_path: Path, broker: EmbeddedBroker, seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    config = {"data_dir": str(tmp_path / "data"),
              "kafka": {"bootstrap_servers": broker.bootstrap_servers},
              "lake": {"root": f"s3://{s3_bucket}/lake"}}
    done = doctor(tmp_path, config, **s3_env(seaweedfs))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "everything configured answers" in done.stdout
    assert seaweedfs.secret_key not in done.stdout + done.stderr


def test_broken_configurations_each_get_a_reason_and_a_fix(
        tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    config = {"data_dir": str(tmp_path / "data"),
              "kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}"},
              "lake": {"root": "s3://no-such-bucket-here/lake"},
              "warehouse_url": "mysql+pymysql://root@127.0.0.1:3306/lakestream_doctor"}
    env = {**s3_env(seaweedfs),
           "LAKESTREAM_WAREHOUSE_URL": "mysql+pymysql://root:wrong-password@127.0.0.1:3306/x"}
    done = doctor(tmp_path, config, **env)
    out = " ".join(done.stdout.split())
    assert done.returncode == 1
    assert "Kafka does not answer" in out and "lakestream broker start" in out
    assert "cannot write to the lake" in out and "bucket exists" in out
    assert "Access denied" in out and "wrong-password" not in out
    assert "3 check(s) failed: kafka, lake, warehouse" in out
    assert "Traceback" not in done.stderr


def test_a_consumer_group_stuck_rebalancing_is_named_with_the_way_out(
        tmp_path: Path, broker: EmbeddedBroker) -> None:
    """Members frozen with a long session keep the group rebalancing: doctor says so."""
    import signal
    import threading
    import time
    import uuid

    from confluent_kafka import Consumer

    from lakestream.kafka.client import ensure_topics

    group, topic = f"stuck-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap_servers, [topic], 3)
    member = ("import sys\nfrom confluent_kafka import Consumer\n"
              "c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[2],"
              " 'session.timeout.ms': 45000, 'heartbeat.interval.ms': 500})\n"
              "c.subscribe([sys.argv[3]])\n"
              "while True: c.consume(10, 0.5)\n")
    frozen = subprocess.Popen([sys.executable, "-c", member, broker.bootstrap_servers, group,
                               topic])
    stop = threading.Event()

    def join() -> None:  # a new member: the group rebalances and waits for the frozen one
        joiner = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group,
                           "session.timeout.ms": 2000})
        joiner.subscribe([topic])
        while not stop.is_set():
            joiner.consume(10, 0.2)
        joiner.close()

    thread = threading.Thread(target=join)
    try:
        time.sleep(5)  # the first member owns the partitions
        frozen.send_signal(signal.SIGSTOP)
        thread.start()
        time.sleep(2)
        config = {"data_dir": str(tmp_path / "data"),
                  "kafka": {"bootstrap_servers": broker.bootstrap_servers, "group_id": group,
                            "session_timeout_ms": 2000},
                  "lake": {"root": str(tmp_path / "lake")}}
        done = doctor(tmp_path, config)
    finally:
        stop.set()
        frozen.kill()
        frozen.wait()
        if thread.is_alive():
            thread.join()
    out = " ".join(done.stdout.split())
    assert done.returncode == 1, out
    assert f"consumer group(s) {group} still" in out, out  # the table wraps the cells
    assert "rebalancing after" in out and "another --group" in out, out


def cells(stdout: str) -> dict[str, list[str]]:
    """The doctor table's rows by check name: each cell's wrapped lines joined by spaces."""
    rows: dict[str, list[str]] = {}
    name = ""
    for line in stdout.splitlines():
        if not line.startswith("│"):
            continue
        parts = [part.strip() for part in line.strip("│").split("│")]
        name = parts[0] or name
        joined = rows.setdefault(name, [""] * len(parts))
        rows[name] = [f"{a} {b}".strip() for a, b in zip(joined, parts, strict=True)]
    return rows


def test_a_table_topic_that_is_not_compacted_is_a_warning_that_fix_repairs(
        tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    from lakestream.kafka.client import TABLE_TOPIC_CONFIG, ensure_topics

    def policy(servers: str, topic: str) -> str | None:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        admin = AdminClient({"bootstrap.servers": servers})
        entry = admin.describe_configs([resource])[resource].result(10).get("cleanup.policy")
        return None if entry is None else str(entry.value)

    with EmbeddedBroker(tmp_path / "broker") as own:  # table topics have fixed names
        servers = own.bootstrap_servers
        ensure_topics(servers, ["payment_method_totals"], 2)  # as Lakestream made them before
        ensure_topics(servers, ["product_purchase_counts"], 2, config=TABLE_TOPIC_CONFIG)
        config = {"data_dir": str(tmp_path / "data"),
                  "kafka": {"bootstrap_servers": servers, "session_timeout_ms": 2000},
                  "lake": {"root": str(tmp_path / "lake")}}
        warned = doctor(tmp_path, config)
        assert policy(servers, "payment_method_totals") is None, "doctor alone changes nothing"
        fixed = doctor(tmp_path, config, "--fix")
        after_fix = policy(servers, "payment_method_totals")
        again = doctor(tmp_path, config)

    assert warned.returncode == 0, warned.stdout + warned.stderr
    _, _, result, hint = cells(warned.stdout)["kafka"]
    assert result.startswith("warning ")
    assert "table topic(s) not compacted: payment_method_totals (cleanup.policy=delete):" in result
    assert "product_purchase_counts" not in result
    assert hint == ("run `lakestream doctor --fix`, or for each topic: kafka-configs.sh "
                    f"--bootstrap-server {servers} --alter --entity-type topics --entity-name "
                    "<topic> --add-config cleanup.policy=compact")
    assert warned.stdout.rstrip().endswith("1 warning(s): kafka\neverything configured answers")

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    _, _, result, hint = cells(fixed.stdout)["kafka"]
    assert result.startswith("ok ") and not hint
    assert "set cleanup.policy=compact on payment_method_totals" in result
    assert after_fix == "compact"

    _, _, result, _ = cells(again.stdout)["kafka"]
    assert result.startswith("ok ") and result.endswith("2 table topic(s) compacted"), result
    assert "warning" not in again.stdout
