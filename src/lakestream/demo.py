"""``lakestream demo``: the main job on embedded defaults, end to end, with a summary.

It starts its own broker (so the topic holds exactly what the demo sends),
rebuilds the demo area ``<data_dir>/demo`` (so re-running is safe and never
touches a lake you configured yourself), produces events plus a few bad
messages, runs the transactions DAG on them (process, ingest, table versions,
warehouse sync, quality, retention) and the weather DAG on a simulated
source, both through the DAG runner as `lakestream run` would, in this
process, then queries the lake and prints what it built.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from lakestream.api import Lakestream
from lakestream.config import Settings
from lakestream.errors import LakestreamError
from lakestream.kafka import client
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.producer import produce
from lakestream.lake.metadata import read_metadata
from lakestream.orchestrate.catalog import transactions_dag, weather_dag
from lakestream.orchestrate.dag import Dag
from lakestream.orchestrate.runner import RunReport
from lakestream.output import console, progress_bar
from lakestream.pipelines.weather import WeatherOptions

# One message of each kind of bad input, to show where they go.
BAD_MESSAGES: tuple[tuple[bytes, bytes], ...] = (
    (b"bad-1", b"{not json"),
    (b"bad-2", b"[1, 2, 3]"),
    (b"bad-3", b'{"transaction_id": "x", "event_time": "2025-01-15T00:00:00Z"}'),
    (b"bad-4", b'{"transaction_id": "y", "event_time": "yesterday", "amount": 1}'),
    (b"bad-5", b""),
)

DASHBOARD_URL = "http://127.0.0.1:8000/"
DEMO_RETRY_DELAY_S = 5.0
DEMO_PRINCIPAL = "demo"


def demo_settings(settings: Settings) -> Settings:
    """The user's settings with the demo's own data area, lake and (if unset) an anon key."""
    home = Path(settings.data_dir) / "demo"
    lake = settings.lake.model_copy(update={"root": str(home / "lake"), "flush_interval_s": 2.0})
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": None})
    update: dict[str, Any] = {"data_dir": str(home), "lake": lake, "kafka": kafka}
    if settings.anon_key is None:
        update["anon_key"] = SecretStr(secrets.token_hex(32))
    return settings.model_copy(update=update)


def run_demo(api: Lakestream, messages: int, seed: int) -> dict[str, Any]:
    """Run the demo and print its summary; returns the summary's numbers (for tests)."""
    settings = demo_settings(api.settings)
    home = Path(settings.data_dir)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    _write_config(settings, home / "lakestream.yaml")
    console.print(f"[bold]Lakestream demo[/] — data in {home}/")
    if api.settings.anon_key is None:
        console.print("• LAKESTREAM_ANON_KEY is not set: the demo uses a random key of its own "
                      "for the anonymized stream (set it for stable pseudonyms)")
    with EmbeddedBroker(home / "broker") as broker:
        servers = broker.bootstrap_servers
        console.print(f"• broker (Tansu) started at {servers}")
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": servers})
        demo = Lakestream(settings.model_copy(update={"kafka": kafka}))  # its broker, for now
        _produce(demo, settings, messages, seed, servers)
        transactions = _transactions(demo)
        weather = _weather(demo, seed)
    warehouse = _warehouse(demo)
    summary = _summary(demo)
    summary["transactions"] = transactions
    summary["weather"] = weather
    summary["warehouse"] = warehouse
    _print_summary(demo, summary, home)
    summary["config"] = str(home / "lakestream.yaml")
    console.print(f"\nDashboard: {DASHBOARD_URL} — `lakestream demo --serve` keeps it up after "
                  f"the demo; later: lakestream --config {summary['config']} serve")
    return summary


def _demo_policy(dag: Dag) -> Dag:
    """The DAG's policy, but retried 5 seconds apart rather than 5 minutes: a demo is watched."""
    return replace(dag, policy=replace(dag.policy, retry_delay_s=DEMO_RETRY_DELAY_S))


def _transactions(demo: Lakestream) -> dict[str, Any]:
    """The transactions DAG (process, ingest, export_tables, sync, quality, retention) on the
    produced events, run by the DAG runner in this process, on the demo's broker."""
    with console.status("transactions: the transactions DAG: process → ingest (waits for the "
                        "group join) → tables → warehouse → quality → retention…"):
        run = demo.orchestrator.run(_demo_policy(transactions_dag()), in_process=True)
    return _report_run(demo, "transactions", run)


def _weather(demo: Lakestream, seed: int) -> dict[str, Any]:
    """The weather DAG on simulated data (48 hours of 5 cities), run by the DAG runner.

    Its run is logged, notified and traced as any run of the DAG.
    """
    dag = _demo_policy(weather_dag(WeatherOptions(source="simulated", hours=48, seed=seed)))
    with console.status("weather: the weather DAG on a simulated source → bronze → silver → "
                        "gold → quality…"):
        run = demo.orchestrator.run(dag)
    return _report_run(demo, "weather", run)


def _report_run(demo: Lakestream, what: str, run: RunReport) -> dict[str, Any]:
    """Print one line for a DAG run (its tasks' rows out, its checks); its figures."""
    quality = _checks_of(demo, run.run_id)
    passed = sum(1 for _name, status, _detail in quality if status == "pass")
    failed = run.failed_task
    console.print(
        f"• {what} run {run.run_id}: "
        + ", ".join(f"{t.name} {t.rows_out or 0:,}" for t in run.tasks)
        + f"; quality {passed}/{len(quality)} checks passed"
        + (f" ({failed.name} {failed.status}: {failed.error})" if failed is not None else ""),
        soft_wrap=True)
    return {"run_id": run.run_id,
            "steps": {t.name: (t.status, t.rows_in, t.rows_out) for t in run.tasks},
            "quality": quality}


