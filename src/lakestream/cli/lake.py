"""``lakestream lake``: operations on the lake as a whole (``upgrade``)."""

from __future__ import annotations

import json

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.output import console, err_console


@cli.group()
def lake() -> None:
    """Operations on the lake as a whole."""


@lake.command()
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@pass_ctx
def upgrade(ctx: Context, dry_run: bool, fmt: str) -> None:
    """Turn a lake written before Delta Lake into Delta tables, in place.

    \b
    Every dataset (streams, bronze, tables, silver, dead letters) becomes a
    Delta table that references its live Parquet files where they are: no
    data is copied. Kafka offsets move from the old offset ledger and table
    version manifests into the tables' logs, so `lakestream ingest` resumes
    every partition right after the last record the lake holds.
    Afterwards the old bookkeeping (_ledger/, _staging/, _day.json,
    _retention.json) and files it no longer counted live are deleted, and
    _metadata.json is rewritten from the log.

    \b
    Stop ingest, process and export first. Safe to run again at any time: a
    dataset already upgraded is skipped, one interrupted is finished.
    Start with --dry-run: it lists every dataset, file, offset and deletion
    the real run makes.

    \b
    Examples:
      lakestream lake upgrade --dry-run
      lakestream lake upgrade
    """
    say = None if fmt == "json" else (lambda m: err_console.print(f"lake upgrade: {m}"))
    upgrades = ctx.api.upgrade_lake(dry_run=dry_run, progress=say)
    if fmt == "json":
        from lakestream.lake.upgrade import as_json

        console.print_json(json.dumps({"dry_run": dry_run,
                                       "datasets": [as_json(u) for u in upgrades]}))
        return
    from lakestream.lake.upgrade import describe

    for item in upgrades:
        for line in describe(item, dry_run):
            console.print(line, soft_wrap=True, markup=False)
    done = "would upgrade" if dry_run else "upgraded"
    console.print(f"{done} {len(upgrades)} dataset(s)" if upgrades
                  else "nothing to upgrade: every dataset is a Delta table already")
