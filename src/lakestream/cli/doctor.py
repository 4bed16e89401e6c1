"""``lakestream doctor``: check the configured connections."""

from __future__ import annotations

import sys

import click
from rich.markup import escape
from rich.table import Table

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.output import console


@cli.command()
@click.option("--fix", is_flag=True,
              help="Set cleanup.policy=compact on existing table topics that lack it.")
@pass_ctx
def doctor(ctx: Context, fix: bool) -> None:
    """Check every configured connection and say what is wrong and how to fix it.

    \b
    Checks: Kafka (or the embedded broker, and whether Lakestream's consumer
    groups — kafka.group_id, its -warehouse twin, lakestream-processor — are
    stuck rebalancing, and whether the table topics are compacted: a warning
    if not, which --fix repairs), the lake (write/read/delete a probe
    object, local or S3), the warehouse, the gold store and ksqlDB when
    configured, and the secrets the pipelines need. Exit 1 if any check
    fails; warnings do not change the exit code.
    """
    from lakestream.doctor import run_checks

    checks = run_checks(ctx.api, fix=fix)
    table = Table("check", "target", "result", "how to fix")
    for c in checks:
        mark = ("[red]FAILED[/]" if not c.ok else "[yellow]warning[/]" if c.warning
                else "[green]ok[/]")
        table.add_row(c.name, escape(c.target), f"{mark} {escape(c.detail)}", escape(c.hint))
    console.print(table)
    warned = [c.name for c in checks if c.warning]
    if warned:
        console.print(f"{len(warned)} warning(s): {', '.join(warned)}")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        console.print(f"{len(failed)} check(s) failed: {', '.join(failed)}")
        sys.exit(1)
    console.print("everything configured answers")
