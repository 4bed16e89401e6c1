"""Commands of the users' own ksqlDB statement files: add, list, show, remove."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.derive.programs import outputs_of
from lakestream.derive.statements import StreamPlan
from lakestream.output import console


@cli.group()
def statements() -> None:
    """Your own ksqlDB statements, run by `lakestream process` next to the shipped ones.

    \b
    A registered file is compiled on top of the shipped program, so it may read
    the shipped streams (transaction_flattened, transaction_stream, …), the
    reference tables (exchange_rates, blacklist), the outputs of files added
    before it, or its own sources (CREATE STREAM … WITH (KAFKA_TOPIC=…)). Each
    stream and table it creates is published to its topic and becomes a feed
    of the pipeline, which `lakestream ingest` lands. The supported subset and
    the differences from ksqlDB: docs/ksqldb.md.

    \b
    Example:
      lakestream statements add revenue.sql --pipeline finance
      lakestream statements show revenue
      lakestream process            # restart it on every host to run the new file
      lakestream ingest --pipeline finance
    """


@statements.command("add")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--pipeline", default="transactions", show_default=True,
              help="The pipeline the outputs' feeds belong to.")
@click.option("--name", default=None,
              help="The name to register it under (default: the file's name without .sql).")
@click.option("--dry-run", is_flag=True, help="Validate and show the outputs; register nothing.")
@pass_ctx
def statements_add(ctx: Context, file: str, pipeline: str, name: str | None,
                   dry_run: bool) -> None:
    """Validate a statements file and register it (FILE, or - for standard input).

    \b
    The whole program must compile with it: a statement outside the supported
    subset is refused with one line naming the clause and the line, and nothing
    is registered. Each output must have a name and topic no feed has yet.
    A running `process` picks the file up when restarted; a new table's state
    starts from the processor's current positions of the input (events it
    already processed are not counted again).
    """
    if file == "-":
        text, stem = sys.stdin.read(), "stdin"
    else:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {file}: {exc.strerror}",
                                     param_hint="FILE") from None
        except UnicodeDecodeError:
            raise click.BadParameter(f"cannot read {file}: it is not UTF-8 text",
                                     param_hint="FILE") from None
        stem = path.stem
    if name is None and file == "-":
        raise click.UsageError("statements from standard input need --name")
    added = ctx.api.statements.add(text, name or stem, pipeline, ctx.api.feeds, dry_run=dry_run)
    verb = "would register" if dry_run else "registered"
    console.print(f"{verb} {added.entry.source}: {len(added.outputs)} output(s), each a feed "
                  f"of pipeline '{pipeline}'")
    for output in added.outputs:
        kind = "stream" if isinstance(output, StreamPlan) else "table "
        keys = f" key ({', '.join(output.key_columns)})" if output.key_columns else ""
        console.print(f"  {kind} {output.name} → topic {output.topic}{keys}, "
                      f"{len(output.columns)} columns", soft_wrap=True)
    if not dry_run:
        console.print("restart `lakestream process` (on every host) to run it; "
                      f"`lakestream ingest --pipeline {pipeline}` lands its outputs")


@statements.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def statements_list(ctx: Context, fmt: str) -> None:
    """List the registered files, in the order `process` runs them (after the shipped ones)."""
    entries = ctx.api.statements.entries()
    if fmt == "json":
        click.echo(json.dumps([{"name": e.name, "pipeline": e.pipeline, "file": e.source,
                                "outputs": list(e.outputs), "added_at": e.added_at}
                               for e in entries], indent=2))
        return
    if not entries:
        console.print("no statements file is registered (lakestream statements add FILE)")
        return
    table = Table("name", "pipeline", "file", "outputs", "added_at")
    for e in entries:
        table.add_row(e.name, e.pipeline, e.source, ", ".join(e.outputs), e.added_at)
    console.print(table)


@statements.command("show")
@click.argument("name", required=False)
@click.option("--plan", "plan_only", is_flag=True, help="Only the compiled plan, not the file.")
@pass_ctx
def statements_show(ctx: Context, name: str | None, plan_only: bool) -> None:
    """Show a registered file and what it compiles to; no NAME: the whole program."""
    registry = ctx.api.statements
    program = registry.program()
    if name is None:
        click.echo(program.describe(), nl=False)
        return
    entry = registry.get(name)
    if not plan_only:
        click.echo(f"-- {entry.source} (pipeline {entry.pipeline}, added {entry.added_at})")
        click.echo(entry.path.read_text(encoding="utf-8").rstrip("\n"))
        click.echo("\n-- compiles to:")
    click.echo(outputs_of(program, entry).describe(), nl=False)


@statements.command("remove")
@click.argument("name")
@pass_ctx
def statements_remove(ctx: Context, name: str) -> None:
    """Unregister a file; its outputs' feeds are archived, their data stays in the lake.

    Refused while a file added after it reads one of its outputs. Running
    processors stop publishing its outputs when restarted; its tables' state
    stays in the state store (a file added again later under the same table
    names continues from it).
    """
    entry, archived = ctx.api.statements.remove(name, ctx.api.feeds)
    console.print(f"removed {entry.source}")
    if archived:
        console.print(f"  archived feeds (data kept; `lakestream feeds restore NAME`): "
                      f"{', '.join(archived)}", soft_wrap=True)
    console.print("restart `lakestream process` (on every host) to stop running it")
