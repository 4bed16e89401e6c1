"""The docs stay true: generated references match the code; README commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import click

from lakestream.cli import cli
from lakestream.cli.reference import (
    CLI_DOC,
    CONFIG_DOC,
    render_cli_reference,
    render_config_reference,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_reference_is_generated_from_the_current_commands() -> None:
    assert (ROOT / CLI_DOC).read_text() == render_cli_reference(), (
        "docs/cli.md is stale: run `.venv/bin/lakestream docs`")


def test_the_configuration_reference_is_generated_from_the_current_models() -> None:
    assert (ROOT / CONFIG_DOC).read_text() == render_config_reference(), (
        "docs/configuration.md is stale: run `.venv/bin/lakestream docs`")


def _readme_commands() -> list[str]:
    """``lakestream …`` commands in the README's code blocks and inline code."""
    text = (ROOT / "README.md").read_text()
    found = []
    fence: str | None = None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else (line[3:].strip() or "text")
            continue
        if fence not in ("bash", "sh", "text"):
            continue
        for part in re.split(r"\s*&&\s*", line):
            part = part.strip().removeprefix(".venv/bin/")
            if part.startswith("lakestream "):
                found.append(part)
    for code in re.findall(r"`((?:\.venv/bin/)?lakestream [^`]+)`", text):
        found.append(code.removeprefix(".venv/bin/").replace("\\|", "|"))
    return found


def _check(line: str) -> None:
    """Every subcommand word must exist; every ``--option`` must belong to the command."""
    words = line.split()[1:]
    command: click.Command = cli
    i = 0
    while isinstance(command, click.Group) and i < len(words):
        word = words[i]
        if word == "--config":  # a root option with a value, before the command
            i += 2
            continue
        if word.startswith(("-", "[", '"')):
            break
        names = word.split("|")
        for name in names:
            assert name in command.commands, f"README: `{line}`: no command '{name}'"
        command = command.commands[names[0]]
        i += 1
    known = {o for p in command.params for o in getattr(p, "opts", [])} | {"--help"}
    for word in words[i:]:
        option = re.match(r"\[?(--[a-z][a-z-]*)", word)
        if option and not isinstance(command, click.Group):
            assert option.group(1) in known, f"README: `{line}`: unknown option {option.group(1)}"


def test_every_command_shown_in_the_readme_exists() -> None:
    commands = _readme_commands()
    assert len(commands) > 10
    for line in commands:
        _check(line)
