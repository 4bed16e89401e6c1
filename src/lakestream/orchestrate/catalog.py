"""The DAGs that ship with Lakestream: ``weather`` and ``transactions``.

Weather (docs/orchestration.md): check_api → ingest_data → consume_to_s3 → process_silver
→ load_gold → quality_check → notify_success → cleanup_old_data; hourly, at
most one active run, 3 retries 5 minutes apart, a 30-minute SLA and a 2-hour
run timeout; its run log is in the gold store (SPEC §4). The steps are the
weather pipeline's own (:class:`lakestream.pipelines.weather.WeatherService`
via the facade), with the configured source, cities and engine unless
:func:`weather_dag` is given other :class:`~lakestream.pipelines.weather.WeatherOptions`
(``lakestream demo`` runs it on simulated history); ``notify_success`` sends
the success notification; ``cleanup_old_data`` applies retention
(:mod:`lakestream.governance`).

Transactions (docs/orchestration.md): process → ingest → export_tables → sync → quality →
retention, each a bounded (``--until-idle``) run of its command
(:mod:`lakestream.pipelines.transactions`), with the same policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lakestream.orchestrate.dag import (
    Dag,
    DagPolicy,
    Task,
    TaskContext,
    TaskFn,
    TaskOutput,
    chain,
)
from lakestream.pipelines import transactions
from lakestream.pipelines.weather import WeatherOptions

DEFAULT_POLICY = DagPolicy(schedule="0 * * * *", retries=3, retry_delay_s=300.0,
                           task_timeout_s=None, run_timeout_s=7200.0, sla_s=1800.0)


# -- weather --------------------------------------------------------------------------------

CONFIGURED = WeatherOptions()
"""The weather DAG's options when none are given: the configuration's."""


def check_api(ctx: TaskContext, options: WeatherOptions = CONFIGURED) -> TaskOutput:
    """Make sure the weather source answers (OpenWeather: one request with the key)."""
    settings = ctx.facade.settings
    key = settings.openweather_api_key
    if ctx.facade.weather.source_name(options.source) != "openweather" or key is None:
        return TaskOutput(0, 0, "simulated source (no OPENWEATHER_API_KEY): nothing to reach")
    from lakestream.sources.openweather import OpenWeatherClient

    w = settings.weather
    city = (options.cities or w.cities)[0]
    with OpenWeatherClient(key, w.api_url, w.timeout_s, w.retries) as client:
        client.current(city)
    return TaskOutput(1, 1, f"OpenWeather answered for {city}")


def ingest_data(ctx: TaskContext, options: WeatherOptions = CONFIGURED) -> TaskOutput:
    """Fetch the current weather of every city into Kafka."""
    report = ctx.facade.weather.produce(ctx.facade.bootstrap(), options.source,
                                        options.cities or None, options.hours, options.seed)
    failed = report.failed_cities
    if failed and len(failed) == len(report.cities):
        from lakestream.errors import LakestreamError

        raise LakestreamError("no city could be fetched: " + "; ".join(failed.values()))
    return TaskOutput(len(report.cities), report.delivered,
                      f"{report.delivered} {report.source} records sent")


def consume_to_s3(ctx: TaskContext) -> TaskOutput:
    """Land ``weather-data`` in the lake's bronze layer until the topic is drained."""
    report = ctx.facade.weather.ingest(ctx.facade.bootstrap())
    return TaskOutput(report.consumed, report.written, f"{report.written} records to bronze")


def process_silver(ctx: TaskContext, options: WeatherOptions = CONFIGURED) -> TaskOutput:
    """Clean the new bronze data into silver; fails, publishing nothing, when a blocking
    quality check fails (write-audit-publish)."""
    report = ctx.facade.weather.silver(options.engine, ctx.say, ctx.run_id)
    return TaskOutput(report.rows_in, report.rows_out, f"{report.rows_out} silver rows")


def load_gold(ctx: TaskContext, options: WeatherOptions = CONFIGURED) -> TaskOutput:
    """Load silver into the gold store (its quality audit stored under this run's id)."""
    report = ctx.facade.weather.gold(options.engine, ctx.run_id)
    return TaskOutput(report.total, report.total, f"{report.total} gold rows upserted")


