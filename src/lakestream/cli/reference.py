"""Generated documentation: the CLI reference from the commands' own help, and the
configuration reference from the config models. ``lakestream docs`` writes both;
a test fails when the committed files drift from what the code says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import click
from pydantic import BaseModel

from lakestream.cli.root import Context, cli
from lakestream.config import ENV_OVERRIDES, SECRET_KEYS, Settings

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
    env_of = {dotted: var for var, dotted in ENV_OVERRIDES.items()}
    lines = ["# Configuration reference\n",
             "Generated from the configuration models by `lakestream docs`; do not edit by "
             "hand.\n",
             "Settings come from `lakestream.yaml` in the working directory (or `--config "
             "FILE`), then the environment variables below override them. With nothing "
             "configured the embedded defaults apply. Secrets are read only from the "
             "environment or a `.env` file; a config file holding one is refused.\n",
             "| key | type | default | environment | description |", "|---|---|---|---|---|"]
    lines += _model_rows(Settings, "", env_of)
    return "\n".join(lines) + "\n"


def _model_rows(model: type[BaseModel], prefix: str, env_of: dict[str, str]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _model_rows(annotation, f"{dotted}.", env_of)
            continue
        if name == "source" and not prefix:
            continue
        kind = _type_name(annotation)
        default = "" if field.default_factory else repr(field.default)
        if dotted in SECRET_KEYS:
            default = "(secret: environment only)"
        env = f"`{env_of[dotted]}`" if dotted in env_of else ""
        rows.append(f"| `{dotted}` | {kind} | {default.replace('|', '/')} | {env} | "
                    f"{(field.description or '').replace('|', '/')} |")
    return rows


def _type_name(annotation: Any) -> str:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args:
        return " or ".join(_type_name(a) for a in args)
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
