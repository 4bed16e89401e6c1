"""``lakestream dlq``: the feeds' dead letters — list, show, replay, purge."""

from __future__ import annotations

import datetime as dt
import json

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.ingest.dead_letters import PROGRAM_LETTERS
from lakestream.lake.dead_letter_report import LetterFilter
from lakestream.output import console, err_console

_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="Output format.")
_REASON = click.option("--reason", default=None,
                       help="Only dead letters whose reason contains this text (any case); "
                            "a group's text from `dlq list` selects the group.")


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None
           ) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date or time like 2026-12-01 or "
                                 "2026-12-01T08:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _date(_ctx: click.Context, _param: click.Parameter, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date like 2026-12-01") from None


_SINCE = click.option("--since", default=None, callback=_since,
                      help="Only dead letters rejected at or after this UTC date or time.")


@cli.group()
def dlq() -> None:
    """Dead letters: the records a feed could not land, and what to do with them.

    \b
    Every stream feed keeps the records it rejects (malformed JSON, a wrong
    type, a missing required field, ...) in its dead-letter table, with the
    raw bytes, the reason and the Kafka coordinates. After a fix (a field
    added to the feed's schema, a required field dropped: `lakestream feeds
    update`), `dlq replay` decodes them again and lands those that pass.

    \b
    Two programs keep dead letters of their own, listed, shown and purged
    under their name (never replayed): `processor` (`lakestream process`:
    events that failed their topic's contract or came late for a window)
    and `warehouse` (`lakestream ingest --sink warehouse`).

    \b
    Examples:
      lakestream dlq list
      lakestream dlq show --feed processor --reason late
      lakestream dlq show --feed transaction_stream --reason "missing required"
      lakestream dlq replay --feed transaction_stream --dry-run
      lakestream dlq purge --feed transaction_stream --before 2026-11-01
    """


@dlq.command("list")
@click.option("--feed", default=None,
              help="One stream feed, or processor / warehouse (default: every stream feed, "
                   "then the programs that kept dead letters).")
@_REASON
@_SINCE
@_FORMAT
@pass_ctx
def list_(ctx: Context, feed: str | None, reason: str | None, since: dt.datetime | None,
          fmt: str) -> None:
    """Dead letters per feed, grouped by reason: how many, first and last seen, and the
    Kafka partitions and offsets they came from."""
    letters = ctx.api.dead_letters
    where = LetterFilter(reason, since)
    found = {name: letters.groups(name, where) for name in letters.sources_of(feed)}
    if fmt == "json":
        console.print_json(json.dumps({name: [g.as_json() for g in groups]
                                       for name, groups in found.items()}))
        return
    for name, groups in found.items():
        total = sum(g.count for g in groups)
        if not total:
            console.print(f"{name}: no dead letters", markup=False)
            continue
        console.print(f"{name}: {total} dead letter(s)", markup=False)
        for g in groups:
            seen = (f"{g.first_seen:%Y-%m-%d %H:%M} .. {g.last_seen:%Y-%m-%d %H:%M}"
                    if g.first_seen and g.last_seen else "-")
            console.print(f"  {g.count:>8}  {g.reason}\n            seen {seen}; "
                          f"{g.coordinates()}", markup=False, soft_wrap=True)
        if name in PROGRAM_LETTERS:
            console.print(f"  kept by {PROGRAM_LETTERS[name][0]}; not replayable",
                          markup=False)
        else:
            console.print(f"  replay: lakestream dlq replay --feed {name} --dry-run",
                          markup=False)


