"""Commands of the batch side: ``export``, ``metadata report|stats|export-csv``, ``compact``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import cast

import click
from rich.table import Table

from lakestream.batchload.service import Runner, Source
from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.lake.report import LakeReport, report_csv, report_json, stats_json
from lakestream.output import console, progress_bar
from lakestream.rebuild.day import RebuildReport


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date like 2025-01-15") from None


# -- export ---------------------------------------------------------------------------------


@cli.command()
@click.option("--all", "everything", is_flag=True,
              help="Every enabled feed: streams append what is new, tables write a new version.")
@click.option("--stream", default=None, help="Export one stream feed (append what is new).")
@click.option("--date", "day", default=None, callback=_date,
              help="With --stream: rebuild this day (YYYY-MM-DD) from the source, atomically.")
@click.option("--table", default=None, help="Write a new version of one table feed.")
@click.option("--pipeline", default=None, help="With --all: only the feeds of this pipeline.")
@click.option("--source", type=click.Choice(["auto", "kafka", "ksqldb"]), default="auto",
              show_default=True, help="auto = ksqlDB when ksqldb_url is set, else Kafka.")
@click.option("--idle-timeout", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds without new records after which a stream append is complete.")
@click.option("--runner", type=click.Choice(["builtin", "beam"]), default="builtin",
              show_default=True,
              help="Who runs stream appends: Lakestream's consumer, or an Apache Beam pipeline "
                   "(needs the beam extra; see docs/operations.md).")
@click.option("--beam-option", "beam_options", multiple=True, metavar="KEY=VALUE",
              help="With --runner beam: a Beam pipeline option, repeatable "
                   "(runner=FlinkRunner, flink_master=host:8081, ...; default DirectRunner).")
@pass_ctx
def export(ctx: Context, everything: bool, stream: str | None, day: dt.date | None,
           table: str | None, pipeline: str | None, source: str, idle_timeout: float,
           runner: str, beam_options: tuple[str, ...]) -> None:
    """Batch export from Kafka (or ksqlDB) into the lake.

    Streams append what arrived since the last export (each Delta table's
    log holds the Kafka offsets it landed; a running `lakestream ingest` is
    never duplicated). --date rebuilds exactly that day from the source and
    replaces it in one commit: readers see the old day or the new one, never
    a mix.

    \b
    Examples:
      lakestream export --all
      lakestream export --stream transaction_stream
      lakestream export --stream transaction_stream --date 2025-01-15
      lakestream export --table user_transaction_summary --source ksqldb
      lakestream export --all --runner beam --beam-option direct_num_workers=4
    """
    api = ctx.api
    total = len(api.feeds.select(pipeline)) if everything else 1
    with progress_bar("exporting", total) as advance:
        results = api.batch.export(everything, stream, table, day, pipeline,
                                   cast(Source, source), on_feed=advance,
                                   idle_timeout_s=idle_timeout, runner=cast(Runner, runner),
                                   beam_options=beam_options)
    for r in results:
        line = f"{r.feed}: {r.mode} from {r.source}, {r.records:,} records"
        if r.version:
            line += f", version {r.version}"
        if r.rebuild is not None:
            line = f"{r.feed}: day from {r.source}, {_accounting(r.rebuild)}"
        console.print(f"{line} [{r.seconds:.1f}s]", soft_wrap=True)


def _accounting(b: RebuildReport) -> str:
    """``2025-05-01: read 434 = 400 landed + 34 dead letters (34 new in the DLQ); …``."""
    text = (f"{b.date}: read {b.read:,} = {b.records_after:,} landed + "
            f"{b.dead_letters:,} dead letters")
    if b.replays:
        text += f" + {b.replays:,} replays dropped"
    if b.new_dead_letters:
        text += f" ({b.new_dead_letters:,} new in the DLQ)"
    return (f"{text}; was {b.records_before:,} in {b.files_before} files, now "
            f"{b.records_after:,} in {b.files_after} ({b.mode})")


# -- metadata -------------------------------------------------------------------------------


@cli.group()
def metadata() -> None:
    """What the lake holds per dataset: records, bytes, files, dates, versions, freshness."""


def _report(ctx: Context) -> LakeReport:
    with progress_bar("reading the lake", ctx.api.batch.dataset_count()) as advance:
        return ctx.api.batch.report(on_dataset=advance)


@metadata.command("report")
@click.option("--partitions", is_flag=True, help="Add one line per partition (day or version).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@pass_ctx
def metadata_report(ctx: Context, partitions: bool, fmt: str) -> None:
    """A readable report of every dataset (schema, offsets, last export included).

    \b
    Examples:
      lakestream metadata report
      lakestream metadata report --partitions --format json
    """
    report = _report(ctx)
    if fmt == "json":
        click.echo(json.dumps(report_json(report, partitions), indent=2))
        return
    for d in report.datasets:
        console.print(f"[bold]{d.name}[/bold] ({d.kind}, {d.path})")
        console.print(f"  {d.records:,} records, {d.bytes / 1e6:,.1f} MB in {d.files} files, "
                      f"{d.partitions} partitions ({d.first_date or '-'} .. {d.last_date or '-'})")
        if d.versions:
            console.print(f"  {d.versions} versions, current {d.current_version}")
        fresh = "-" if d.freshness_s is None else f"{d.freshness_s:,.0f}s ago"
        console.print(f"  last export {d.last_export or '-'}; last write {fresh}")
        if d.kafka_offsets:
            console.print(f"  offsets {json.dumps(d.kafka_offsets)}", soft_wrap=True)
        if d.schema:
            console.print("  schema " + ", ".join(f"{c['name']} {c['type']}" for c in d.schema),
                          soft_wrap=True)
        for p in d.partition_detail if partitions else []:
            console.print(f"    {p.partition or '(root)'}: {p.records:,} records, "
                          f"{p.files} files, {p.bytes / 1e6:,.2f} MB")
    totals = report.totals()
    console.print(f"{totals['datasets']} datasets, {totals['records']:,} records, "
                  f"{totals['bytes'] / 1e6:,.1f} MB in {totals['files']} files at {report.lake}",
                  soft_wrap=True)


@metadata.command("stats")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format (json: the stable form scripts use).")
@pass_ctx
def metadata_stats(ctx: Context, fmt: str) -> None:
    """One line of numbers per dataset.

    \b
    Examples:
      lakestream metadata stats
      lakestream metadata stats --format json | jq '.totals.records'
    """
    report = _report(ctx)
    if fmt == "json":
        click.echo(json.dumps(stats_json(report), indent=2))
        return
    table = Table("dataset", "kind", "records", "MB", "files", "partitions", "first", "last",
                  "versions", "last export")
    for d in report.datasets:
        table.add_row(d.name, d.kind, f"{d.records:,}", f"{d.bytes / 1e6:,.1f}", str(d.files),
                      str(d.partitions), d.first_date or "-", d.last_date or "-",
                      str(d.versions or "-"), (d.last_export or "-")[:19])
    console.print(table)


@metadata.command("export-csv")
@click.option("--partitions", is_flag=True, help="One row per partition instead of per dataset.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@pass_ctx
def metadata_export_csv(ctx: Context, partitions: bool, output: Path | None) -> None:
    """The statistics as CSV (per dataset, or per partition).

    \b
    Examples:
      lakestream metadata export-csv -o lake.csv
      lakestream metadata export-csv --partitions > partitions.csv
    """
    text = report_csv(_report(ctx), partitions)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:  # a folder, a missing folder, no permission: the user's path
        raise click.BadParameter(f"cannot write {str(output)!r}: {exc.strerror or exc}",
                                 param_hint="'--output'") from None
    console.print(f"wrote {text.count(chr(10)) - 1} rows to {output}")


# -- compact --------------------------------------------------------------------------------


@cli.command()
@click.option("--feed", "-f", default=None, help="Compact only this feed's dataset.")
@click.option("--date", "day", default=None, callback=_date,
              help="Compact only this day (YYYY-MM-DD).")
@click.option("--target-mb", type=click.IntRange(min=1), default=None,
              help="Size to aim for per merged file, in MiB [default: lake.compact_target_mb, "
                   "128].")
@click.option("--dry-run", is_flag=True,
              help="List the partitions and files a real run would rewrite; change nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def compact(ctx: Context, feed: str | None, day: dt.date | None, target_mb: int | None,
            dry_run: bool, fmt: str) -> None:
    """Merge small files of date partitions into files near a target size, atomically.

    On a Delta dataset this is Delta's OPTIMIZE (compact), one commit per day
    partition: every reader sees the small files or the merged ones, never
    both; rows, values, the table's protocol and its Kafka offsets are
    unchanged, and appends committed meanwhile are kept. The replaced files
    stay on storage until `lakestream retention` vacuums them after the grace
    period (lake.vacuum_grace_hours). --dry-run lists exactly the files a real
    run rewrites. Plain-Parquet datasets (before `lake upgrade`) are merged
    the old way.

    \b
    Examples:
      lakestream compact --dry-run
      lakestream compact --feed transaction_stream --date 2025-01-15
      lakestream compact --target-mb 256 --format json
    """
    batch = ctx.api.batch
    target = (target_mb or ctx.api.settings.lake.compact_target_mb) * 1024 * 1024
    with progress_bar("compacting", len(batch.compaction_feeds(feed))) as advance:
        results = batch.compact(feed, day, target, dry_run, on_feed=advance)
    if fmt == "json":
        click.echo(json.dumps({"dry_run": dry_run, "target_bytes": target,
                               "partitions": [vars(r) for r in results]}, indent=2))
        return
    if not results:
        console.print("nothing to compact: no partition has several small files")
        return
    verb = "would merge" if dry_run else "merged"
    for r in results:
        size = "" if dry_run else f", {r.bytes_before:,} -> {r.bytes_after:,} bytes"
        console.print(f"{r.dataset} {r.date}: {verb} {r.merged} files; {r.files_before} -> "
                      f"{r.files_after} files{size}" + ("" if dry_run else f" ({r.mode})"),
                      soft_wrap=True)
        if dry_run:
            for path in r.rewritten:
                console.print(f"  {path}", soft_wrap=True, highlight=False)
    if any(r.mode == "manifest" for r in results):
        console.print("note: on this storage plain readers may have seen both versions for a "
                      "moment; Lakestream's reader never does (docs/operations.md)")
