"""Shared fixtures: real services started on free loopback ports, stopped by PID."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from lakestream.config import S3Settings, Settings, is_settings_variable, load_settings
from lakestream.kafka.broker import EmbeddedBroker
from tests.support.seaweedfs import SeaweedFS


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker (memory engine) for the session."""
    with EmbeddedBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the session."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    """A fresh bucket for one test."""
    name = f"lake-{uuid.uuid4().hex[:12]}"
    seaweedfs.create_bucket(name)
    return name


def s3_env(server: SeaweedFS) -> dict[str, str]:
    """The LAKESTREAM_S3_* environment for a SeaweedFS server."""
    return {
        "LAKESTREAM_S3_ENDPOINT": server.endpoint_url,
        "LAKESTREAM_S3_ACCESS_KEY": server.access_key,
        "LAKESTREAM_S3_SECRET_KEY": server.secret_key,
    }


def s3_settings(server: SeaweedFS) -> S3Settings:
    """The S3 settings of a lake on a SeaweedFS server."""
    return S3Settings(endpoint=server.endpoint_url, access_key=SecretStr(server.access_key),
                      secret_key=SecretStr(server.secret_key), region=server.region)


def unique_topic(prefix: str = "tx") -> str:
    """A topic name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_feed(feeds_dir: Path, name: str, topic: str, **extra: Any) -> Path:
    """Declare a feed file; by default a transactions-shaped feed on ``topic``."""
    spec: dict[str, Any] = {
        "name": name,
        "topic": topic,
        "pipeline": "test",
        "schema": "transactions",
        "time_field": "event_time",
        "required": ["transaction_id", "event_time", "user.user_id"],
    }
    spec.update(extra)
    path = feeds_dir / "active" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def workdir(tmp_path: Path, broker: EmbeddedBroker) -> Path:
    """A project folder whose lakestream.yaml points at the session broker."""
    config = {
        "data_dir": str(tmp_path / "data"),
        "feeds_dir": str(tmp_path / "feeds"),
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "session_timeout_ms": 2000,
            "partitions": 4,
        },
        "lake": {"root": str(tmp_path / "lake"), "flush_interval_s": 1.0},
    }
    (tmp_path / "lakestream.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def settings_for(workdir: Path, **env: str) -> Settings:
    """Settings of ``workdir`` with an environment override."""
    return load_settings(workdir / "lakestream.yaml", environ=env, cwd=workdir)


def clear_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable ``load_settings`` would read (or refuse) from the test's environment.

    ``LAKESTREAM_*`` settings and the old names (``OPENWEATHER_API_KEY``, ...) from the
    developer's shell must not change what a test sees.
    """
    for name in [name for name in os.environ if is_settings_variable(name)]:
        monkeypatch.delenv(name)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ``lakestream`` child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKESTREAM_")}
    env.update(extra)
    return env
