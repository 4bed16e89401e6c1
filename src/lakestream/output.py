"""Terminal output shared by the CLI: tables, progress bars, reports (rich)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from lakestream.ingest.engine import IngestReport

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False)


def print_error(message: str, hint: str | None) -> None:
    """One clear line (and an optional hint) on stderr, never wrapped (scripts grep it)."""
    err_console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if hint:
        err_console.print(Text.assemble(("  hint: ", "yellow"), hint), soft_wrap=True)


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (only when it is a terminal); yields ``advance(n)``."""
    if not err_console.is_terminal:
        yield lambda _n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    """Print query results as a table, CSV or JSON (a list of objects) on stdout."""
    if fmt == "json":
        sys.stdout.write(
            json.dumps([dict(zip(columns, map(_plain, r), strict=True)) for r in rows], indent=2)
            + "\n"
        )
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in r] for r in rows])
        return
    table = Table(*(escape(c) for c in columns), show_lines=False)
    for row in rows:
        table.add_row(*("NULL" if v is None else escape(str(_plain(v))) for v in row))
    console.print(table)
    console.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def print_ingest_report(report: IngestReport, feeds: Sequence[str],
                        holdings: tuple[int, int]) -> None:
    """The closing summary of an ingest run.

    ``holdings`` (files, bytes) is what the lake holds of the feeds, counted as
    ``metadata stats`` counts it (``Lakestream.lake_holdings``), so both agree.
    """
    files, size = holdings
    console.print(
        f"ingested {report.written:,} records into {len(feeds)} feed(s) "
        f"({', '.join(feeds)}); {report.rejected:,} to the DLQ; {report.consumed:,} messages "
        f"consumed in {report.elapsed:.1f}s; the lake holds {files:,} files, "
        f"{size / 1e6:.1f} MB of these feeds (as `lakestream metadata stats` counts them)"
    )
