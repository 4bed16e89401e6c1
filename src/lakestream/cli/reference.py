"""Generated documentation: the CLI reference from the commands' own help, and the
configuration reference from the config models. ``lakestream docs`` writes both;
a test fails when the committed files drift from what the code says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args, get_origin

import click
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from lakestream.cli.root import Context, cli
from lakestream.config import CLIENT_CONFIG, ENV_ALIASES, SECRET_KEYS, env_name, setting_keys
from lakestream.config.environment import DELIMITER, PREFIX

CLI_DOC = "docs/cli.md"
CONFIG_DOC = "docs/configuration.md"


def render_cli_reference() -> str:
    """Every command's ``--help``, in command-tree order."""
    parts = ["# Command reference\n", "Generated from the commands' own `--help` by "
             "`lakestream docs`; do not edit by hand.\n"]
    for path, command in _walk(cli, ("lakestream",)):
        with click.Context(command, info_name=" ".join(path), obj=None, terminal_width=100,
                           help_option_names=["-h", "--help"],
                           max_content_width=100) as ctx:
            text = command.get_help(ctx)
        parts.append(f"## `{' '.join(path)}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


def _walk(command: click.Command, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if not sub.hidden:
                found += _walk(sub, (*path, name))
    return found


def render_config_reference() -> str:
    """Every setting with its type, default, environment variable and description."""
    lines = ["# Configuration reference\n",
             "Generated from the configuration models by `lakestream docs`; do not edit by "
             "hand.\n",
             "Settings come from `lakestream.yaml` in the working directory (or `--config "
             "FILE`); a `.env` file in the working directory overrides the file, and the "
             "process environment overrides both. With nothing configured the embedded "
             "defaults apply.\n",
             *_ENVIRONMENT_RULE,
             "| key | type | default | environment | description |", "|---|---|---|---|---|"]
    aliases = {key: name for name, key in ENV_ALIASES.items()}
    for key, field in setting_keys():
        if key == CLIENT_CONFIG:
            lines.append(_client_config_row(field))
            continue
        default = field.default
        shown = repr(default) if isinstance(default, str | int | float | None) else (
            json.dumps(to_jsonable_python(default)))
        if key in SECRET_KEYS:
            shown = "(secret: environment only)"
        env = f"`{env_name(key)}`" + (f" or `{aliases[key]}`" if key in aliases else "")
        lines.append(f"| `{key}` | {_type_name(field.annotation)} | {_cell(shown)} | {env} | "
                     f"{_cell(field.description or '')} |")
    return "\n".join(lines) + "\n"


_CLIENT = f"{CLIENT_CONFIG}.<property>"
_ENVIRONMENT_RULE = [
    "## Environment variables\n",
    f"Every key can be set from the environment: `{PREFIX}` followed by the key in capitals, "
    f"its levels joined by `{DELIMITER}` (two underscores). Names are not case-sensitive.\n",
    f"- `lake.root` ← `{env_name('lake.root')}`, `data_dir` ← `{env_name('data_dir')}`.",
    f"- `{_CLIENT}` (any librdkafka property) ← one variable per property, its dots written "
    f"as single underscores: `{env_name(CLIENT_CONFIG + '.security.protocol')}=SASL_SSL`, "
    f"`{env_name(CLIENT_CONFIG + '.sasl.mechanism')}=SCRAM-SHA-512`, "
    f"`{env_name(CLIENT_CONFIG + '.sasl.username')}=lakestream`, "
    f"`{env_name(CLIENT_CONFIG + '.sasl.password')}=…`.",
    f"- A list is JSON: `{env_name('weather.cities')}='[\"Paris\", \"Oslo\"]'`; a flag is "
    "`true` or `false`; an empty variable sets nothing.",
    "- Values from the environment are checked like the file's: a bad one is an error "
    "naming the variable.",
    "- The names these keys had before this rule (after \"or\" in the table) keep working. "
    "When a key is set under both names in the same place, the rule's name wins; the process "
    "environment wins over `.env` whatever the names.",
    f"- A variable that looks like a setting but names none (a `{DELIMITER}` in its name, or "
    f"`{PREFIX}<SECTION>_…` for a section such as `KAFKA`) is an error naming it, with a "
    f"suggestion: `{PREFIX}KAFKA_PARTITIONS` → did you mean "
    f"`{env_name('kafka.partitions')}`? Other `{PREFIX}*` variables (`LAKESTREAM_CONFIG`, "
    "...) are not settings and are left alone; a near miss of a top-level key is warned "
    "about.\n",
    "## Secrets\n",
    "Secrets are read only from the environment or `.env`: a config file is refused, naming "
    "the key and the variable to set instead, when it holds one of the keys marked secret "
    f"below, a `{CLIENT_CONFIG}` property whose name holds `password` or `secret` "
    "(`sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`, ...) or is "
    "`ssl.key.pem`, or a URL with a password in any key. Secret values are masked in logs "
    "(docs/governance.md).\n",
    "## Keys\n",
]


def _client_config_row(field: FieldInfo) -> str:
    _, value_type = get_args(field.annotation)
    kinds = " or ".join(_type_name(kind) for kind in get_args(value_type) if kind is not SecretStr)
    return (f"| `{_CLIENT}` | {kinds} |  | `{env_name(_CLIENT)}` "
            f"(dots as `_`) | {_cell(field.description or '')} |")


def _cell(text: str) -> str:
    return text.replace("|", "/")


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) in (tuple, list):
        return f"list of {_type_name(get_args(annotation)[0])} (JSON)"
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args:
        return " or ".join(_type_name(a) for a in args)
    if annotation is SecretStr:
        return "str, secret"
    return getattr(annotation, "__name__", str(annotation)).replace("|", "/")


@cli.command("docs", hidden=True)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root to write docs/ into.")
def docs(root: Path) -> None:
    """Regenerate docs/cli.md and docs/configuration.md from the code."""
    (root / CLI_DOC).write_text(render_cli_reference())
    (root / CONFIG_DOC).write_text(render_config_reference())
    click.echo(f"wrote {root / CLI_DOC} and {root / CONFIG_DOC}")


__all__ = ["Context", "docs", "render_cli_reference", "render_config_reference"]
