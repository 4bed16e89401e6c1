"""The weather pipeline (docs/weather.md): source → Kafka → bronze → silver → gold → quality.

:class:`WeatherService` is what the facade exposes as ``Lakestream.weather``.
Each step can run alone (``produce weather``, ``ingest --pipeline weather``,
``medallion silver|gold``, ``quality check``) or all in order, once
(``run weather``), every step then leaving a row in the gold store's
``pipeline_execution_log`` under one run id.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from lakestream.config import Settings
from lakestream.errors import ConfigError, LakestreamError, UsageError
from lakestream.feeds import FeedRegistry
from lakestream.ingest.engine import IngestEngine, IngestReport
from lakestream.kafka import client
from lakestream.kafka.consumer import ConsumeOptions
from lakestream.kafka.producer import produce
from lakestream.lake.storage import Storage
from lakestream.lineage import Lineage, RunLineage, TaskResult, checks_of
from lakestream.medallion import GoldReport, GoldStore, SilverBuilder, SilverReport, TaskLog
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

FEED = "weather"
SOURCES = ("openweather", "simulated")

Progress = Callable[[str], None]


@dataclass
class WeatherProduceReport:
    """What one fetch round sent to Kafka."""

    source: str
    cities: list[str]
    sent: int = 0
    delivered: int = 0
    failed_cities: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class StepResult:
    """One step of a run, as logged in ``pipeline_execution_log``."""

    task: str
    status: str
    rows_in: int | None = None
    rows_out: int | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class WeatherRunReport:
    """Every step of one ``run weather``; ``error`` is set when a step failed."""

    run_id: str
    steps: list[StepResult] = field(default_factory=list)
    quality: QualityReport | None = None
    error: LakestreamError | None = None


class WeatherService:
    """The weather pipeline of one configuration.

    Args:
        settings: Lakestream settings (``weather``, ``gold_url``, Kafka, lake).
        storage: The lake.
        feeds: The feed registry (the bronze feed ``weather``).
        lineage: Where ``run`` emits its OpenLineage events (default: as configured).
    """

    def __init__(self, settings: Settings, storage: Storage, feeds: FeedRegistry,
                 lineage: Lineage | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.feeds = feeds
        self.lineage = lineage or Lineage(settings, storage, feeds)

    @cached_property
    def gold_store(self) -> GoldStore:
        """The gold database (``gold_url``; ``<data_dir>/gold.db`` by default)."""
        return GoldStore(self.settings)

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

        The checks' results are stored under the run (``lakestream quality show RUN``).

        Args:
            warn_only: Publish even if blocking checks fail (they are recorded as they are).

        Raises:
            SilverHeldBack: A blocking check failed: nothing was published.
        """
        run, now, policy = run_id or _run_id(), dt.datetime.now(dt.UTC), self.settings.quality
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
        """Silver → gold, audited inside its transaction; logs the task in
        ``pipeline_execution_log``."""
        run = run_id or _run_id()
        return self._logged(run, "load_gold", lambda: self._load_gold(engine, run),
                            lambda r: (r.total, r.total))

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
        """Run the checks, store the results and log the task (failed if a check failed)."""
        run = run_id or _run_id()
        started = dt.datetime.now(dt.UTC)
        report = check_pipeline("weather", self.storage, self.settings.quality, run, started)
        save_results(self.gold_store, report)
        failed = "; ".join(f"{r.name}: {r.detail}" for r in report.failed) or None
        self.gold_store.log_task(TaskLog(run, "quality_check", "failed" if failed else "success",
                                         started, dt.datetime.now(dt.UTC),
                                         len(report.results), len(report.failed), failed))
        return report

    # -- run -----------------------------------------------------------------------------------

    def run(self, bootstrap: str, source: str | None = None, engine: str = "duckdb",
            cities: Sequence[str] | None = None, hours: int = 1,
            on_progress: Progress | None = None, seed: int | None = None) -> WeatherRunReport:
        """Produce, ingest, silver, gold and quality, in order, once (with lineage events)."""
        report = WeatherRunReport(_run_id())
        lineage = self.lineage.run(FEED, report.run_id, bootstrap)
        lineage.started()
        say = on_progress or (lambda _m: None)
        steps: list[tuple[str, Callable[[], Any], Callable[[Any], tuple[int, int]]]] = [
            ("ingest_data", lambda: self.produce(bootstrap, source, cities, hours, seed),
             lambda r: (r.sent, r.delivered)),
            ("consume_to_s3", lambda: self.ingest(bootstrap),
             lambda r: (r.consumed, r.written)),
            ("process_silver", lambda: self.silver(engine, on_progress, report.run_id),
             lambda r: (r.rows_in, r.rows_out)),
            ("load_gold", lambda: self._load_gold(engine, report.run_id),
             lambda r: (r.total, r.total)),
        ]
        ok = False
        try:
            for task, action, counts in steps:
                say(f"run {report.run_id}: {task}")
                self._step(report, task, action, counts, lineage)
            say(f"run {report.run_id}: quality_check")
            self._checked(report, lineage)
            ok = report.error is None
        except LakestreamError as exc:
            report.error = exc
        finally:
            lineage.ended("success" if ok else "failed", str(report.error or "interrupted"))
        return report

    def _step(self, report: WeatherRunReport, task: str, action: Callable[[], Any],
              counts: Callable[[Any], tuple[int, int]], lineage: RunLineage) -> Any:
        started = time.monotonic()
        lineage.task_started(task)
        try:
            result = self._logged(report.run_id, task, action, counts)
        except LakestreamError as exc:
            report.steps.append(StepResult(task, "failed", seconds=time.monotonic() - started,
                                           error=str(exc)))
            lineage.task_ended(task, 1, TaskResult("failed", error=str(exc)))
            raise
        rows_in, rows_out = counts(result)
        report.steps.append(StepResult(task, "success", rows_in, rows_out,
                                       time.monotonic() - started))
        lineage.task_ended(task, 1, TaskResult("success", rows_in, rows_out))
        return result

    def _checked(self, report: WeatherRunReport, lineage: RunLineage) -> None:
        """The quality step, its results as assertions of its lineage events."""
        lineage.task_started("quality_check")
        try:
            self._quality_step(report)
        except LakestreamError as exc:
            lineage.task_ended("quality_check", 1, TaskResult("failed", error=str(exc)))
            raise
        quality = report.quality
        results = quality.results if quality is not None else []
        failed = [r for r in results if r.status == "fail"]
        lineage.task_ended("quality_check", 1, TaskResult(
            "failed" if failed else "success", len(results), len(results),
            "; ".join(f"{r.name}: {r.detail}" for r in failed) or None, checks_of(results)))

    def _quality_step(self, report: WeatherRunReport) -> None:
        started = time.monotonic()
        quality = self.quality(report.run_id)
        report.quality = quality
        status = "success" if quality.ok else "failed"
        error = "; ".join(f"{r.name}: {r.detail}" for r in quality.failed) or None
        report.steps.append(StepResult("quality_check", status, len(quality.results),
                                       len(quality.failed), time.monotonic() - started, error))
        if not quality.ok:
            from lakestream.quality import QualityCheckFailed

            report.error = QualityCheckFailed(f"{len(quality.failed)} quality check(s) failed: "
                                              f"{error}")

    def _logged(self, run_id: str, task: str, action: Callable[[], Any],
                counts: Callable[[Any], tuple[int, int]]) -> Any:
        started = dt.datetime.now(dt.UTC)
        try:
            result = action()
        except LakestreamError as exc:
            self._log_failure(run_id, task, started, exc)
            raise
        rows_in, rows_out = counts(result)
        self.gold_store.log_task(TaskLog(run_id, task, "success", started,
                                         dt.datetime.now(dt.UTC), rows_in, rows_out))
        return result

    def _log_failure(self, run_id: str, task: str, started: dt.datetime,
                     exc: LakestreamError) -> None:
        with contextlib.suppress(LakestreamError):  # if the store failed: reported anyway
            self.gold_store.log_task(TaskLog(run_id, task, "failed", started,
                                             dt.datetime.now(dt.UTC), error=str(exc)))


def _run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]


def _simulated(cities: list[str], hours: int, seed: int | None) -> Iterator[tuple[bytes, bytes]]:
    source = SimulatedWeather(seed)
    now = dt.datetime.now(dt.UTC)
    for back in range(hours - 1, -1, -1):
        at = now - dt.timedelta(hours=back)
        for city in cities:
            yield city.encode(), orjson.dumps(weather_record(source.current(city, at), city, at))
