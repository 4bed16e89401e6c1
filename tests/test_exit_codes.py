"""One rule for exit codes (SPEC §7): a usage error exits 2, on every command.

Every leaf command of the CLI is listed from the command tree itself, so a
new command is checked too. A command that takes the name of a feed,
pipeline, dataset or role is given an unknown one; any other command an
unknown option. Each must exit 2 with one clear ``error:`` line, no
traceback, before it touches a broker or a database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from lakestream.cli import cli, main
from tests.conftest import clear_settings_environment

NOPE = "no_such_name"

# commands that take a name: how to give them an unknown one
UNKNOWN_NAME: dict[str, list[str]] = {
    "airflow dag": ["--pipeline", NOPE],
    "airflow notify": ["failure", "--pipeline", NOPE],
    "compact": ["--feed", NOPE],
    "dlq list": ["--feed", NOPE],
    "dlq purge": ["--feed", NOPE, "--before", "2026-01-01"],
    "dlq replay": ["--feed", NOPE],
    "dlq show": ["--feed", NOPE],
    "export": ["--stream", NOPE],
    "feeds archive": [NOPE],
    "feeds delete": [NOPE],
    "feeds disable": [NOPE],
    "feeds enable": [NOPE],
    "feeds restore": [NOPE],
    "feeds show": [NOPE],
    "feeds update": [NOPE, "--set", "retention_days=3"],
    "ingest": ["--feed", NOPE],
    "permissions assign": ["bob", NOPE],
    "permissions check": ["bob", NOPE],
    "permissions explain": ["bob", NOPE],
    "permissions grant": ["bob", NOPE],
    "quality check": ["--pipeline", NOPE],
    "quality show": [NOPE],
    "retention": ["--feed", NOPE],
    "run": [NOPE],
    "schedule": ["--pipeline", NOPE],
    "statements remove": [NOPE],
    "statements show": [NOPE],
    "task": [NOPE, "some_task"],
}
# more unknown names, for the commands that take several kinds
MORE_UNKNOWN_NAMES = [
    ("export", ["--table", NOPE]),
    ("export", ["--all", "--pipeline", NOPE]),
    ("ingest", ["--pipeline", NOPE]),
]
# name parameters that only filter a listing: an unknown one lists nothing
FILTERS = {"audit", "permissions list", "permissions revoke", "tokens list", "tokens create",
           "tokens revoke", "feeds add", "statements add", "query", "sync", "reference blacklist",
           "lineage"}
NAME_PARAMS = {"feed", "pipeline", "pipelines", "stream", "table", "tables", "name", "dataset",
               "role"}


def leaf_commands(group: click.Group = cli,
                  prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            yield from leaf_commands(command, path)
        else:
            yield path, command


COMMANDS = dict(leaf_commands())
CASES = [(path, UNKNOWN_NAME.get(path, ["--no-such-option"])) for path in COMMANDS] + \
    MORE_UNKNOWN_NAMES


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder with no LAKESTREAM_* from the shell, and no broker."""
    clear_settings_environment(monkeypatch)
    monkeypatch.setenv("LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_command_that_takes_a_name_is_given_an_unknown_one() -> None:
    takes_names = {path for path, command in COMMANDS.items()
                   if {p.name for p in command.params} & NAME_PARAMS}
    assert takes_names - FILTERS <= set(UNKNOWN_NAME), "add the command to UNKNOWN_NAME"
    assert set(UNKNOWN_NAME) <= set(COMMANDS)


@pytest.mark.parametrize(("command", "args"), CASES,
                         ids=[f"{c} {' '.join(a)}" for c, a in CASES])
def test_a_usage_error_exits_2_with_one_clear_line(
        project: Path, capsys: pytest.CaptureFixture[str], command: str,
        args: list[str]) -> None:
    status = main([*command.split(), *args])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert "Traceback" not in err and "internal error" not in err
    first = err.strip().splitlines()[0]
    assert first.startswith(("error:", "Error:", "Usage:")), err
    if args[0] != "--no-such-option":
        assert NOPE in err, err