def quality_check(ctx: TaskContext) -> TaskOutput:
    """Run the data-quality checks; fail the run when one fails."""
    report = ctx.facade.weather.quality(ctx.run_id)
    if not report.ok:
        from lakestream.quality import QualityCheckFailed

        raise QualityCheckFailed(f"{len(report.failed)} quality check(s) failed: " + "; ".join(
            f"{r.name} ({r.detail})" for r in report.failed))
    return TaskOutput(len(report.results), len(report.results),
                      f"{len(report.results)} checks passed")


def cleanup_old_data(ctx: TaskContext) -> TaskOutput:
    """Apply retention to the weather layers: bronze 30, silver 90, gold 365 days."""
    governance = ctx.facade.governance
    plan = governance.retention_plan(feed="weather")
    outcomes = governance.retention_run(plan, actor="lakestream run weather")
    rows = sum(o.rows for o in outcomes)
    partitions = sum(o.partitions for o in outcomes)
    return TaskOutput(None, rows, f"{partitions} partitions ({rows} rows) past retention removed")


def notify_success(ctx: TaskContext) -> TaskOutput:
    """Send the run's success notification (log and webhook)."""
    sent = ctx.facade.orchestrator.notify_success(ctx.pipeline, ctx.run_id)
    return TaskOutput(None, None, "success notified" + ("" if sent else " (log only)"))


WEATHER_TASKS = (
    Task("check_api", check_api, description="the weather source answers"),
    Task("ingest_data", ingest_data, description="current weather of each city → Kafka"),
    Task("consume_to_s3", consume_to_s3, description="weather-data → bronze (the lake)"),
    Task("process_silver", process_silver, description="bronze → silver"),
    Task("load_gold", load_gold, description="silver → gold store"),
    Task("quality_check", quality_check, description="data-quality checks"),
    Task("notify_success", notify_success, description="success notification"),
    Task("cleanup_old_data", cleanup_old_data, description="retention of bronze, silver, gold"),
)


OptionedTask = Callable[[TaskContext, WeatherOptions], TaskOutput]
"""A weather task that fetches or transforms as its options say."""

_WITH_OPTIONS: dict[str, OptionedTask] = {
    "check_api": check_api, "ingest_data": ingest_data, "process_silver": process_silver,
    "load_gold": load_gold}


def _bound(fn: OptionedTask, options: WeatherOptions) -> TaskFn:
    def run(ctx: TaskContext) -> TaskOutput:
        return fn(ctx, options)

    return run


def weather_dag(options: WeatherOptions | None = None) -> Dag:
    """The weather medallion DAG; with ``options``, its tasks fetch and transform as they say.

    A DAG made with options exists in this process only (a child process would
    build the configured one): the orchestrator runs it in-process.
    """
    tasks = WEATHER_TASKS if options is None else tuple(
        replace(t, fn=_bound(_WITH_OPTIONS[t.name], options)) if t.name in _WITH_OPTIONS
        else t for t in WEATHER_TASKS)
    return Dag("weather", chain(*tasks), DEFAULT_POLICY,
               "OpenWeather → Kafka → bronze → silver → gold, with quality checks",
               success_task="notify_success", needs_kafka=True, run_log="gold")


# -- transactions ---------------------------------------------------------------------------


def _step(step: transactions.Step) -> TaskFn:
    def run(ctx: TaskContext) -> transactions.StepReport:
        return step(ctx.facade, ctx.run_id)

    return run


def transactions_dag() -> Dag:
    """The transactions DAG."""
    tasks = [Task(name, _step(fn), description=text) for name, fn, text in transactions.STEPS]
    return Dag("transactions", chain(*tasks), DEFAULT_POLICY,
               "transactions → derived streams and tables → lake → warehouse",
               needs_kafka=True)


def builtin_dags() -> dict[str, Dag]:
    """The DAGs that ship with Lakestream, by name."""
    return {dag.name: dag for dag in (weather_dag(), transactions_dag())}
