"""Commands of the feed registry: list and show, and its lifecycle (add .. delete)."""

from __future__ import annotations

import json
from typing import Any

import click
import yaml
from rich.table import Table

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.output import console


@cli.group()
def feeds() -> None:
    """The feed registry: which topics land where (built-ins + feeds/active/*.yaml)."""


@feeds.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--archived", is_flag=True, help="Also list the archived feeds.")
@pass_ctx
def feeds_list(ctx: Context, fmt: str, archived: bool) -> None:
    """List every feed with its topic, dataset and state."""
    rows = [{"name": f.name, "kind": f.kind, "topic": f.topic, "dataset": f.dataset,
             "pipeline": f.pipeline, "enabled": f.enabled, "sensitivity": f.sensitivity}
            for f in ctx.api.feeds]
    if archived:
        rows += [{"name": name, "kind": "-", "topic": "-", "dataset": "-", "pipeline": "-",
                  "enabled": "archived", "sensitivity": "-"}
                 for name in ctx.api.feeds.archived()]
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


# -- lifecycle --------------------------------------------------------------------------------


def _settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are YAML (``enabled=false``, ``required=[a, b]``)."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--set")
        try:
            found[key.strip()] = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            raise click.BadParameter(f"the value of '{key}' is not valid YAML",
                                     param_hint="--set") from None
    return found


_SET = click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
                    help="Any feed key (repeatable); values are YAML, e.g. required=[a, b].")


@feeds.command("add")
@click.argument("name")
@click.option("--topic", required=True, help="The Kafka topic to land.")
@click.option("--time-field", default=None,
              help="Event-time field that decides the date partition (default: Kafka time).")
@click.option("--required", "required", multiple=True,
              help="A field that must be present (repeatable); dotted for nested fields.")
@click.option("--pipeline", default="custom", show_default=True, help="Pipeline of the feed.")
@_SET
@pass_ctx
def feeds_add(ctx: Context, name: str, topic: str, time_field: str | None,
              required: tuple[str, ...], pipeline: str, pairs: tuple[str, ...]) -> None:
    """Declare a new feed; the next `lakestream ingest` lands its topic.

    \b
    Examples:
      lakestream feeds add page_views --topic web.page_views --time-field viewed_at
      lakestream feeds add clicks --topic web.clicks --required user.id \\
          --set 'schema={user: {id: string}, at: timestamp}'
    """
    spec: dict[str, Any] = {"name": name, "topic": topic, "pipeline": pipeline}
    if time_field:
        spec["time_field"] = time_field
    if required:
        spec["required"] = list(required)
    spec.update(_settings(pairs))
    feed = ctx.api.feeds.add(spec)
    console.print(f"added feed {feed.name}: topic {feed.topic} -> {feed.dataset}", soft_wrap=True)


@feeds.command("update")
@click.argument("name")
@_SET
@click.option("--keep-existing-data", is_flag=True,
              help="Apply a topic, time-field or type change that the data already in the "
              "lake contradicts: that data stays as it is (rebuild its days to follow).")
@pass_ctx
def feeds_update(ctx: Context, name: str, pairs: tuple[str, ...],
                 keep_existing_data: bool) -> None:
    """Change keys of a feed (a built-in feed gets an override file).

    A change the feed's data in the lake contradicts is refused with the reason:
    kind and layer always (declare a new feed), topic, time field and declared
    types unless --keep-existing-data.

    \b
    Examples:
      lakestream feeds update page_views --set retention_days=30
      lakestream feeds update page_views --set 'required=[page, viewed_at]'
      lakestream feeds update page_views --set 'schema={total: double}' --keep-existing-data
    """
    if not pairs:
        raise click.UsageError("say what to change with --set KEY=VALUE")
    update = ctx.api.update_feed(name, _settings(pairs), keep_existing_data)
    console.print(f"updated feed {update.feed.name}")
    for kept in update.kept:
        console.print(f"  existing data: {kept.consequence}", soft_wrap=True)


@feeds.command("enable")
@click.argument("name")
@pass_ctx
def feeds_enable(ctx: Context, name: str) -> None:
    """Enable a feed: ingest and export pick it up again.

    \b
    Example:
      lakestream feeds enable page_views
    """
    ctx.api.feeds.set_enabled(name, True)
    console.print(f"feed {name} enabled")


@feeds.command("disable")
@click.argument("name")
@pass_ctx
def feeds_disable(ctx: Context, name: str) -> None:
    """Disable a feed: ingest and export skip it; its data stays.

    \b
    Example:
      lakestream feeds disable page_views
    """
    ctx.api.feeds.set_enabled(name, False)
    console.print(f"feed {name} disabled")


@feeds.command("archive")
@click.argument("name")
@pass_ctx
def feeds_archive(ctx: Context, name: str) -> None:
    """Move a feed to feeds/archived/: it is no longer a feed; its data stays in the lake.

    \b
    Example:
      lakestream feeds archive page_views
    """
    path = ctx.api.feeds.archive(name)
    console.print(f"feed {name} archived to {path}", soft_wrap=True)


@feeds.command("restore")
@click.argument("name")
@pass_ctx
def feeds_restore(ctx: Context, name: str) -> None:
    """Bring an archived feed back to feeds/active/.

    \b
    Example:
      lakestream feeds restore page_views
    """
    feed = ctx.api.feeds.restore(name)
    console.print(f"feed {feed.name} restored ({'enabled' if feed.enabled else 'disabled'})")


@feeds.command("delete")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete the feed's data and dead letters.")
@pass_ctx
def feeds_delete(ctx: Context, name: str, purge: bool) -> None:
    """Delete a feed (active or archived); refused while it has data, unless --purge.

    \b
    Examples:
      lakestream feeds delete page_views            # only when the lake holds none of it
      lakestream feeds delete page_views --purge    # the data goes too
    """
    held = ctx.api.batch.delete_feed(name, purge)
    removed = f"; removed {held.files} file(s), {held.bytes:,} bytes" if purge else ""
    console.print(f"feed {name} deleted{removed}")
