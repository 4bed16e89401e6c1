"""Commands of the weather pipeline: produce weather, medallion silver|gold, quality."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.cli.streams import produce
from lakestream.errors import LakestreamError
from lakestream.output import console, err_console, print_rows, progress_bar

if TYPE_CHECKING:
    from lakestream.medallion import SilverReport
    from lakestream.quality import CheckResult

ENGINE = click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb",
                      show_default=True,
                      help="duckdb (in-process) or spark (local mode; pip install "
                           "'lakestream[spark]', Java 17).")
SOURCE = click.option("--source", type=click.Choice(["openweather", "simulated"]), default=None,
                      help="Default: openweather when OPENWEATHER_API_KEY is set, else simulated.")
CITIES = click.option("--cities", default=None, metavar="CITY,CITY,...",
                      help="Comma-separated cities (default: weather.cities: Paris, London, "
                           "New York, Tokyo, Sydney).")
HOURS = click.option("--hours", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Simulated source only: an observation per city for each of the "
                          "last N hours.")


def _cities(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


def _say(message: str) -> None:
    err_console.print(message, soft_wrap=True)


@produce.command("weather")
@SOURCE
@CITIES
@HOURS
@click.option("--seed", type=int, default=None, help="Seed of the simulated source.")
@pass_ctx
def produce_weather(ctx: Context, source: str | None, cities: str | None, hours: int,
                    seed: int | None) -> None:
    """Fetch the current weather of each city once into the `weather-data` topic.

    The value is OpenWeather's JSON (units=metric) plus `city` and `fetched_at`;
    the key is the city.

    \b
    Examples:
      lakestream produce weather                              # key set: OpenWeather
      lakestream produce weather --source simulated --hours 48
      lakestream produce weather --cities "Paris,Berlin,New York"
    """
    weather = ctx.api.weather
    chosen = _cities(cities)
    total = len(chosen or ctx.api.settings.weather.cities) * hours
    with progress_bar("fetching weather", total) as advance:
        report = weather.produce(ctx.api.bootstrap(), source, chosen, hours, seed, advance)
    console.print(f"sent {report.delivered:,} {report.source} weather record(s) for "
                  f"{len(report.cities) - len(report.failed_cities)} city(ies) to 'weather-data' "
                  f"in {report.seconds:.1f}s", soft_wrap=True)
    if report.failed_cities:
        raise LakestreamError("; ".join(report.failed_cities.values()),
                              "fix the city names; the others were sent")


@cli.group()
def medallion() -> None:
    """The weather medallion: bronze (landed by `ingest --pipeline weather`) → silver → gold."""


@medallion.command("silver")
@ENGINE
@click.option("--warn-only", is_flag=True,
              help="Publish even if a blocking quality check fails (the checks are recorded "
                   "as they are). For a run held back that you have looked at.")
@pass_ctx
def medallion_silver(ctx: Context, engine: str, warn_only: bool) -> None:
    """Clean new bronze data into silver: weather_cleaned, weather_daily_agg, weather_hourly_agg.

    Only months touched by new bronze files are recomputed. Write-audit-publish:
    the run writes them where no reader looks, runs the quality checks on
    what it wrote, and only then replaces each dataset's months in one Delta
    commit. If a blocking check fails (quality.blocking), nothing is
    published: the run exits 1, the previous data stays current, and its
    files are kept for `lakestream quality show RUN`. Rows silver drops (no
    city/timestamp/temperature, values out of range, a time in the future or
    before quality.timestamp_floor) go to silver/weather_rejected with their
    reason. Both engines give identical results.

    \b
    Examples:
      lakestream medallion silver
      lakestream medallion silver --engine spark
      lakestream quality show            # the checks of the last run
      lakestream medallion silver --warn-only
    """
    from lakestream.quality.audits import SilverHeldBack

    try:
        r = ctx.api.weather.silver(engine, on_progress=_say, warn_only=warn_only)
    except SilverHeldBack as held:
        _print_silver(held.silver)
        raise
    _print_silver(r)


def _print_silver(r: SilverReport) -> None:
    if not r.bronze_files:
        console.print("silver is up to date: no new bronze file")
        return
    done = ("held back, nothing published" if r.held_back else
            f"wrote {r.rows_out:,} cleaned, {r.daily_rows:,} daily and {r.hourly_rows:,} hourly "
            f"rows in {', '.join(r.partitions) or 'no partition'}; {r.rejected_rows:,} new "
            "rejected row(s) in silver/weather_rejected")
    console.print(
        f"silver ({r.engine}) run {r.run_id}: {r.bronze_files:,} new bronze file(s), "
        f"{r.rows_in:,} rows in; dropped {r.dropped_missing:,} without city/timestamp/"
        f"temperature, {r.dropped_out_of_range:,} out of range and "
        f"{r.dropped_implausible_time:,} with an implausible time; {r.duplicates:,} "
        f"duplicate(s) removed; {done} ({r.seconds:.1f}s)", soft_wrap=True)


@medallion.command("gold")
@ENGINE
@pass_ctx
def medallion_gold(ctx: Context, engine: str) -> None:
    """Upsert silver into the gold store (gold_url; default <data_dir>/gold.db).

    Creates the database and tables when missing. Loading the same silver again
    changes nothing. Each run adds a row (task load_gold, under a new run id) to
    the gold store's pipeline_execution_log, the weather pipeline's run log.

    \b
    Examples:
      lakestream medallion gold
      LAKESTREAM_GOLD_URL=postgresql://postgres@127.0.0.1:5432/weather_dw lakestream medallion gold
    """
    r = ctx.api.weather.gold(engine)
    counts = ", ".join(f"{table} {n:,}" for table, n in r.rows_in.items())
    console.print(f"gold ({r.engine}) at {r.url}: upserted {counts} ({r.seconds:.1f}s)",
                  soft_wrap=True)


@cli.group()
def quality() -> None:
    """Data-quality checks; results are kept per run in the gold store."""


@quality.command("check")
@click.option("--pipeline", "-p", type=click.Choice(["weather", "transactions"]),
              default="weather", show_default=True, help="Pipeline whose data to check.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def quality_check(ctx: Context, pipeline: str, fmt: str) -> None:
    """Check what came in and what went out; exit 1 if a check fails.

    weather: completeness, validity and uniqueness of bronze (what came in) and
    of silver (what went out), freshness of silver. transactions: transaction_id
    unique per day, required fields present, currencies in the rates table,
    freshness of each stream. Thresholds and which checks block a publication:
    the `quality` settings (docs/quality.md). Results are stored per run; a
    weather check is also logged (task quality_check, under a new run id) in
    the gold store's pipeline_execution_log.

    \b
    Examples:
      lakestream quality check --pipeline weather
      lakestream quality check --pipeline transactions --format json
    """
    report = ctx.api.check_quality(pipeline)
    _print_quality(report.results, fmt)
    if not report.ok:
        from lakestream.quality import QualityCheckFailed

        raise QualityCheckFailed(
            f"{len(report.failed)} quality check(s) failed: "
            + "; ".join(f"{r.name} ({r.detail})" for r in report.failed),
            f"the results are stored under run {report.run_id}")


@quality.command("show")
@click.argument("run_id", required=False, metavar="[RUN]")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def quality_show(ctx: Context, run_id: str | None, fmt: str) -> None:
    """The checks of a run (default: the latest), and where a held-back run's data is kept.

    A run held back by its checks published nothing; its staged files stay for
    quality.keep_unpublished_h hours (read them with DuckDB, e.g.
    `SELECT * FROM read_parquet('FOLDER/weather_cleaned/**/*.parquet')`).

    \b
    Examples:
      lakestream quality show
      lakestream quality show weather-20261205T080000-1a2b3c --format json
    """
    run = ctx.api.quality_run(run_id)
    if fmt == "json":
        click.echo(json.dumps(run.as_dict(), indent=2))
        return
    console.print(f"run {run.run_id} ({run.pipeline}), checked {run.checked_at:%Y-%m-%d %H:%M} "
                  f"UTC: {len(run.results) - len(run.failed)} of {len(run.results)} checks "
                  "passed or warned", soft_wrap=True)
    print_rows(["check", "dataset", "status", "observed", "threshold", "detail"],
               [(r["check_name"], r["dataset"], r["status"], r["observed"], r["threshold"],
                 r["detail"]) for r in run.results], fmt)
    if run.held_back:
        console.print(f"held back, nothing published: {run.held_back.get('reason')}\n"
                      f"unpublished files kept in {run.held_back['folder']}", soft_wrap=True)


def _print_quality(results: Sequence[CheckResult], fmt: str) -> None:
    rows = [(r.name, r.dataset, r.status, r.observed, r.threshold, r.detail) for r in results]
    print_rows(["check", "dataset", "status", "observed", "threshold", "detail"], rows, fmt)