def _checks_of(demo: Lakestream, run_id: str) -> list[tuple[str, str, str]]:
    """The quality checks stored under the run: its audits' and its quality task's."""
    try:
        stored = demo.quality_run(run_id)
    except LakestreamError:  # the run ended before any check
        return []
    return [(r["check_name"], r["status"], r["detail"]) for r in stored.results]


def _warehouse(demo: Lakestream) -> list[tuple[str, int, str]]:
    """What the transactions DAG's ``sync`` loaded into the SQLite warehouse, per table."""
    demo.warehouse.init()  # a run that failed before its sync still leaves the tables to show
    status = demo.warehouse.status()
    console.print(f"• warehouse ({demo.warehouse.display_url}): "
                  + ", ".join(f"{t.table} {t.rows:,}" for t in status), soft_wrap=True)
    return [(t.table, t.rows, ", ".join(t.snapshots)) for t in status]


def dashboard_token(config: str) -> str:
    """A new API token for the demo's dashboard: principal ``demo``, reading every dataset."""
    from lakestream.config import load_settings

    demo = Lakestream(load_settings(config))
    demo.governance.grant(DEMO_PRINCIPAL, "*", "read", actor="lakestream-demo")
    token, _ = demo.tokens.issue(DEMO_PRINCIPAL)
    return token


def _produce(demo: Lakestream, settings: Settings, messages: int, seed: int,
             servers: str) -> None:
    with progress_bar("producing transactions", messages) as advance:
        report = demo.produce_transactions(messages, 0, seed, advance, servers)
    produce(client.producer_config(settings, servers), "transactions", BAD_MESSAGES)
    console.print(f"• produced {report.delivered:,} transaction events "
                  f"+ {len(BAD_MESSAGES)} bad messages")


def _write_config(settings: Settings, path: Path) -> None:
    config = {"data_dir": settings.data_dir, "lake": {"root": settings.lake.root}}
    path.write_text("# written by `lakestream demo`: use with --config to look at the demo\n"
                    + yaml.safe_dump(config, sort_keys=False))


def _summary(demo: Lakestream) -> dict[str, Any]:
    feeds = {f.name: read_metadata(demo.storage, f.dataset) or {}
             for f in demo.select_feeds("transactions", None)}
    queries = {
        "by_day": "SELECT make_date(year, month, day) AS day, count(*) FROM transaction_stream "
                  "GROUP BY ALL ORDER BY 1",
        "dlq": "SELECT reason, count(*) FROM dlq_transaction_stream GROUP BY 1 ORDER BY 1",
        "top_products": "SELECT product_id, product_name, purchase_count, total_revenue, "
                        "unique_buyers FROM product_purchase_counts "
                        "ORDER BY total_revenue DESC LIMIT 5",
        "payments": "SELECT payment_method_name, transaction_count, total_amount, avg_amount "
                    "FROM payment_method_totals ORDER BY total_amount DESC",
    }
    summary: dict[str, Any] = {"feeds": feeds}
    for name, sql in queries.items():
        summary[name] = demo.query(sql)[1]
    return summary


def _rows_table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(escape(str(v)) for v in row))
    console.print(table)


def _print_summary(demo: Lakestream, s: dict[str, Any], home: Path) -> None:
    table = Table("feed", "kind", "records", "days / version", "files", "MB", "DLQ", title="Lake")
    for name, meta in s["feeds"].items():
        where = meta.get("current_version") or str(len(meta.get("partitions", [])))
        table.add_row(name, meta.get("kind", "-"), f"{meta.get('records', 0):,}", where,
                      str(meta.get("files", 0)), f"{meta.get('bytes', 0) / 1e6:.2f}",
                      str(meta.get("rejected_records", 0)))
    console.print(table)
    _rows_table("Records per event day (late events land in their own day)",
                ("event date", "records"), s["by_day"])
    _rows_table("Top products by revenue (USD, completed purchases)",
                ("product", "name", "purchases", "revenue", "buyers"), s["top_products"])
    _rows_table("Totals per payment method (USD, completed)",
                ("method", "transactions", "total", "average"), s["payments"])
    _rows_table("Dead letters (bad input is kept, not lost)", ("reason", "messages"), s["dlq"])
    _rows_table("Warehouse (star schema, SQLite)", ("table", "rows", "snapshots"),
                s.get("warehouse", []))
    weather = s.get("weather") or {}
    _rows_table(f"Weather DAG run {weather.get('run_id', '')} (simulated OpenWeather, "
                "5 cities, 48 h)",
                ("step", "status", "rows in", "rows out"),
                [(n, *v) for n, v in weather.get("steps", {}).items()])
    _rows_table("Weather quality checks of the run (audits and quality_check)",
                ("check", "status", "detail"),
                weather.get("quality", []))
    cfg = home / "lakestream.yaml"
    console.print(
        f"\nLake: {demo.storage.uri}\nNext, try:\n"
        f'  lakestream --config {cfg} query "SELECT * FROM user_transaction_summary '
        'ORDER BY total_amount DESC LIMIT 5"\n'
        f'  lakestream --config {cfg} query "SELECT reason, raw FROM dlq_transaction_stream" '
        "--format json\n"
        "  lakestream broker start && lakestream produce transactions --messages 10000 "
        "&& lakestream ingest --pipeline transactions --until-idle"
    )
