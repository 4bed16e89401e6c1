"""``sql/04_sample_queries.sql``: every query runs on every dialect and returns the right rows."""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lakestream.warehouse import WarehouseService

from .lakegen import (
    EUR_PER_USD,
    aggregates,
    flattened_events,
    latest_attributes,
    write_stream,
    write_table_version,
)

QUERIES_FILE = Path(__file__).resolve().parents[2] / "sql" / "04_sample_queries.sql"
PARAMS = {"snapshot": "v2", "previous_snapshot": "v1"}

Rows = list[tuple[Any, ...]]


def named_queries(path: Path = QUERIES_FILE) -> dict[str, str]:
    """``-- name: x`` blocks of a SQL file, comments and the final ``;`` removed."""
    queries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- name: "):
            current = queries.setdefault(line.removeprefix("-- name: ").strip(), [])
        elif current is not None and not line.lstrip().startswith("--"):
            current.append(line)
    return {name: "\n".join(body).strip().rstrip(";") for name, body in queries.items()}


class World:
    """The two snapshots and the dimensions, as plain Python, to compute expected rows."""

    def __init__(self, v1: dict[str, list[dict[str, Any]]], v2: dict[str, Any], events: list):
        self.v1, self.v2 = v1, v2
        self.users = latest_attributes(events, "user_id", ["user_name", "user_country"])
        self.methods = latest_attributes(
            events, "payment_method_id", ["payment_method_name", "payment_method_category"]
        )

    def spend(self, snapshot: dict[str, Any], types: tuple[str, ...]) -> dict[str, list[float]]:
        totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for r in snapshot["user_transaction_summary"]:
            if r["transaction_type"] in types:
                totals[r["user_id"]][0] += r["total_amount"]
                totals[r["user_id"]][1] += r["transaction_count"]
        return totals


ALL_TYPES = ("purchase", "refund", "transfer", "subscription")


def _snapshots(w: World) -> Rows:
    return [
        (v, d, len(s["user_transaction_summary"]),
         len({r["user_id"] for r in s["user_transaction_summary"]}),
         sum(r["total_amount"] for r in s["user_transaction_summary"]))
        for v, d, s in (("v1", "2025-01-18", w.v1), ("v2", "2025-01-19", w.v2))
    ]  # fmt: skip


def _top_users(w: World) -> Rows:
    spend = w.spend(w.v2, ("purchase", "subscription"))
    rows = [(u, *w.users[u], t, n) for u, (t, n) in spend.items()]
    return sorted(rows, key=lambda r: (-r[3], r[0]))[:10]


def _payment_methods(w: World) -> Rows:
    rows = w.v2["payment_method_totals"]
    everything = sum(r["total_amount"] for r in rows)
    out = [
        (r["payment_method_id"], *w.methods[r["payment_method_id"]], r["total_amount"],
         r["transaction_count"], r["avg_amount"], round(100 * r["total_amount"] / everything, 2))
        for r in rows
    ]  # fmt: skip
    return sorted(out, key=lambda r: (-r[3], r[0]))


def _products(w: World) -> Rows:
    rows = [
        (r["product_id"], r["product_name"], r["product_category"], r["purchase_count"],
         r["unique_buyers"], r["total_revenue"], r["avg_price"])
        for r in w.v2["product_purchase_counts"]
    ]  # fmt: skip
    return sorted(rows, key=lambda r: (-r[3], -r[5], r[0]))[:10]


def _countries(w: World) -> Rows:
    by_country: dict[str, list[Any]] = defaultdict(lambda: [set(), 0.0])
    for user, (total, _n) in w.spend(w.v2, ("purchase",)).items():
        country = w.users[user][1]
        by_country[country][0].add(user)
        by_country[country][1] += total
    rows = [(c, len(users), total) for c, (users, total) in by_country.items()]
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def _usd_vs_eur(w: World) -> Rows:
    rows = [(u, t, t * EUR_PER_USD, EUR_PER_USD) for u, (t, _n) in w.spend(w.v2, ALL_TYPES).items()]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def _user_change(w: World) -> Rows:
    before = w.spend(w.v1, ALL_TYPES)
    rows = [
        (u, before[u][0] if u in before else 0.0, t, t - (before[u][0] if u in before else 0.0))
        for u, (t, _n) in w.spend(w.v2, ALL_TYPES).items()
    ]
    return sorted(rows, key=lambda r: (-r[3], r[0]))[:10]


def _method_change(w: World) -> Rows:
    before = {r["payment_method_id"]: r for r in w.v1["payment_method_totals"]}
    rows = []
    for r in w.v2["payment_method_totals"]:
        old = before.get(r["payment_method_id"], {"transaction_count": 0, "total_amount": 0.0})
        rows.append(
            (r["payment_method_id"], r["payment_method_name"], old["transaction_count"],
             r["transaction_count"], r["total_amount"] - old["total_amount"])
        )  # fmt: skip
    return sorted(rows, key=lambda r: (-r[4], r[0]))


EXPECTED: dict[str, Callable[[World], Rows]] = {
    "snapshots": _snapshots,
    "top_users_by_spend": _top_users,
    "totals_by_payment_method": _payment_methods,
    "best_selling_products": _products,
    "revenue_by_country": _countries,
    "usd_vs_eur_per_user": _usd_vs_eur,
    "snapshot_change_per_user": _user_change,
    "snapshot_change_per_payment_method": _method_change,
}


@pytest.fixture
def world(service: WarehouseService, lake: Path, events: list[dict[str, Any]]) -> World:
    """Snapshots v1 (600 events) and v2 (900 events) synced into the warehouse."""
    v1 = aggregates(events)
    write_stream(lake, events)
    for table, rows in v1.items():
        write_table_version(lake, table, rows, "v1")
    service.sync()
    more = flattened_events(900)
    write_stream(lake, more)
    v2 = aggregates(more)
    for table, rows in v2.items():
        write_table_version(lake, table, rows, "v2", created_at="2025-01-19T00:00:00Z")
    service.sync()
    return World(v1, v2, more)


def test_every_query_is_checked() -> None:
    assert set(named_queries()) == set(EXPECTED)


def test_sample_queries_return_the_expected_rows(service: WarehouseService, world: World) -> None:
    with service.engine.connect() as conn:
        for name, sql in named_queries().items():
            got = [tuple(_plain(v) for v in row) for row in conn.execute(sa.text(sql), PARAMS)]
            expected = EXPECTED[name](world)
            assert len(got) == len(expected), name
            for row, want in zip(got, expected, strict=True):
                assert row == pytest.approx(want, abs=2e-3), name


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
