"""`lakestream ingest --sink warehouse`: the live snapshot from Kafka, exactly once."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from pydantic import SecretStr

from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.kafka.broker import EmbeddedBroker
from tests.conftest import subprocess_env
from tests.derive.expected import expected_tables
from tests.ingest.helpers import generated, send
from tests.warehouse.checks import (
    FACT_COLUMNS,
    assert_facts_equal,
    assert_foreign_keys_hold,
    fact_rows,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Iterator[Path]:
    """A project with its own broker (fixed topic names) and this test's database."""
    with EmbeddedBroker(tmp_path / "broker") as broker:
        config = {
            "data_dir": str(tmp_path / "data"),
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "session_timeout_ms": 2000},
            "lake": {"root": str(tmp_path / "lake"), "flush_interval_s": 0.3,
                     "max_batch_records": 500},
            "warehouse_url": database_url,
        }
        (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
        yield tmp_path


def _api(project: Path) -> Lakestream:
    settings = load_settings(project / "lakestream.yaml", environ={}, cwd=project)
    return Lakestream(settings.model_copy(update={"anon_key": SecretStr("k")}))


def _produce_and_process(project: Path, n: int, seed: int) -> list[bytes]:
    api = _api(project)
    messages = generated(n, seed=seed)
    send(api.bootstrap(), "transactions", messages)
    api.processor(until_idle=True, idle_timeout_s=2.0).run()
    return [v for _, v in messages]


def _assert_live_exact(project: Path, values: list[bytes]) -> None:
    engine = sa.create_engine(str(yaml.safe_load((project / "lakestream.yaml").read_text())
                                  ["warehouse_url"]))
    try:
        expected = expected_tables(values)
        for table, rows in expected.items():
            _, _key, columns = FACT_COLUMNS[table]
            want = {k: tuple(r[c] for c in columns) for k, r in rows.items()}
            assert_facts_equal(fact_rows(engine, table, "live"), want)
        assert_foreign_keys_hold(engine)
    finally:
        engine.dispose()


def test_live_snapshot_equals_the_recomputed_aggregates(project: Path) -> None:
    values = _produce_and_process(project, 2000, seed=31)
    api = _api(project)
    report = api.warehouse_loader(until_idle=True, idle_timeout_s=2.0).run()
    assert report.facts > 0 and report.dimensions > 0
    _assert_live_exact(project, values)
    again = _api(project).warehouse_loader(until_idle=True, idle_timeout_s=2.0).run()
    assert (again.facts, again.dimensions) == (0, 0), "resumed from the stored offsets"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_warehouse_consumer_killed_mid_load_neither_loses_nor_doubles(project: Path) -> None:
    values = _produce_and_process(project, 4000, seed=32)
    rng = random.Random(5)
    cmd = [sys.executable, "-m", "lakestream", "ingest", "--sink", "warehouse"]
    for _ in range(3):
        proc = subprocess.Popen(cmd, cwd=project, env=subprocess_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 3.5))
        proc.kill()
        proc.wait()
    done = subprocess.run([*cmd, "--until-idle", "--idle-timeout", "2"], cwd=project,
                          env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    _assert_live_exact(project, values)
