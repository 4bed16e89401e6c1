"""``lakestream dlq`` as a user runs it: list, show, replay (also under kill -9), purge."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from lakestream.config import S3Settings
from lakestream.feeds import Feed
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.lake.dead_letters import commit_dead_letters, dead_letter_table
from lakestream.lake.storage import open_storage
from lakestream.lake.writer import BatchId
from tests.conftest import subprocess_env
from tests.ingest.helpers import lake_rows

LAKESTREAM = [sys.executable, "-m", "lakestream"]
SPEC = {"name": "orders", "topic": "orders", "pipeline": "shop", "schema": "transactions",
        "time_field": "event_time", "required": ["transaction_id", "event_time",
                                                  "user.user_id"]}
DAY_MS = 86_400_000
START_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z


@pytest.fixture
def project(tmp_path: Path) -> Path:
    config = {"data_dir": str(tmp_path / "data"), "feeds_dir": str(tmp_path / "feeds"),
              "kafka": {"bootstrap_servers": "127.0.0.1:9"},
              "lake": {"root": str(tmp_path / "lake")}}
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    _write_feed(tmp_path, SPEC)
    return tmp_path


def _write_feed(project: Path, spec: Mapping[str, object]) -> None:
    path = project / "feeds" / "active" / f"{spec['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))


def _land(project: Path, n: int) -> None:
    """``n`` records per partition over 3 days: every third lacks user.user_id, every
    seventh is not JSON."""
    storage = open_storage(str(project / "lake"), S3Settings())
    sink = DeltaLakeSink(storage, Feed.model_validate(SPEC))
    for partition in range(3):
        values = []
        for i in range(n):
            day = 1 + i % 3
            body: dict[str, object] = {"transaction_id": f"p{partition}-{i}",
                                       "event_time": f"2025-12-0{day}T10:00:00Z",
                                       "amount": 1.0}
            if i % 3:
                body["user"] = {"user_id": f"U{i}"}
            values.append(b"{oops" if i % 7 == 0 else json.dumps(body).encode())
        sink.recover("orders", partition)
        offsets = list(range(n))
        sink.write("orders", partition, values, [b"k"] * n, offsets,
                   [START_MS + (i % 3) * DAY_MS for i in offsets])


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAKESTREAM, "--config", str(project / "lakestream.yaml"), *args],
                          cwd=project, env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)


def _expected_rows(n: int, fixed: bool) -> set[str]:
    return {f"p{p}-{i}" for p in range(3) for i in range(n)
            if i % 7 and (fixed or i % 3)}


def test_list_show_replay_and_purge_as_a_user(project: Path) -> None:
    n = 30
    _land(project, n)
    listed = _cli(project, "dlq", "list", "--feed", "orders", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    groups = {g["reason"]: g for g in json.loads(listed.stdout)["orders"]}
    missing = groups["missing required field 'user.user_id'"]
    assert missing["count"] == 3 * len([i for i in range(n) if i % 7 and not i % 3])
    assert [p["partition"] for p in missing["partitions"]] == [0, 1, 2]
    text = _cli(project, "dlq", "list")
    assert "lakestream dlq replay --feed orders --dry-run" in text.stdout
    assert "transaction_stream: no dead letters" in text.stdout

    shown = _cli(project, "dlq", "show", "--feed", "orders", "--reason", "missing required",
                 "--limit", "2", "--format", "json")
    body = json.loads(shown.stdout)
    assert body["matching"] == missing["count"] and len(body["shown"]) == 2
    assert body["shown"][0]["raw_encoding"] == "text" and "p0-3" in body["shown"][0]["raw"]

    dry = _cli(project, "dlq", "replay", "--feed", "orders", "--dry-run", "--format", "json")
    assert json.loads(dry.stdout)["landed"] == 0  # nothing passes before the fix
    _write_feed(project, {**SPEC, "required": ["transaction_id", "event_time"]})
    dry = json.loads(_cli(project, "dlq", "replay", "--feed", "orders", "--dry-run",
                          "--format", "json").stdout)
    assert dry["landed"] == missing["count"]
    assert {r[0] for r in lake_rows(project / "lake", "streams/orders",
                                    "transaction_id")} == _expected_rows(n, fixed=False)
    done = _cli(project, "dlq", "replay", "--feed", "orders")
    assert done.returncode == 0, done.stderr
    assert f"landed {missing['count']} in streams/orders" in done.stdout
    ids = Counter(r[0] for r in lake_rows(project / "lake", "streams/orders", "transaction_id"))
    assert set(ids) == _expected_rows(n, fixed=True) and max(ids.values()) == 1

    purge = _cli(project, "dlq", "purge", "--feed", "orders", "--before", "2025-12-03",
                 "--format", "json")
    assert purge.returncode == 0, purge.stderr
    assert json.loads(purge.stdout)["days"] == ["2025-12-01", "2025-12-02"]
    left = json.loads(_cli(project, "dlq", "list", "--feed", "orders", "--format",
                           "json").stdout)["orders"]
    assert sum(g["count"] for g in left) == 3 * len([i for i in range(n)
                                                     if i % 7 == 0 and i % 3 == 2])
    audit = _cli(project, "audit", "--action", "dlq_purge", "--format", "json")
    assert audit.returncode == 0, audit.stderr
    assert "2025-12-01" in audit.stdout


def test_bad_input_gets_one_clear_line(project: Path) -> None:
    cases = [
        (["dlq", "show", "--feed", "ordrs"], "unknown feed 'ordrs'", "did you mean 'orders'"),
        (["dlq", "replay", "--feed", "payment_method_totals"], "table feed", None),
        (["dlq", "list", "--since", "yesterday"], "not a date or time", None),
        (["dlq", "purge", "--feed", "orders", "--before", "2025-13-01"], "not a date", None),
        (["dlq", "show"], "Missing option '--feed'", None),
    ]
    for args, message, hint in cases:
        result = _cli(project, *args)
        assert result.returncode in (1, 2), (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        if hint:
            assert hint in result.stderr


def test_the_processors_own_dead_letters_are_listed_shown_and_purged_never_replayed(
        project: Path) -> None:
    storage = open_storage(str(project / "lake"), S3Settings())
    values = [b"not json", b'{"ms": "slow"}', b'{"page": "/"}']
    reasons = ["JSON parse error", "field ms: expected int64, found string",
               "no event time: ts is missing"]
    commit_dead_letters(dead_letter_table(storage, "processor"),
                        BatchId("processor", "processor", "clicks", 2, 40, 42), None,
                        list(enumerate(reasons)), values, ["u1", "u2", None], [40, 41, 42],
                        [START_MS, START_MS, START_MS + DAY_MS])
    text = _cli(project, "dlq", "list")
    assert text.returncode == 0, text.stderr
    assert "processor: 3 dead letter(s)" in text.stdout, text.stdout
    assert "no event time: ts is missing" in text.stdout and "clicks[2] 42..42" in text.stdout
    assert "kept by `lakestream process`" in text.stdout and "not replayable" in text.stdout
    assert "warehouse" not in text.stdout  # no table: not listed unless asked for
    assert _cli(project, "dlq", "list", "--feed", "warehouse").stdout.strip() == (
        "warehouse: no dead letters")
    shown = json.loads(_cli(project, "dlq", "show", "--feed", "processor", "--reason",
                            "expected INT64", "--format", "json").stdout)
    assert shown["matching"] == 1 and shown["shown"][0]["raw"] == '{"ms": "slow"}'
    refused = _cli(project, "dlq", "replay", "--feed", "processor")
    assert refused.returncode == 2
    assert "'processor' dead letters cannot be replayed" in refused.stderr
    assert "send the corrected event to the input topic" in refused.stderr
    purge = _cli(project, "dlq", "purge", "--feed", "processor", "--before", "2025-12-02",
                 "--format", "json")
    assert purge.returncode == 0, purge.stderr
    assert json.loads(purge.stdout)["records"] == 2
    left = json.loads(_cli(project, "dlq", "list", "--feed", "processor", "--format",
                           "json").stdout)["processor"]
    assert [g["reason"] for g in left] == ["no event time: ts is missing"]


def test_a_replay_killed_at_random_moments_lands_every_letter_once(project: Path) -> None:
    n = 3000
    _land(project, n)
    _write_feed(project, {**SPEC, "required": ["transaction_id", "event_time"]})
    rng = random.Random(1205)
    cmd = [*LAKESTREAM, "--config", str(project / "lakestream.yaml"), "dlq", "replay",
           "--feed", "orders"]
    for _ in range(4):
        run = subprocess.Popen(cmd, cwd=project, env=subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 4.0))
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    final = _cli(project, "dlq", "replay", "--feed", "orders", "--format", "json")
    assert final.returncode == 0, final.stderr
    ids = Counter(r[0] for r in lake_rows(project / "lake", "streams/orders", "transaction_id"))
    assert set(ids) == _expected_rows(n, fixed=True) and max(ids.values()) == 1
    left = json.loads(_cli(project, "dlq", "list", "--feed", "orders", "--format",
                           "json").stdout)["orders"]
    assert [(g["reason"], g["count"]) for g in left] == [
        (left[0]["reason"], 3 * len(range(0, n, 7)))]
    assert "user.user_id" not in left[0]["reason"]
