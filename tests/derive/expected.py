"""An independent recomputation of SPEC §3.3's aggregates from the produced events.

Plain Python with Decimal arithmetic; the only rules shared with the processor are
the documented ones (docs/ksqldb.md): each event's USD amount is its amount times the
currency's rate rounded half-up to micro-dollars (``ROUND(amount * to_usd, 6)``), its EUR
amount is that USD amount times the USD→EUR rate, computed exactly in decimal and
rounded half-up to micro-euros, and a unit price counts as the decimal it is written as.
Names and categories are those of the key's latest event: by event time, then input
offset, then partition number.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CHF": 1.13, "JPY": 0.0067, "CAD": 0.74}
USD_TO_EUR = 0.925926


def _micro(value: float | Decimal) -> int:
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _exact_micro(value: float) -> int:
    """A DOUBLE as the decimal its shortest text writes, in micro-units, rounded half-up."""
    return _micro(Decimal(repr(value)) * 1_000_000)


def _money(micro: int) -> float:
    return round(micro / 1_000_000, 6)


def _mean(micro: int, n: int) -> float:
    return round(micro / n / 1_000_000, 6)


def expected_tables(
    values: list[bytes], positions: Sequence[tuple[int, int]] | None = None
) -> dict[str, dict[tuple[str, ...], dict[str, Any]]]:
    """Every table's rows by key, from the raw event JSON.

    ``positions`` holds each value's (partition, offset) in the input topic. Without
    it, the list order stands for the offset: right within a partition, so only
    events of one key with the same event time in different partitions need it.
    """
    users: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    pms: dict[str, list[Any]] = defaultdict(lambda: ["", 0, 0, None])
    products: dict[str, list[Any]] = defaultdict(lambda: ["", "", 0, 0, 0, 0, set(), None])
    for i, raw in enumerate(values):
        e = json.loads(raw)
        if e["status"] != "completed":
            continue
        partition, offset = positions[i] if positions is not None else (0, i)
        recency = (datetime.fromisoformat(e["event_time"]), offset, partition)
        usd = _micro(e["amount"] * RATES[e["currency"]] * 1e6)
        eur = _micro(usd * Decimal(repr(USD_TO_EUR)))
        u = users[(e["user"]["user_id"], e["transaction_type"])]
        u[0], u[1], u[2] = u[0] + usd, u[1] + 1, u[2] + eur
        p = pms[e["payment_method"]["payment_method_id"]]
        p[1], p[2] = p[1] + usd, p[2] + 1
        if p[3] is None or recency > p[3]:
            p[0], p[3] = e["payment_method"].get("name"), recency
        if e["transaction_type"] == "purchase":
            q = products[e["product"]["product_id"]]
            if q[7] is None or recency > q[7]:
                q[0], q[1], q[7] = e["product"].get("name"), e["product"].get("category"), recency
            q[2], q[3] = q[2] + 1, q[3] + usd
            q[4], q[5] = q[4] + _exact_micro(e["product"]["unit_price"]), q[5] + 1
            q[6].add(e["user"]["user_id"])
    return {
        "user_transaction_summary": {
            k: {"total_amount": _money(t), "transaction_count": n, "avg_amount": _mean(t, n)}
            for k, (t, n, _) in users.items()},
        "user_transaction_summary_eur": {
            k: {"total_amount_eur": _money(e), "transaction_count": n,
                "avg_amount_eur": _mean(e, n), "exchange_rate": USD_TO_EUR}
            for k, (_, n, e) in users.items()},
        "payment_method_totals": {
            (k,): {"payment_method_name": name, "total_amount": _money(t),
                   "transaction_count": n, "avg_amount": _mean(t, n)}
            for k, (name, t, n, _) in pms.items()},
        "product_purchase_counts": {
            (k,): {"product_name": name, "product_category": cat, "purchase_count": n,
                   "total_revenue": _money(rev), "avg_price": _mean(pm, pn),
                   "unique_buyers": len(buyers)}
            for k, (name, cat, n, rev, pm, pn, buyers, _) in products.items()},
    }


def latest_per_key(records: list[tuple[int, int, bytes]], keys: list[str]
                   ) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A table topic's value of each key, from its records as (partition, offset, value).

    The last record of a key wins (partition, then offset order: a table's key always
    lands in one partition); the result has the key columns taken out of the value.
    """
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _partition, _offset, raw in sorted(records):
        value = json.loads(raw)
        latest[tuple(value[k] for k in keys)] = {c: v for c, v in value.items() if c not in keys}
    return latest


def assert_tables_exact(topics: dict[str, list[tuple[int, int, bytes]]],
                        inputs: list[tuple[int, int, bytes]], label: str = "") -> None:
    """Each shipped table topic's latest value per key equals the recomputation from
    ``inputs`` (``(partition, offset, value)`` of the input topic)."""
    from lakestream.derive.shipped import TABLES

    expected = expected_tables([v for _, _, v in inputs], [(p, o) for p, o, _ in inputs])
    for table, rows in expected.items():
        got = latest_per_key(topics[table], list(TABLES[table][0]))
        wrong = sorted(k for k in rows.keys() | got.keys() if rows.get(k) != got.get(k))
        assert not wrong, (f"{label}{table} differs on {len(wrong)} of {len(rows)} keys, e.g. "
                           f"{wrong[0]}: expected {rows.get(wrong[0])}, "
                           f"published {got.get(wrong[0])}")
