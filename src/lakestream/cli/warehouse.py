"""Commands of the warehouse: ``warehouse init|ddl|status|check`` and ``sync``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.errors import WarehouseRefusedError
from lakestream.output import console, print_rows

DIALECTS = ["mysql", "mariadb", "postgresql", "sqlite"]


@cli.group()
def warehouse() -> None:
    """The star-schema warehouse (MySQL/MariaDB, PostgreSQL or the embedded SQLite).

    The URL comes from warehouse_url in lakestream.yaml or $LAKESTREAM_WAREHOUSE_URL
    (e.g. mysql://user:pw@host:3306/lakestream); unset = <data_dir>/warehouse.db.
    """


@warehouse.command("init")
@click.option(
    "--create-database/--no-create-database",
    default=True,
    show_default=True,
    help="Create the database on a MySQL/PostgreSQL server when it does not exist.",
)
@pass_ctx
def warehouse_init(ctx: Context, create_database: bool) -> None:
    """Create the database and every missing table; safe to run again."""
    report = ctx.api.warehouse.init(create_db=create_database)
    if report.database_created:
        console.print(f"created database {report.url}", soft_wrap=True)
    if report.tables_created:
        names = ", ".join(report.tables_created)
        console.print(f"created {len(report.tables_created)} table(s): {names}", soft_wrap=True)
    else:
        console.print(
            f"schema up to date at {report.url} ({report.tables_total} tables)", soft_wrap=True
        )


@warehouse.command("ddl")
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default="mysql",
    show_default=True,
    help="SQL dialect of the statements.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write 01_create_database.sql .. 03_create_fact_tables.sql here instead of printing.",
)
def warehouse_ddl(dialect: str, out_dir: Path | None) -> None:
    """Print (or write) the statements `warehouse init` runs, for a DBA to review or run.

    \b
    Regenerate the scripts shipped in sql/:
      lakestream warehouse ddl --dialect mysql --out-dir sql
    """
    from lakestream.warehouse import WarehouseService

    if out_dir is not None:
        for path in WarehouseService.write_ddl(dialect, out_dir):
            console.print(f"wrote {path}", soft_wrap=True)
        return
    for text in WarehouseService.ddl(dialect).values():
        sys.stdout.write(text + "\n")


@warehouse.command("status")
@pass_ctx
def warehouse_status(ctx: Context) -> None:
    """Rows per table and the snapshot versions loaded into each fact."""
    statuses = ctx.api.warehouse.status()
    rows = [(s.table, s.rows, ", ".join(s.snapshots)) for s in statuses]
    print_rows(["table", "rows", "snapshots"], rows, "table")


@warehouse.command("check")
@pass_ctx
def warehouse_check(ctx: Context) -> None:
    """Verify by SQL that every fact row has its dimension row (exit 1 if not)."""
    orphans = ctx.api.warehouse.orphans()
    _raise_on_orphans(orphans)
    names = ", ".join(orphans)
    console.print(f"foreign keys sound: {names} have no orphan rows", soft_wrap=True)


@cli.command()
@click.option(
    "--table",
    "-t",
    "tables",
    multiple=True,
    help="Load only this lake table (repeatable); dimensions are always loaded.",
)
@pass_ctx
def sync(ctx: Context, tables: tuple[str, ...]) -> None:
    """Load the lake's dimensions and latest table versions into the warehouse.

    Dimensions come from streams/transaction_flattened (latest attributes by
    event time); each table's current version lands in its fact table as
    snapshot_version v<N>. Re-running loads nothing twice. Run
    `lakestream warehouse init` once first.
    """
    report = ctx.api.warehouse.sync(list(tables) or None)
    width = max(len(t.table) for t in report.tasks)
    for t in report.tasks:
        tries = f"{t.attempts} tries" if t.attempts != 1 else "1 try"
        console.print(
            f"{t.table:<{width}}  {t.version or '-':>4}  {t.rows_in:>9,} in  {t.rows_loaded:>9,} "
            f"loaded  {t.inferred:>5,} inferred  {t.rejected:>5,} rejected  ({tries}, "
            f"{t.seconds:.2f}s)" + (f"  {t.note}" if t.note else ""),
            soft_wrap=True,
        )
    _raise_on_orphans(report.orphans)
    console.print(f"sync {report.run_id} done: foreign keys sound", soft_wrap=True)


def _raise_on_orphans(orphans: dict[str, int]) -> None:
    broken = {table: n for table, n in orphans.items() if n}
    if broken:
        detail = ", ".join(f"{table}: {n}" for table, n in broken.items())
        raise WarehouseRefusedError(
            f"fact rows without their dimension row: {detail}",
            "run `lakestream sync` again; it inserts the missing dimension members",
        )
