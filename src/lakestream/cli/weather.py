"""Commands of the weather pipeline: produce weather, medallion silver|gold, quality."""

from __future__ import annotations

import click

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.cli.streams import produce
from lakestream.errors import LakestreamError
from lakestream.output import console, err_console, print_rows, progress_bar

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
@pass_ctx
def medallion_silver(ctx: Context, engine: str) -> None:
    """Clean new bronze data into silver: weather_cleaned, weather_daily_agg, weather_hourly_agg.

    Only months touched by new bronze files are recomputed; each dataset's
    months are replaced in one Delta commit. Both engines give identical results.

    \b
    Examples:
      lakestream medallion silver
      lakestream medallion silver --engine spark
    """
    r = ctx.api.weather.silver(engine, on_progress=_say)
    if not r.bronze_files:
        console.print("silver is up to date: no new bronze file")
        return
    console.print(
        f"silver ({r.engine}): {r.bronze_files:,} new bronze file(s), {r.rows_in:,} rows in; "
        f"dropped {r.dropped_missing:,} without city/timestamp/temperature and "
        f"{r.dropped_out_of_range:,} out of range; {r.duplicates:,} duplicate(s) removed; "
        f"wrote {r.rows_out:,} cleaned, {r.daily_rows:,} daily and {r.hourly_rows:,} hourly "
        f"rows in {', '.join(r.partitions) or 'no partition'} ({r.seconds:.1f}s)",
        soft_wrap=True)


@medallion.command("gold")
@ENGINE
@pass_ctx
def medallion_gold(ctx: Context, engine: str) -> None:
    """Upsert silver into the gold store (gold_url; default <data_dir>/gold.db).

    Creates the database and tables when missing. Loading the same silver again
    changes nothing. Each run adds a row to pipeline_execution_log.

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
@click.option("--pipeline", "-p", default="weather", show_default=True,
              help="Pipeline whose data to check.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def quality_check(ctx: Context, pipeline: str, fmt: str) -> None:
    """Check completeness, validity, uniqueness and freshness; exit 1 if a check fails.

    \b
    Examples:
      lakestream quality check --pipeline weather
      lakestream quality check --pipeline weather --format json
    """
    if pipeline != "weather":
        raise click.UsageError(f"no quality checks are defined for pipeline '{pipeline}' "
                               "(known: weather)")
    report = ctx.api.weather.quality()
    _print_quality(report, fmt)
    if not report.ok:
        from lakestream.quality import QualityCheckFailed

        raise QualityCheckFailed(
            f"{len(report.failed)} quality check(s) failed: "
            + "; ".join(f"{r.name} ({r.detail})" for r in report.failed))


def _print_quality(report: object, fmt: str) -> None:
    results = getattr(report, "results", [])
    rows = [(r.name, r.dataset, r.status, r.observed, r.threshold, r.detail) for r in results]
    print_rows(["check", "dataset", "status", "observed", "threshold", "detail"], rows, fmt)
