"""The shipped example configurations load (no unknown key, no secret in the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestream.config import load_settings

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configuration_loads(path: Path) -> None:
    settings = load_settings(path, environ={})
    assert settings.kafka.bootstrap_servers
    assert settings.anon_key is None  # secrets come from the environment only


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2
