"""``lakestream demo``: the main job on embedded defaults, end to end, with a summary.

It starts its own broker (so the topic holds exactly what the demo sends),
rebuilds the demo area ``<data_dir>/demo`` (so re-running is safe and never
touches a lake you configured yourself), produces events plus a few bad
messages, ingests them, queries the lake and prints what it built.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from rich.markup import escape
from rich.table import Table

from lakestream.api import Lakestream
from lakestream.config import Settings
from lakestream.kafka import client
from lakestream.kafka.broker import EmbeddedBroker
from lakestream.kafka.producer import produce
from lakestream.lake.metadata import read_metadata
from lakestream.output import console, progress_bar

# One message of each kind of bad input, to show where they go.
BAD_MESSAGES: tuple[tuple[bytes, bytes], ...] = (
    (b"bad-1", b"{not json"),
    (b"bad-2", b"[1, 2, 3]"),
    (b"bad-3", b'{"transaction_id": "x", "event_time": "2025-01-15T00:00:00Z"}'),
    (b"bad-4", b'{"transaction_id": "y", "event_time": "yesterday", "amount": 1}'),
    (b"bad-5", b""),
)


def demo_settings(settings: Settings) -> Settings:
    """The user's settings with the demo's own data area and lake."""
    home = Path(settings.data_dir) / "demo"
    lake = settings.lake.model_copy(update={"root": str(home / "lake"), "flush_interval_s": 2.0})
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": None})
    return settings.model_copy(update={"data_dir": str(home), "lake": lake, "kafka": kafka})


def run_demo(api: Lakestream, messages: int, seed: int) -> dict[str, Any]:
    """Run the demo and print its summary; returns the summary's numbers (for tests)."""
    settings = demo_settings(api.settings)
    home = Path(settings.data_dir)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    _write_config(settings, home / "lakestream.yaml")
    demo = Lakestream(settings)
    console.print(f"[bold]Lakestream demo[/] — data in {home}/")
    with EmbeddedBroker(home / "broker") as broker:
        console.print(f"• broker (Tansu) started at {broker.bootstrap_servers}")
        with progress_bar("producing transactions", messages) as advance:
            report = demo.produce_transactions(messages, 0, seed, advance, broker.bootstrap_servers)
        produce(
            client.producer_config(settings, broker.bootstrap_servers), "transactions", BAD_MESSAGES
        )
        console.print(
            f"• produced {report.delivered:,} transaction events + {len(BAD_MESSAGES)} bad messages"
        )
        engine = demo.ingest_engine(
            demo.select_feeds("transactions", None),
            until_idle=True,
            idle_timeout_s=2.0,
            group_id="lakestream-demo",
            bootstrap=broker.bootstrap_servers,
        )
        with console.status("ingesting into the lake (waits for the consumer group join)…"):
            ingest = engine.run()
        console.print(
            f"• ingested {ingest.written:,} records, {ingest.rejected} to the DLQ, "
            f"{ingest.files} files"
        )
    summary = _summary(demo)
    _print_summary(demo, summary, home)
    return summary


def _write_config(settings: Settings, path: Path) -> None:
    config = {"data_dir": settings.data_dir, "lake": {"root": settings.lake.root}}
    path.write_text(
        "# written by `lakestream demo`: use with --config to look at the demo\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


def _summary(demo: Lakestream) -> dict[str, Any]:
    meta = read_metadata(demo.storage, "streams/transaction_stream") or {}
    _, by_day = demo.query(
        "SELECT make_date(year, month, day) AS day, count(*) FROM transaction_stream "
        "GROUP BY ALL ORDER BY 1"
    )
    _, by_currency = demo.query(
        "SELECT currency, count(*) AS events, round(sum(amount), 2) AS amount, "
        "count(*) FILTER (status = 'completed') AS completed "
        "FROM transaction_stream GROUP BY ALL ORDER BY events DESC"
    )
    _, dlq = demo.query("SELECT reason, count(*) FROM dlq_transaction_stream GROUP BY 1 ORDER BY 1")
    return {
        "records": meta.get("records", 0),
        "rejected": meta.get("rejected_records", 0),
        "files": meta.get("files", 0),
        "bytes": meta.get("bytes", 0),
        "partitions": len(meta.get("partitions", [])),
        "by_day": by_day,
        "by_currency": by_currency,
        "dlq": dlq,
    }


def _print_summary(demo: Lakestream, s: dict[str, Any], home: Path) -> None:
    table = Table("feed", "records", "date partitions", "files", "MB", "DLQ", title="Lake")
    table.add_row(
        "transaction_stream",
        f"{s['records']:,}",
        str(s["partitions"]),
        str(s["files"]),
        f"{s['bytes'] / 1e6:.2f}",
        str(s["rejected"]),
    )
    console.print(table)
    days = Table("event date", "records", title="Records per event day")
    for day, n in s["by_day"]:
        days.add_row(str(day), f"{n:,}")
    console.print(days)
    top = Table("currency", "events", "amount", "completed", title="Volume per currency")
    for row in s["by_currency"]:
        top.add_row(*(str(v) for v in row))
    console.print(top)
    dlq = Table("reason", "messages", title="Dead letters (bad input is kept, not lost)")
    for reason, n in s["dlq"]:
        dlq.add_row(escape(str(reason)), str(n))
    console.print(dlq)
    cfg = home / "lakestream.yaml"
    console.print(
        f"\nLake: {demo.storage.uri}\nNext, try:\n"
        f'  lakestream --config {cfg} query "SELECT * FROM transaction_stream LIMIT 5"\n'
        f'  lakestream --config {cfg} query "SELECT reason, raw FROM '
        'dlq_transaction_stream" --format json\n'
        "  lakestream broker start && lakestream produce transactions --messages 10000"
        " && lakestream ingest --pipeline transactions --until-idle"
    )
