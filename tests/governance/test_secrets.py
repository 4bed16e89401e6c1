"""Secrets come from the environment only and never show up in output, logs or files."""

from __future__ import annotations

import datetime as dt
import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest
import yaml

from lakestream.cli import cli, main
from lakestream.config import load_settings
from lakestream.errors import ConfigError
from lakestream.governance.secrets import (
    RedactingFilter,
    files_below,
    find_secrets,
    install_log_redaction,
    secret_values,
)
from tests.conftest import subprocess_env

from .conftest import api_for, run
from .lakebuild import build_stream

LAKESTREAM_BIN = Path(sys.executable).with_name("lakestream")
SENTINELS = {
    "LAKESTREAM_ANON_KEY": "sentinel-anon-7f3a9c",
    "LAKESTREAM_S3_ACCESS_KEY": "sentinel-access-51d2e8",
    "LAKESTREAM_S3_SECRET_KEY": "sentinel-secret-b04c61",
    "OPENWEATHER_API_KEY": "sentinel-owm-93e7aa",
    "LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD": "sentinel-sasl-2d6b90",
}
DB_PASSWORD = "sentinel-dbpw-c8e1f4"


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


PATHS = set(command_paths(cli))


@pytest.mark.parametrize("key", ["warehouse_url", "gold_url", "ksqldb_url"])
def test_a_config_file_with_a_url_password_is_refused(tmp_path: Path, key: str) -> None:
    config = tmp_path / "lakestream.yaml"
    config.write_text(yaml.safe_dump({key: f"postgresql://u:{DB_PASSWORD}@db:5432/x"}))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={}, cwd=tmp_path)
    assert caught.value.message == f"{config}: '{key}' holds a password, and a config file may not"
    assert "$LAKESTREAM_" in (caught.value.hint or "")
    assert DB_PASSWORD not in str(caught.value)


def test_a_url_password_from_the_environment_is_accepted_and_known_secret(tmp_path: Path) -> None:
    config = tmp_path / "lakestream.yaml"
    config.write_text(yaml.safe_dump({"warehouse_url": "postgresql://u@db:5432/x"}))
    url = f"postgresql://u:{DB_PASSWORD}@db:5432/x"
    settings = load_settings(config, environ={"LAKESTREAM_WAREHOUSE_URL": url}, cwd=tmp_path)
    assert settings.warehouse_url == url
    assert DB_PASSWORD in secret_values(settings)


def test_a_config_file_with_a_secret_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "lakestream.yaml"
    config.write_text(yaml.safe_dump({"anon_key": "abc"}))
    with pytest.raises(ConfigError, match="'anon_key' is a secret"):
        load_settings(config, environ={}, cwd=tmp_path)


def test_log_lines_never_carry_a_secret(project: Path) -> None:
    settings = api_for(project, **SENTINELS).settings
    logger = logging.getLogger("lakestream.test.secrets")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        install_log_redaction(settings, logger)
        install_log_redaction(settings, logger)  # idempotent
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("key=%s", SENTINELS["LAKESTREAM_ANON_KEY"])
        logger.warning("sasl=%s", SENTINELS["LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD"])
        try:
            raise RuntimeError(f"boom {SENTINELS['LAKESTREAM_S3_SECRET_KEY']}")
        except RuntimeError:
            logger.exception("failed with %s", SENTINELS["OPENWEATHER_API_KEY"])
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "key=***" in text and "failed with ***" in text and "boom ***" in text
    assert "sasl=***" in text
    assert not find_secrets({"log": text}, SENTINELS.values())


def test_help_of_every_command_shows_no_secret(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var, value in SENTINELS.items():
        monkeypatch.setenv(var, value)
    for path in sorted(PATHS):
        assert run(project, *path, "--help") == 0, path
    assert main(["--help"]) == 0
    captured = capsys.readouterr()
    assert not find_secrets({"out": captured.out, "err": captured.err}, SENTINELS.values())


# Run in this order (each depends on the one before); warehouse init runs first, alone.
ORDERED_RUNS: list[list[str]] = [
    ["permissions", "grant", "bob", "events_anon"],
    ["permissions", "check", "bob", "events_anon"],
    ["query", "SELECT count(*) FROM events_anon", "--as", "bob", "--format", "json"],
    ["query", "SELECT * FROM events", "--as", "bob"],
    ["permissions", "revoke", "bob", "events_anon"],
    ["retention", "--dry-run", "--format", "json"], ["retention"],
    ["audit", "--format", "json"],
]
# Independent of each other: run alongside, several at a time.
OTHER_RUNS: list[list[str]] = [
    ["feeds", "list"], ["feeds", "show", "events"],
    ["warehouse", "status"], ["warehouse", "check"], ["sync"],
    ["permissions", "list", "--format", "json"], ["permissions", "apply-modes"],
    ["query", "SELECT count(*) FROM events"],
    ["metadata", "stats", "--format", "json"], ["metadata", "report"],
    ["reference", "rates"], ["reference", "blacklist"],
    ["quality", "check", "--pipeline", "weather"],
    ["doctor"],
    ["--debug", "produce", "transactions", "--messages", "5"],
    ["--debug", "-v", "process", "--until-idle"],
    ["--debug", "ingest", "--until-idle"],
]


@pytest.mark.integration
@pytest.mark.slow
def test_every_safe_command_run_for_real_leaks_no_secret(project: Path, pg_database: str) -> None:
    api = api_for(project)
    today = dt.datetime.now(dt.UTC).date()
    for feed in api.feeds:
        if feed.name in ("events", "events_anon"):
            build_stream(api.storage, feed, today, days=3)
    url = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:5432/{pg_database}"
    env = subprocess_env(**SENTINELS, LAKESTREAM_WAREHOUSE_URL=url, LAKESTREAM_GOLD_URL=url)
    outputs: dict[str, str | bytes] = {}
    statuses: dict[str, int] = {}

    def lakestream(args: list[str]) -> None:
        if next(a for a in args if not a.startswith("-")) not in cli.commands:
            return  # a command another part of the project has not shipped yet
        done = subprocess.run([str(LAKESTREAM_BIN), "--config", str(project / "project.yaml"),
                               *args], cwd=project, env=env, capture_output=True, timeout=120)
        name = " ".join(args)
        outputs[f"{name} (stdout)"], outputs[f"{name} (stderr)"] = done.stdout, done.stderr
        statuses[name] = done.returncode

    def in_order() -> None:
        for args in ORDERED_RUNS:
            lakestream(args)

    lakestream(["warehouse", "init"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        ordered = pool.submit(in_order)
        list(pool.map(lakestream, OTHER_RUNS))
        ordered.result()
    outputs.update(files_below(project))
    leaks = find_secrets(outputs, [*SENTINELS.values(), DB_PASSWORD])
    assert leaks == [], [f"secret #{leak.secret_index} in {leak.where}" for leak in leaks]
    for ours in ("warehouse init", "permissions grant bob events_anon", "retention",
                 "audit --format json", "query SELECT count(*) FROM events_anon --as bob "
                 "--format json"):
        assert statuses[ours] == 0, (ours, outputs[f"{ours} (stderr)"])
    assert statuses["query SELECT * FROM events --as bob"] == 1
