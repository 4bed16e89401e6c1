"""A small lake for warehouse tests: flattened stream rows and aggregate table versions.

The processor that derives these datasets from Kafka is built elsewhere; here
the test writes them itself, from events of the project's seeded generator,
and computes the aggregates in plain Python (SPEC §3.3), independently of
DuckDB and of the warehouse code, so that tests can compare against them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakestream.config import S3Settings
from lakestream.lake.delta import DeltaDataset
from lakestream.lake.storage import Storage, open_storage
from lakestream.sources.generator import USD_RATES, GeneratorConfig, TransactionGenerator

EUR_PER_USD = 0.92
START = dt.datetime(2025, 1, 15, 8, 0, tzinfo=dt.UTC)
MOVED_CITY = "Lyon"

TABLES = (
    "user_transaction_summary",
    "user_transaction_summary_eur",
    "payment_method_totals",
    "product_purchase_counts",
)

FLAT_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("event_time", pa.timestamp("ms", tz="UTC")),
        ("transaction_type", pa.string()),
        ("status", pa.string()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("amount_usd", pa.float64()),
        ("quantity", pa.int64()),
        ("user_id", pa.string()),
        ("user_name", pa.string()),
        ("user_email", pa.string()),
        ("user_country", pa.string()),
        ("user_city", pa.string()),
        ("payment_method_id", pa.string()),
        ("payment_method_name", pa.string()),
        ("payment_method_category", pa.string()),
        ("payment_method_is_active", pa.bool_()),
        ("product_id", pa.string()),
        ("product_name", pa.string()),
        ("product_category", pa.string()),
        ("product_unit_price", pa.float64()),
        ("ip_address", pa.string()),
        ("card_last4", pa.string()),
    ]
)


def flattened_events(count: int, seed: int = 7, users: int = 30) -> list[dict[str, Any]]:
    """``count`` flattened events over three days; some users move city on the last day."""
    generator = TransactionGenerator(seed=seed, config=GeneratorConfig(users=users, products=20))
    rows = []
    step = dt.timedelta(days=3) / count
    for i in range(count):
        e = generator.event()
        when = START + step * i
        user, method, product = e["user"], e["payment_method"], e["product"]
        moved = when.day == 17 and int(user["user_id"][1:]) % 3 == 0
        rows.append(
            {
                "transaction_id": e["transaction_id"],
                "event_time": when,
                "transaction_type": e["transaction_type"],
                "status": e["status"],
                "amount": e["amount"],
                "currency": e["currency"],
                "amount_usd": e["amount"] * USD_RATES[e["currency"]],
                "quantity": e["quantity"],
                "user_id": user["user_id"],
                "user_name": user["name"],
                "user_email": user["email"],
                "user_country": user["country"],
                "user_city": MOVED_CITY if moved else user["city"],
                "payment_method_id": method["payment_method_id"],
                "payment_method_name": method["name"],
                "payment_method_category": method["category"],
                "payment_method_is_active": method["is_active"],
                "product_id": product["product_id"],
                "product_name": product["name"],
                "product_category": product["category"],
                "product_unit_price": product["unit_price"],
                "ip_address": e["device"]["ip_address"],
                "card_last4": e["card_last4"],
            }
        )
    return rows


def aggregates(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The four aggregate tables of SPEC §3.3, computed in plain Python."""
    done = [e for e in events if e["status"] == "completed"]
    by_user: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_method: dict[str, list[float]] = defaultdict(list)
    names: dict[str, str] = {}
    for e in done:
        by_user[(e["user_id"], e["transaction_type"])].append(e["amount_usd"])
        by_method[e["payment_method_id"]].append(e["amount_usd"])
        names[e["payment_method_id"]] = e["payment_method_name"]
    users: list[dict[str, Any]] = [
        {"user_id": u, "transaction_type": t, "total_amount": sum(v),
         "transaction_count": len(v), "avg_amount": sum(v) / len(v)}
        for (u, t), v in sorted(by_user.items())
    ]  # fmt: skip
    eur = [
        {"user_id": r["user_id"], "transaction_type": r["transaction_type"],
         "total_amount_eur": r["total_amount"] * EUR_PER_USD,
         "transaction_count": r["transaction_count"],
         "avg_amount_eur": r["avg_amount"] * EUR_PER_USD, "exchange_rate": EUR_PER_USD}
        for r in users
    ]  # fmt: skip
    methods = [
        {"payment_method_id": m, "payment_method_name": names[m], "total_amount": sum(v),
         "transaction_count": len(v), "avg_amount": sum(v) / len(v)}
        for m, v in sorted(by_method.items())
    ]  # fmt: skip
    return {
        "user_transaction_summary": users,
        "user_transaction_summary_eur": eur,
        "payment_method_totals": methods,
        "product_purchase_counts": _products(done),
    }