@dlq.command()
@click.option("--feed", required=True, help="The stream feed, or processor / warehouse.")
@_REASON
@_SINCE
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="Show at most this many (the oldest Kafka coordinates first).")
@_FORMAT
@pass_ctx
def show(ctx: Context, feed: str, reason: str | None, since: dt.datetime | None, limit: int,
         fmt: str) -> None:
    """The dead letters themselves: reason, coordinates and raw bytes (as text when they
    are valid UTF-8, else as hex)."""
    letters = ctx.api.dead_letters
    (chosen,) = letters.sources_of(feed)
    records, total = letters.records(chosen, LetterFilter(reason, since), limit)
    if fmt == "json":
        console.print_json(json.dumps({"feed": feed, "matching": total,
                                       "shown": [r.as_json() for r in records]}))
        return
    for r in records:
        encoding, raw = r.shown
        when = f"{r.rejected_at:%Y-%m-%d %H:%M:%S}" if r.rejected_at else "-"
        console.print(f"{r.topic}[{r.partition}]@{r.offset}  key={r.key!r}  rejected {when}\n"
                      f"  reason: {r.reason}\n  {encoding}: {raw}", markup=False,
                      soft_wrap=True)
    console.print(f"{len(records)} of {total} matching dead letter(s) shown", markup=False)


@dlq.command()
@click.option("--feed", required=True, help="The stream feed.")
@_REASON
@_SINCE
@click.option("--dry-run", is_flag=True, help="Say what would land and what would still "
                                              "fail; change nothing.")
@_FORMAT
@pass_ctx
def replay(ctx: Context, feed: str, reason: str | None, since: dt.datetime | None,
           dry_run: bool, fmt: str) -> None:
    """Decode dead letters again with the feed as it is now; land those that pass.

    \b
    Those that pass land in the feed's dataset with their original Kafka
    coordinates and leave the dead letters; those that still fail stay, with
    today's reason. Exactly once: a replay run twice, or killed and run
    again, lands nothing twice. Each table changes in one commit.
    """
    letters = ctx.api.dead_letters
    (chosen,) = letters.feeds_of(feed)
    say = None if fmt == "json" else (lambda m: err_console.print(f"dlq replay: {m}",
                                                                  markup=False))
    report = letters.replay(chosen, LetterFilter(reason, since), dry_run, say)
    if fmt == "json":
        console.print_json(json.dumps(report.as_json()))
        return
    verb = "would land" if dry_run else "landed"
    console.print(f"{feed}: {report.picked} dead letter(s) matched; {verb} "
                  f"{report.landed} in {chosen.dataset}", markup=False)
    if report.already:
        console.print(f"  {report.already} were in the dataset already (a replay "
                      "interrupted between its two commits): removed from the dead letters",
                      markup=False)
    failing = sum(report.failing.values())
    if failing:
        console.print(f"  {failing} still fail ({report.reasons_changed} for another reason "
                      "than before):", markup=False)
        for why, count in report.failing.most_common():
            console.print(f"  {count:>8}  {why}", markup=False, soft_wrap=True)


@dlq.command()
@click.option("--feed", required=True, help="The stream feed, or processor / warehouse.")
@click.option("--before", required=True, callback=_date,
              help="Remove the dead letters of the days before this date (YYYY-MM-DD).")
@click.option("--dry-run", is_flag=True, help="List the days and files; remove nothing.")
@_FORMAT
@pass_ctx
def purge(ctx: Context, feed: str, before: dt.date, dry_run: bool, fmt: str) -> None:
    """Remove a feed's dead letters of the days before a date, in one commit.

    The days are the dead letters' Kafka timestamps. The purge is recorded in
    the audit trail (`lakestream audit --action dlq_purge`); the files stay on
    storage until `lakestream retention` vacuums them after the grace period.
    """
    letters = ctx.api.dead_letters
    (chosen,) = letters.sources_of(feed)
    result = letters.purge(chosen, before, dry_run)
    days = ["-".join(p) for p in result.partitions]
    if fmt == "json":
        console.print_json(json.dumps({"feed": feed, "dry_run": dry_run, "days": days,
                                       "files": len(result.files), "records": result.records,
                                       "version": result.version}))
        return
    verb = "would remove" if dry_run else "removed"
    console.print(f"{feed}: {verb} {result.records} dead letter(s) in {len(result.files)} "
                  f"file(s) of {len(days)} day(s){': ' + ', '.join(days) if days else ''}",
                  markup=False)
    for skipped in result.changed:
        console.print(f"  {'-'.join(skipped)} changed meanwhile: left for the next purge",
                      markup=False)
