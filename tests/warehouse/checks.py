"""Assertions on warehouse contents, in plain SQL (independent of the code under test)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

ORPHAN_QUERIES = {
    "fact_user_transaction_summary": (
        "SELECT COUNT(*) FROM fact_user_transaction_summary f "
        "LEFT JOIN dim_users d ON d.user_id = f.user_id WHERE d.user_id IS NULL"
    ),
    "fact_user_transaction_summary_eur": (
        "SELECT COUNT(*) FROM fact_user_transaction_summary_eur f "
        "LEFT JOIN dim_users d ON d.user_id = f.user_id WHERE d.user_id IS NULL"
    ),
    "fact_payment_method_totals": (
        "SELECT COUNT(*) FROM fact_payment_method_totals f LEFT JOIN dim_payment_methods d "
        "ON d.payment_method_id = f.payment_method_id WHERE d.payment_method_id IS NULL"
    ),
}

FACT_COLUMNS = {
    "user_transaction_summary": (
        "fact_user_transaction_summary",
        ("user_id", "transaction_type"),
        ("total_amount", "transaction_count", "avg_amount"),
    ),
    "user_transaction_summary_eur": (
        "fact_user_transaction_summary_eur",
        ("user_id", "transaction_type"),
        ("total_amount_eur", "transaction_count", "avg_amount_eur", "exchange_rate"),
    ),
    "payment_method_totals": (
        "fact_payment_method_totals",
        ("payment_method_id",),
        ("payment_method_name", "total_amount", "transaction_count", "avg_amount"),
    ),
    "product_purchase_counts": (
        "fact_product_purchase_counts",
        ("product_id",),
        ("product_name", "product_category", "purchase_count", "total_revenue", "avg_price",
         "unique_buyers"),
    ),
}  # fmt: skip


def assert_foreign_keys_hold(engine: sa.Engine) -> None:
    """Every fact row has its dimension row (checked by SQL, not trusted to the FKs)."""
    with engine.connect() as conn:
        orphans = {t: conn.exec_driver_sql(q).scalar_one() for t, q in ORPHAN_QUERIES.items()}
    assert orphans == dict.fromkeys(ORPHAN_QUERIES, 0)


def fact_rows(engine: sa.Engine, lake_table: str, snapshot: str) -> dict[tuple[Any, ...], tuple]:
    """``{natural key: values}`` of one snapshot of a fact table."""
    table, key, values = FACT_COLUMNS[lake_table]
    sql = f"SELECT {', '.join(key + values)} FROM {table} WHERE snapshot_version = :v"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {"v": snapshot}).all()
    return {tuple(r[: len(key)]): tuple(_plain(v) for v in r[len(key) :]) for r in rows}


def expected_rows(lake_table: str, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple]:
    """The same shape from the independently computed aggregates."""
    _, key, values = FACT_COLUMNS[lake_table]
    return {tuple(r[k] for k in key): tuple(r[v] for v in values) for r in rows}


def assert_facts_equal(actual: dict[Any, tuple], expected: dict[Any, tuple]) -> None:
    """Same keys; numbers equal to the stored precision (4 decimals), text exactly."""
    assert actual.keys() == expected.keys()
    for key, values in expected.items():
        assert actual[key] == pytest.approx(values, abs=1e-4), key


def snapshot_table(engine: sa.Engine, table: str, order: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (surrogate keys included), ordered."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    return float(value)
