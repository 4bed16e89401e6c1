"""The weather pipeline (docs/weather.md): source → Kafka → bronze → silver → gold → quality.

:class:`WeatherService` is what the facade exposes as ``Lakestream.weather``:
the pipeline's steps. Each can run alone (``produce weather``, ``ingest
--pipeline weather``, ``medallion silver|gold``, ``quality check``); all of
them in order are the weather DAG (:func:`lakestream.orchestrate.catalog.weather_dag`),
which the DAG runner runs (``lakestream run weather``, ``lakestream demo``),
with :class:`WeatherOptions` when a caller wants other than the configured
source, cities or engine.

The pipeline's run log is ``pipeline_execution_log`` in its gold store (SPEC
§4): the DAG runner logs every task of a run there, and a step run alone that
this module logs (``medallion gold``, ``quality check``) is a run of its own
there, with a new run id.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

import orjson

from lakestream.config import Settings
from lakestream.errors import ConfigError, UsageError
from lakestream.feeds import FeedRegistry
from lakestream.ingest.engine import IngestEngine, IngestReport
from lakestream.kafka import client
from lakestream.kafka.consumer import ConsumeOptions
from lakestream.kafka.producer import produce
from lakestream.lake.storage import Storage
from lakestream.medallion import GoldReport, GoldStore, SilverBuilder, SilverReport
from lakestream.medallion import load_gold as load_gold_tables
from lakestream.medallion.engines import open_engine
from lakestream.quality import QualityReport, check_pipeline, save_results
from lakestream.quality.audits import GoldAudit, SilverAudit, SilverHeldBack
from lakestream.quality.checks import time_bounds
from lakestream.sources.openweather import (
    OpenWeatherCityNotFound,
    OpenWeatherClient,
    weather_record,
)
from lakestream.sources.weather_sim import SimulatedWeather
from lakestream.warehouse.runlog import RunLog, SafeRunLog, new_run_id

if TYPE_CHECKING:
    import sqlalchemy as sa

FEED = "weather"
SOURCES = ("openweather", "simulated")

Progress = Callable[[str], None]
R = TypeVar("R")
Outcome = tuple[int | None, int | None, str | None]
"""A step's rows in, rows out and failure (``None``: it succeeded), for its log row."""


@dataclass(frozen=True)
class WeatherOptions:
    """What a run of the weather DAG fetches, and the engine that transforms it.

    The defaults are the configuration's: the source the API key chooses, the
    configured cities, the current weather once, DuckDB. ``lakestream demo``
    runs the DAG on simulated history instead.

    Attributes:
        source: ``openweather`` or ``simulated``; ``None``: OpenWeather when a key is set.
        cities: The cities; empty: ``weather.cities``.
        hours: An observation per city for each of the last N hours (simulated source only).
        seed: Seed of the simulated source.
        engine: ``duckdb`` or ``spark``, for silver and gold.
    """

    source: str | None = None
    cities: tuple[str, ...] = ()
    hours: int = 1
    seed: int | None = None
    engine: str = "duckdb"

    def __post_init__(self) -> None:
        if self.hours < 1:
            raise UsageError(f"hours must be 1 or more, not {self.hours}")


