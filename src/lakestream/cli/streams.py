"""Commands of the streaming spine: broker, produce, ingest, query, demo."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.errors import LakestreamError
from lakestream.ingest.engine import IngestReport
from lakestream.kafka.drain import describe_progress
from lakestream.kafka.parallel import run_all
from lakestream.output import console, err_console, print_ingest_report, print_rows, progress_bar

if TYPE_CHECKING:
    from lakestream.feeds import Feed


def until_idle_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--until-idle``, ``--idle-timeout`` and ``--drain-timeout`` of the consuming commands."""
    options = [
        click.option("--until-idle", is_flag=True,
                     help="Exit 0 once every partition is drained here or owned by another "
                     "live member of the group (see above)."),
        click.option("--idle-timeout", type=click.FloatRange(min=0.1), default=3.0,
                     show_default=True,
                     help="Seconds without records (per partition, with its end offset "
                     "reached) that count as its end, with --until-idle."),
        click.option("--drain-timeout", type=click.FloatRange(min=1), default=None,
                     help="With --until-idle: exit 1 after this many seconds without progress "
                     "[default: kafka.drain_timeout_s, 120]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def say(line: str) -> None:
    """A status line on stderr (waiting for the group, a broker that is down)."""
    err_console.print(f"[dim]{escape(line)}[/dim]", soft_wrap=True)


# -- broker ---------------------------------------------------------------------------------


@cli.group()
def broker() -> None:
    """Run the embedded Kafka-protocol broker (Tansu) in the background."""


@broker.command("start")
@click.option(
    "--storage-engine",
    default="memory://tansu/",
    show_default=True,
    help="memory://tansu/ (lost on stop) or s3://bucket/ (needs AWS_* variables).",
)
@pass_ctx
def broker_start(ctx: Context, storage_engine: str) -> None:
    """Start the broker on a free loopback port; other commands find it automatically."""
    state = ctx.api.broker_start(storage_engine)
    verb = "already running" if state["already_running"] else "started"
    console.print(f"broker {verb} at {state['bootstrap_servers']} (pid {state['pid']})")


@broker.command("stop")
@pass_ctx
def broker_stop(ctx: Context) -> None:
    """Stop the background broker started by `lakestream broker start`."""
    state = ctx.api.broker_stop()
    console.print(
        "no embedded broker is running"
        if state is None
        else f"broker at {state['bootstrap_servers']} stopped"
    )


@broker.command("status")
@pass_ctx
def broker_status(ctx: Context) -> None:
    """Say whether the background broker runs, and where."""
    state = ctx.api.broker_status()
    if state is None:
        raise LakestreamError("no embedded broker is running", "start one: lakestream broker start")
    console.print(
        f"broker running at {state['bootstrap_servers']} (pid {state['pid']}, "
        f"storage {state['storage_engine']})"
    )


# -- produce --------------------------------------------------------------------------------


@cli.group()
def produce() -> None:
    """Produce events into Kafka (the event generators)."""


@produce.command("transactions")
@click.option(
    "--messages",
    "-n",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="How many events to send.",
)
@click.option(
    "--rate",
    "-r",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Events per second; 0 = as fast as possible.",
)
@click.option("--seed", type=int, default=None, help="Seed for reproducible events.")
@pass_ctx
def produce_transactions(ctx: Context, messages: int, rate: float, seed: int | None) -> None:
    """Generate realistic transaction events into the `transactions` topic.

    Events are keyed by user id; about 2 % arrive late (event time 1-72 h in the
    past) and land in their own day's partition.
    """
    with progress_bar("producing transactions", messages) as advance:
        report = ctx.api.produce_transactions(messages, rate, seed, on_progress=advance)
    console.print(
        f"sent {report.sent:,} events ({report.bytes / 1e6:.1f} MB) to 'transactions' "
        f"in {report.seconds:.1f}s ({report.rate:,.0f}/s); "
        f"acknowledged {report.delivered:,}, failed {report.failed:,}"
    )
    if report.failed:
        raise LakestreamError(f"{report.failed} events were not delivered: {report.first_error}")


# -- ingest ---------------------------------------------------------------------------------


@cli.command()
@click.option("--pipeline", "-p", default=None, help="Ingest every enabled feed of this pipeline.")
@click.option("--feed", "-f", default=None, help="Ingest only this feed.")
@click.option(
    "--sink",
    type=click.Choice(["lake", "warehouse", "all"]),
    default="lake",
    show_default=True,
    help="Where to land the records.",
)
@until_idle_options
@click.option("--group", default=None, help="Consumer group (default: kafka.group_id).")
@pass_ctx
def ingest(
    ctx: Context,
    pipeline: str | None,
    feed: str | None,
    sink: str,
    until_idle: bool,
    idle_timeout: float,
    drain_timeout: float | None,
    group: str | None,
) -> None:
    """Land Kafka topics in the lake, exactly once, until SIGTERM or until idle.

    Records are written as Parquet under <lake>/streams/<feed>/year=/month=/day=
    by their event time; bad records go to <lake>/_dlq/<feed>/ with the reason.
    Start several ingest processes with the same --group to split partitions.

    \b
    --sink warehouse keeps the warehouse's `live` snapshot current from the table
    topics (and dimensions from transaction_flattened), offsets committed in the
    same database transaction as the rows; --sink all runs both sinks.

    \b
    --until-idle exits 0 only when every partition of the feeds' topics was
    read to its end by this process, or is owned by another live member of
    the group: one of several members drains only what it owns. After a crash
    it waits for the group to expel the dead members (session timeout plus a
    margin) and drains their partitions too. It exits 1, naming the group and
    the partitions left, when nothing progresses for --drain-timeout seconds
    (a group stuck rebalancing, a broker that stays down); what was read is
    committed, so the next run goes on from there.
    """
    show = _progress_printer() if sys.stderr.isatty() else None
    consumers: list[Any] = []
    names: list[str] = []
    feeds: list[Feed] = []
    if sink in ("lake", "all"):
        feeds = ctx.api.select_feeds(pipeline, feed)
        names = [f.name for f in feeds]
        consumers.append(ctx.api.ingest_engine(feeds, until_idle, idle_timeout, group,
                                               progress=show, status=say,
                                               drain_timeout_s=drain_timeout))
    if sink in ("warehouse", "all"):
        consumers.append(ctx.api.warehouse_loader(until_idle, idle_timeout, status=say,
                                                  drain_timeout_s=drain_timeout))
    on_signals(lambda *_: [c.stop() for c in consumers])
    for report in run_all(consumers):
        if isinstance(report, IngestReport):
            print_ingest_report(report, names, ctx.api.lake_holdings(feeds))
        else:
            from lakestream.warehouse.streaming import describe

            console.print(describe(report))
        console.print(f"  per partition: {describe_progress(report.partitions)}")


def _progress_printer() -> Callable[[IngestReport, dict[str, int]], None]:
    last = {"consumed": 0, "at": 0.0}

    def show(report: IngestReport, lag: dict[str, int]) -> None:
        rate = (report.consumed - last["consumed"]) / max(report.elapsed - last["at"], 1e-6)
        last.update(consumed=report.consumed, at=report.elapsed)
        err_console.print(
            f"ingest: {report.consumed:,} consumed, {report.written:,} written, "
            f"{report.rejected:,} to DLQ, {rate:,.0f}/s, lag≈{sum(lag.values()):,}; "
            f"read {describe_progress(report.partitions, compact=True)}", soft_wrap=True
        )

    return show


def on_signals(handler: Callable[..., Any]) -> None:
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# -- query ----------------------------------------------------------------------------------


@cli.command()
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--as",
    "principal",
    default=None,
    metavar="PRINCIPAL",
    help="Run as this principal: only datasets they may read; the read is audited.",
)
@pass_ctx
def query(ctx: Context, sql: str, fmt: str, principal: str | None) -> None:
    """Run DuckDB SQL over the lake; every dataset is a view of its name.

    With --as, the statement must be one SELECT that reads only datasets the
    principal may read (see `lakestream permissions`); it runs in a DuckDB
    connection holding only those views, without file or network access.

    \b
    Examples:
      lakestream query "SELECT count(*) FROM transaction_stream"
      lakestream query "SELECT status, count(*) FROM transaction_stream
                        WHERE year = 2025 AND month = 1 AND day = 15 GROUP BY 1"
      lakestream query "SELECT reason, count(*) FROM dlq_transaction_stream GROUP BY 1"
      lakestream query "SELECT * FROM payment_method_totals" --as analyst --format json
    """
    columns, rows = ctx.api.query(sql, principal)
    print_rows(columns, rows, fmt)


# -- demo -----------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--messages",
    "-n",
    type=click.IntRange(min=10),
    default=5000,
    show_default=True,
    help="Transaction events to produce.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Generator seed.")
@click.option("--serve", is_flag=True, help="Then serve the dashboard until Ctrl-C.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port of the dashboard (with --serve).")
@pass_ctx
def demo(ctx: Context, messages: int, seed: int, serve: bool, port: int) -> None:
    """Run the main job on embedded defaults and print a summary.

    Starts a broker, produces transaction events (plus a few bad ones), ingests
    them into a fresh lake under <data_dir>/demo/lake, queries it, and tells
    you what to try next. Safe to re-run: the demo area is rebuilt each time.
    """
    from lakestream.demo import run_demo

    summary = run_demo(ctx.api, messages, seed)
    if serve:
        from lakestream.cli.web import serve_demo

        serve_demo(summary["config"], port, ctx.debug)


