"""Commands of the ksqlDB-equivalent processor: process, reference."""

from __future__ import annotations

import json
import sys

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.cli.streams import on_signals, say, until_idle_options
from lakestream.kafka.drain import describe_progress
from lakestream.output import console, err_console


@cli.command()
@until_idle_options
@pass_ctx
def process(ctx: Context, until_idle: bool, idle_timeout: float,
            drain_timeout: float | None) -> None:
    """Run the ksqlDB statements: derived streams and exact aggregate tables.

    \b
    Compiles sql/ksqldb/*.sql and runs it on `transactions`, publishing each
    output to a topic of its name:
      streams  transaction_flattened, transaction_stream_anonymized,
               transaction_stream_blacklisted
      tables   user_transaction_summary, user_transaction_summary_eur,
               payment_method_totals, product_purchase_counts  (changelogs keyed by key)
    Then the statement files you registered (`lakestream statements list`), in
    the order they were added, each output to its topic. After a `statements
    add` or `remove`, restart every `process`: one still running the old
    program is refused its next commit (or, holding no partition, stops
    within 5 s) and exits 1 saying so.
    Events that break the `transactions` contract go to the processor's dead
    letters. Aggregates are exact and stay exact across kill -9: state and input
    offsets are committed together in the state store (state_url /
    LAKESTREAM_STATE_URL: PostgreSQL or MariaDB shared by several hosts; default
    <data_dir>/state/processor.sqlite). Needs LAKESTREAM_ANON_KEY (the HMAC key
    of the anonymized stream). Teams running ksqlDB can run the same statements
    there instead (docs/ksqldb.md).

    \b
    --until-idle exits 0 only when every partition of `transactions` was read
    to its end by this process or is owned by another live member of the
    group (one of several members drains only what it owns); after a crash it
    waits for the group to expel dead members, then drains their partitions.
    It exits 1, naming what is left, after --drain-timeout seconds without
    progress; what was processed stays committed.
    """
    show = None
    if sys.stderr.isatty():
        def show(report: object, lag: dict[str, int]) -> None:
            partitions = describe_progress(getattr(report, "partitions", {}), compact=True)
            err_console.print(f"process: {getattr(report, 'consumed', 0):,} consumed, "
                              f"lag≈{sum(lag.values()):,}; read {partitions}", soft_wrap=True)
    processor = ctx.api.processor(until_idle, idle_timeout, progress=show, status=say,
                                  drain_timeout_s=drain_timeout)
    on_signals(lambda *_: processor.stop())
    report = processor.run()
    late = f" ({report.late:,} late for a window)" if report.late else ""
    console.print(f"processed {report.processed:,} events ({report.consumed:,} consumed); "
                  f"{report.blacklisted:,} blacklisted; {report.rejected:,} to the DLQ{late}; "
                  f"{report.published:,} records published in {report.elapsed:.1f}s")
    console.print(f"  per partition: {describe_progress(report.partitions)}")


@cli.group()
def reference() -> None:
    """Show or change the reference data: exchange rates and the blacklist."""


@reference.command("rates")
@click.option("--set", "pair", nargs=2, type=(str, click.FloatRange(min=0, min_open=True)),
              default=None, metavar="CURRENCY RATE", help="Set a currency's value in USD.")
@click.option("--usd-to-eur", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Set the USD → EUR rate.")
@click.option("--as-of", default=None, help="Date the rates are valid from (YYYY-MM-DD).")
@pass_ctx
def rates(ctx: Context, pair: tuple[str, float] | None, usd_to_eur: float | None,
          as_of: str | None) -> None:
    """Show the exchange rates, or change them (the processor picks changes up).

    \b
    Examples:
      lakestream reference rates
      lakestream reference rates --set GBP 1.25 --as-of 2025-02-01
      lakestream reference rates --usd-to-eur 0.91
    """
    store = ctx.api.reference()
    if pair is not None or usd_to_eur is not None:
        currency, value = pair if pair is not None else ("USD", None)
        store.set_rate(currency.upper(), value, usd_to_eur, as_of)
    current = store.rates()
    console.print_json(json.dumps({"as_of": current.as_of, "to_usd": current.to_usd,
                                   "usd_to_eur": current.usd_to_eur}))


@reference.command("blacklist")
@click.argument("action", type=click.Choice(["show", "add", "remove"]), default="show")
@click.argument("kind", required=False,
                type=click.Choice(["user_ids", "countries", "ip_prefixes", "card_last4"]))
@click.argument("value", required=False)
@pass_ctx
def blacklist(ctx: Context, action: str, kind: str | None, value: str | None) -> None:
    """Show the blacklist, or add/remove one entry; new events are checked against it.

    \b
    Examples:
      lakestream reference blacklist
      lakestream reference blacklist add countries KP
      lakestream reference blacklist add ip_prefixes 203.0.113.
      lakestream reference blacklist remove user_ids U00013
    """
    store = ctx.api.reference()
    if action != "show":
        if kind is None or value is None:
            raise click.UsageError(f"'{action}' needs KIND and VALUE")
        store.change_blacklist(kind, value, add=action == "add")
    current = store.blacklist()
    console.print_json(json.dumps(current.__dict__))
