"""The shipped example configurations load (no unknown key, no secret in the file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from lakestream.config import load_settings

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configuration_loads(path: Path) -> None:
    settings = load_settings(path, environ={})
    assert settings.kafka.bootstrap_servers
    assert settings.anon_key is None  # secrets come from the environment only


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


def test_the_env_example_completes_the_production_example() -> None:
    folder = Path(__file__).resolve().parents[1] / "examples"
    environ = {k: v for k, v in dotenv_values(folder / ".env.example").items() if v}
    settings = load_settings(folder / "lakestream.production.yaml", environ=environ)
    properties = settings.kafka.librdkafka_properties()
    assert properties["security.protocol"] == "SASL_SSL"  # from the file
    assert properties["sasl.password"] == "..."  # from the environment
    assert settings.s3.secret_key is not None and settings.anon_key is not None
