"""Fixtures of the processor tests: a broker of their own (fixed topic names) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lakestream.kafka.broker import EmbeddedBroker

ANON_KEY = "test-anonymization-key"


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Path]:
    """A project folder with its own broker; the transactions topics are this test's alone."""
    with EmbeddedBroker(tmp_path / "broker") as broker:
        config = {
            "data_dir": str(tmp_path / "data"),
            "feeds_dir": str(tmp_path / "feeds"),
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "session_timeout_ms": 2000,
                      "partitions": 4},
            "lake": {"root": str(tmp_path / "lake"), "flush_interval_s": 0.5,
                     "snapshot_interval_s": 1.0},
        }
        (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
        yield tmp_path
