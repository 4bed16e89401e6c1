"""Commands of the feed registry: list, show."""

from __future__ import annotations

import json

import click
from rich.table import Table

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.output import console


@cli.group()
def feeds() -> None:
    """The feed registry: which topics land where (built-ins + feeds/active/*.yaml)."""


@feeds.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def feeds_list(ctx: Context, fmt: str) -> None:
    """List every feed with its topic, dataset and state."""
    rows = [{"name": f.name, "kind": f.kind, "topic": f.topic, "dataset": f.dataset,
             "pipeline": f.pipeline, "enabled": f.enabled, "sensitivity": f.sensitivity}
            for f in ctx.api.feeds]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(*rows[0].keys()) if rows else Table("name")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@feeds.command("show")
@click.argument("name")
@pass_ctx
def feeds_show(ctx: Context, name: str) -> None:
    """Show one feed's definition and what the lake holds of it."""
    feed = ctx.api.feeds.get(name)
    definition = feed.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    held = ctx.api.dataset_metadata(feed)
    click.echo(json.dumps({"feed": definition, "lake": held}, indent=2))