def _products(done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    purchases: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in done:
        if e["transaction_type"] == "purchase":
            purchases[e["product_id"]].append(e)
    return [
        {"product_id": p, "product_name": rows[0]["product_name"],
         "product_category": rows[0]["product_category"], "purchase_count": len(rows),
         "total_revenue": sum(r["amount_usd"] for r in rows),
         "avg_price": sum(r["product_unit_price"] for r in rows) / len(rows),
         "unique_buyers": len({r["user_id"] for r in rows})}
        for p, rows in sorted(purchases.items())
    ]  # fmt: skip


def latest_attributes(events: list[dict[str, Any]], key: str, columns: list[str]) -> dict[str, Any]:
    """Per ``key`` value: ``columns`` of its latest event (ties: highest transaction id)."""
    latest: dict[str, dict[str, Any]] = {}
    for e in events:
        seen = latest.get(e[key])
        if seen is None or (e["event_time"], e["transaction_id"]) > (
            seen["event_time"],
            seen["transaction_id"],
        ):
            latest[e[key]] = e
    return {k: tuple(e[c] for c in columns) for k, e in latest.items()}


def write_stream(lake: Path, events: list[dict[str, Any]]) -> None:
    """``streams/transaction_flattened`` as a Delta table holding exactly ``events``
    (partitioned by ``year``/``month``/``day``; each call replaces the whole stream)."""
    from deltalake import write_deltalake

    table = pa.Table.from_pylist(events, schema=FLAT_SCHEMA)
    days = [e["event_time"].date() for e in events]
    for name, fmt in (("year", "{:04d}"), ("month", "{:02d}"), ("day", "{:02d}")):
        table = table.append_column(
            name, pa.array([fmt.format(getattr(d, name)) for d in days], pa.string()))
    dataset = DeltaDataset(_storage(lake), "streams/transaction_flattened",
                           ["year", "month", "day"])
    write_deltalake(dataset.ensure(table.schema), table, mode="overwrite",
                    partition_by=["year", "month", "day"])


def write_table_version(
    lake: Path,
    table: str,
    rows: list[dict[str, Any]],
    version: str,
    created_at: str | None = "2025-01-18T00:00:00Z",
    current: bool = True,
) -> Path:
    """Version ``version`` of ``tables/<table>`` (a Delta table partitioned by ``version``,
    the version replaced if it was there) and its ``_metadata.json`` entry; its folder."""
    data = pa.Table.from_pylist(rows)
    data = data.append_column("version", pa.array([version] * data.num_rows, pa.string()))
    DeltaDataset(_storage(lake), f"tables/{table}", ["version"]).overwrite(
        data, f"version = '{version}'")
    meta_path = lake / "tables" / table / "_metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"versions": []}
    if created_at is not None:
        meta["versions"].append({"version": version, "created_at": created_at})
    if current:
        meta["current_version"] = version
    meta_path.write_text(json.dumps(meta))
    return lake / "tables" / table / f"version={version}"


def _storage(lake: Path) -> Storage:
    return open_storage(str(lake), S3Settings())


def build_lake(lake: Path, events: list[dict[str, Any]], version: str = "v1") -> dict[str, Any]:
    """A lake with the stream and every table at ``version``; returns the aggregates."""
    write_stream(lake, events)
    tables = aggregates(events)
    for name, rows in tables.items():
        write_table_version(lake, name, rows, version)
    return tables