@dataclass
class WeatherProduceReport:
    """What one fetch round sent to Kafka."""

    source: str
    cities: list[str]
    sent: int = 0
    delivered: int = 0
    failed_cities: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class WeatherService:
    """The weather pipeline of one configuration.

    Args:
        settings: Lakestream settings (``weather``, ``gold_url``, Kafka, lake).
        storage: The lake.
        feeds: The feed registry (the bronze feed ``weather``).
    """

    def __init__(self, settings: Settings, storage: Storage, feeds: FeedRegistry) -> None:
        self.settings = settings
        self.storage = storage
        self.feeds = feeds

    @cached_property
    def gold_store(self) -> GoldStore:
        """The gold database (``gold_url``; ``<data_dir>/gold.db`` by default)."""
        return GoldStore(self.settings)

    @cached_property
    def runlog(self) -> RunLog:
        """The pipeline's run log: ``pipeline_execution_log`` in the gold store (SPEC §4)."""
        return RunLog(self._log_engine)

    def _log_engine(self) -> sa.Engine:
        self.gold_store.ensure_schema()  # creates the database (PostgreSQL, MySQL) if missing
        return self.gold_store.engine

    # -- produce ---------------------------------------------------------------------------

    def source_name(self, source: str | None) -> str:
        """``source``, or the default: OpenWeather when a key is set, else simulated."""
        key = self.settings.openweather_api_key
        has_key = key is not None and bool(key.get_secret_value())
        if source is None:
            return "openweather" if has_key else "simulated"
        if source not in SOURCES:
            raise UsageError(f"unknown weather source '{source}'", f"use {' or '.join(SOURCES)}")
        if source == "openweather" and not has_key:
            raise ConfigError("--source openweather needs OPENWEATHER_API_KEY",
                              "export OPENWEATHER_API_KEY=..., put it in .env, or use "
                              "--source simulated")
        return source

    def produce(self, bootstrap: str, source: str | None = None,
                cities: Sequence[str] | None = None, hours: int = 1, seed: int | None = None,
                on_progress: Callable[[int], None] | None = None) -> WeatherProduceReport:
        """Fetch the current weather of each city once (``hours`` > 1: simulated history)."""
        name = self.source_name(source)
        chosen = list(cities or self.settings.weather.cities)
        if name == "openweather" and hours != 1:
            raise UsageError("--hours replays history, which only the simulated source has",
                             "drop --hours, or use --source simulated")
        feed = self.feeds.get(FEED)
        client.ensure_configured_topics(self.settings, bootstrap, [feed.topic])
        report = WeatherProduceReport(name, chosen)
        started = time.monotonic()
        records = (self._openweather(chosen, report) if name == "openweather"
                   else _simulated(chosen, hours, seed))
        sent = produce(client.producer_config(self.settings, bootstrap), feed.topic, records,
                       on_progress=on_progress)
        report.sent, report.delivered = sent.sent, sent.delivered
        report.seconds = time.monotonic() - started
        return report

    def _openweather(self, cities: list[str],
                     report: WeatherProduceReport) -> Iterator[tuple[bytes, bytes]]:
        w = self.settings.weather
        key = self.settings.openweather_api_key
        assert key is not None
        with OpenWeatherClient(key, w.api_url, w.timeout_s, w.retries) as api:
            for city in cities:
                try:
                    payload = api.current(city)
                except OpenWeatherCityNotFound as exc:
                    report.failed_cities[city] = exc.message
                    continue
                record = weather_record(payload, city, dt.datetime.now(dt.UTC))
                yield city.encode(), orjson.dumps(record)

    # -- the medallion steps -----------------------------------------------------------------

    def ingest(self, bootstrap: str, idle_timeout_s: float = 3.0) -> IngestReport:
        """Land ``weather-data`` in bronze until the topic is drained."""
        feeds = self.feeds.select(feed=FEED)
        client.ensure_configured_topics(self.settings, bootstrap, [f.topic for f in feeds])
        lake = self.settings.lake
        options = ConsumeOptions(group_id=self.settings.kafka.group_id, until_idle=True,
                                 idle_timeout_s=idle_timeout_s,
                                 flush_interval_s=lake.flush_interval_s,
                                 max_batch_records=lake.max_batch_records,
                                 max_batch_bytes=lake.max_batch_bytes)
        engine = IngestEngine(self.settings, bootstrap, self.storage, feeds, options)
        report: IngestReport = engine.run()
        return report

    def silver(self, engine: str = "duckdb", on_progress: Progress | None = None,
               run_id: str | None = None, warn_only: bool = False) -> SilverReport:
        """Bronze → silver, incrementally, audited before it publishes (write-audit-publish).

        The checks' results are stored under the run (``lakestream quality show RUN``),
        whose id also names the run's staging folder (``_staging/silver/<run id>/``).

        Args:
            engine: ``duckdb`` or ``spark``.
            on_progress: Called with a short message at each stage.
            run_id: The run this is a task of; default: a new run id.
            warn_only: Publish even if blocking checks fail (they are recorded as they are).

        Raises:
            SilverHeldBack: A blocking check failed: nothing was published.
        """
        now, policy = dt.datetime.now(dt.UTC), self.settings.quality
        run = run_id or new_run_id(FEED, now)
        audit = SilverAudit(self.storage, policy, run, now, warn_only)
        sql_engine = open_engine(engine, self.storage, self.settings.s3)
        try:
            report = SilverBuilder(self.storage, sql_engine, on_progress, time_bounds(policy, now),
                                   run, policy.keep_unpublished_h).run(audit)
        finally:
            sql_engine.close()
        if audit.report.results:
            save_results(self.gold_store, audit.report)
        if report.held_back:
            raise SilverHeldBack(report)
        return report

    def gold(self, engine: str = "duckdb", run_id: str | None = None) -> GoldReport:
        """Silver → gold, audited inside its transaction (write-audit-publish).

        Args:
            engine: ``duckdb`` or ``spark``.
            run_id: The run this load is a task of (its runner logs the task). Default:
                a run of its own, with a new id, logged as the task ``load_gold``.

        Raises:
            HeldBack: A blocking check failed: the load rolled back, gold is unchanged.
        """
        if run_id is not None:
            return self._load_gold(engine, run_id)
        return self._alone("load_gold", lambda run: self._load_gold(engine, run),
                           lambda r: (r.total, r.total, None))

    def _load_gold(self, engine: str, run_id: str) -> GoldReport:
        audit = GoldAudit(self.settings.quality, run_id, dt.datetime.now(dt.UTC))
        sql_engine = open_engine(engine, self.storage, self.settings.s3)
        try:
            return load_gold_tables(self.gold_store, sql_engine, self.storage, audit)
        finally:
            sql_engine.close()
            if audit.report.results:
                save_results(self.gold_store, audit.report)

    def quality(self, run_id: str | None = None) -> QualityReport:
        """Run the checks over the lake and store their results under the run.

        Args:
            run_id: The run this check is a task of (its runner logs the task). Default:
                a run of its own, with a new id, logged as the task ``quality_check``
                (``failed`` when a check failed).
        """
        if run_id is not None:
            return self._check(run_id)
        return self._alone("quality_check", self._check, lambda r: (
            len(r.results), len(r.failed),
            "; ".join(f"{c.name}: {c.detail}" for c in r.failed) or None))

    def _check(self, run_id: str) -> QualityReport:
        report = check_pipeline("weather", self.storage, self.settings.quality, run_id,
                                dt.datetime.now(dt.UTC))
        save_results(self.gold_store, report)
        return report

    def _alone(self, task: str, work: Callable[[str], R], outcome: Callable[[R], Outcome]) -> R:
        """Run ``work`` as a run of its own: a new run id, its one attempt logged as ``task``.

        A row that cannot be written is a warning: the step's own outcome is what the
        caller gets.
        """
        run_id = new_run_id(FEED)
        runlog = SafeRunLog(self.runlog)
        row = runlog.started(run_id, FEED, task, 1)
        try:
            result = work(run_id)
        except BaseException as exc:
            runlog.finished(row, "failed", error=str(exc) or type(exc).__name__)
            raise
        rows_in, rows_out, failure = outcome(result)
        runlog.finished(row, "failed" if failure else "success", rows_in, rows_out, failure)
        return result


def _simulated(cities: list[str], hours: int, seed: int | None) -> Iterator[tuple[bytes, bytes]]:
    source = SimulatedWeather(seed)
    now = dt.datetime.now(dt.UTC)
    for back in range(hours - 1, -1, -1):
        at = now - dt.timedelta(hours=back)
        for city in cities:
            yield city.encode(), orjson.dumps(weather_record(source.current(city, at), city, at))
