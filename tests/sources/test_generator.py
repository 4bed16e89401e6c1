"""Tests for the seeded transaction event generator."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from lakestream.sources.generator import (
    CURRENCIES,
    STATUSES,
    TRANSACTION_TYPES,
    USD_RATES,
    GeneratorConfig,
    TransactionGenerator,
)

CLOCK = datetime(2025, 1, 15, 12, 34, 56, 789_000, tzinfo=UTC)
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SAMPLE_SIZE = 20_000
EVENT_KEYS = {
    "transaction_id",
    "event_time",
    "transaction_type",
    "status",
    "amount",
    "currency",
    "quantity",
    "user",
    "payment_method",
    "product",
    "device",
    "card_last4",
}
NESTED_KEYS: dict[str, dict[str, type]] = {
    "user": {"user_id": str, "name": str, "email": str, "country": str, "city": str},
    "payment_method": {"payment_method_id": str, "name": str, "category": str, "is_active": bool},
    "product": {"product_id": str, "name": str, "category": str, "unit_price": float},
    "device": {"ip_address": str, "user_agent": str},
}


def fixed_clock() -> datetime:
    """Return the frozen test clock."""
    return CLOCK


def frozen(moment: datetime) -> Callable[[], datetime]:
    """Return a clock that always reports ``moment``."""
    return lambda: moment


def parse_time(text: str) -> datetime:
    """Parse an event_time string into an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def sample() -> list[tuple[bytes, dict[str, Any]]]:
    """20k (key, decoded event) pairs from a seeded generator with a frozen clock."""
    gen = TransactionGenerator(seed=7, now=fixed_clock)
    return [(key, orjson.loads(value)) for key, value in gen.messages(SAMPLE_SIZE)]


def test_same_seed_and_clock_give_identical_bytes() -> None:
    first = list(TransactionGenerator(seed=42, now=fixed_clock).messages(2_000))
    second = list(TransactionGenerator(seed=42, now=fixed_clock).messages(2_000))
    assert first == second


def test_output_is_identical_across_processes() -> None:
    script = (
        "import hashlib, datetime as d\n"
        "from lakestream.sources.generator import TransactionGenerator\n"
        "c = d.datetime(2025, 1, 15, 12, 34, 56, 789000, tzinfo=d.UTC)\n"
        "g = TransactionGenerator(seed=3, now=lambda: c)\n"
        "h = hashlib.sha256()\n"
        "for k, v in g.messages(1000): h.update(k + b'|' + v)\n"
        "print(h.hexdigest())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    digests = set()
    for hash_seed in ("1", "2"):
        env["PYTHONHASHSEED"] = hash_seed
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
        )
        digests.add(out.stdout.strip())
    local = hashlib.sha256()
    for key, value in TransactionGenerator(seed=3, now=fixed_clock).messages(1000):
        local.update(key + b"|" + value)
    assert digests == {local.hexdigest()}


def test_different_seeds_differ() -> None:
    first = list(TransactionGenerator(seed=1, now=fixed_clock).messages(100))
    second = list(TransactionGenerator(seed=2, now=fixed_clock).messages(100))
    assert first != second
    assert TransactionGenerator(seed=1).users != TransactionGenerator(seed=2).users


def test_every_event_matches_contract(sample: list[tuple[bytes, dict[str, Any]]]) -> None:
    for key, event in sample:
        assert set(event) == EVENT_KEYS
        assert key == event["user"]["user_id"].encode()
        assert uuid.UUID(event["transaction_id"]).version == 4
        assert TIME_RE.match(event["event_time"])
        assert event["transaction_type"] in TRANSACTION_TYPES
        assert event["status"] in STATUSES
        assert event["currency"] in CURRENCIES
        assert isinstance(event["amount"], float) and event["amount"] > 0
        assert isinstance(event["quantity"], int) and event["quantity"] >= 1
        for name, fields in NESTED_KEYS.items():
            assert set(event[name]) == set(fields)
            for field, kind in fields.items():
                assert isinstance(event[name][field], kind), (name, field)
        assert event["product"]["unit_price"] > 0


def test_transaction_ids_are_unique(sample: list[tuple[bytes, dict[str, Any]]]) -> None:
    assert len({event["transaction_id"] for _, event in sample}) == SAMPLE_SIZE


def test_all_enum_values_occur_with_realistic_mix(
    sample: list[tuple[bytes, dict[str, Any]]],
) -> None:
    types = Counter(event["transaction_type"] for _, event in sample)
    statuses = Counter(event["status"] for _, event in sample)
    currencies = Counter(event["currency"] for _, event in sample)
    assert set(types) == set(TRANSACTION_TYPES)
    assert set(statuses) == set(STATUSES)
    assert set(currencies) == set(CURRENCIES)
    assert types.most_common(1)[0][0] == "purchase"
    assert statuses.most_common(1)[0][0] == "completed"


def test_cardinalities(sample: list[tuple[bytes, dict[str, Any]]]) -> None:
    events = [event for _, event in sample]
    assert len({e["user"]["user_id"] for e in events}) >= 1000
    assert len({e["product"]["product_id"] for e in events}) >= 100
    assert len({e["product"]["category"] for e in events}) >= 6
    methods = {e["payment_method"]["payment_method_id"] for e in events}
    assert 2 <= len(methods) <= 10
    assert len({e["user"]["country"] for e in events}) >= 10


def test_late_events_share_and_window(sample: list[tuple[bytes, dict[str, Any]]]) -> None:
    lags = [CLOCK - parse_time(event["event_time"]) for _, event in sample]
    late = [lag for lag in lags if lag >= timedelta(hours=1)]
    assert abs(len(late) / SAMPLE_SIZE - 0.02) < 0.006
    assert all(timedelta(hours=1) <= lag <= timedelta(hours=72) for lag in late)
    on_time = [lag for lag in lags if lag < timedelta(hours=1)]
    assert all(timedelta(0) <= lag < timedelta(seconds=5) for lag in on_time)


def test_user_attributes_are_stable(sample: list[tuple[bytes, dict[str, Any]]]) -> None:
    gen = TransactionGenerator(seed=7, now=fixed_clock)
    reference = {u.user_id: u for u in gen.users}
    assert len(reference) == GeneratorConfig().users
    seen: dict[str, dict[str, Any]] = {}
    for _, event in sample:
        user = event["user"]
        assert seen.setdefault(user["user_id"], user) == user
        ref = reference[user["user_id"]]
        assert (ref.name, ref.email, ref.country, ref.city) == (
            user["name"],
            user["email"],
            user["country"],
            user["city"],
        )
        assert event["device"]["ip_address"] in ref.ip_addresses


def test_emails_are_unique() -> None:
    users = TransactionGenerator(seed=11).users
    assert len({u.email for u in users}) == len(users)


def test_card_last4_only_for_card_methods(sample: list[tuple[bytes, dict[str, Any]]]) -> None:
    for _, event in sample:
        if event["payment_method"]["category"] == "card":
            assert re.fullmatch(r"\d{4}", event["card_last4"])
        else:
            assert event["card_last4"] is None
    assert any(event["card_last4"] is None for _, event in sample)


def test_inactive_payment_method_always_fails(
    sample: list[tuple[bytes, dict[str, Any]]],
) -> None:
    inactive = [e for _, e in sample if not e["payment_method"]["is_active"]]
    assert inactive, "the inactive method should still be used occasionally"
    assert all(e["status"] == "failed" for e in inactive)


def test_amount_matches_price_quantity_and_rate(
    sample: list[tuple[bytes, dict[str, Any]]],
) -> None:
    for _, event in sample:
        expected = event["product"]["unit_price"] * event["quantity"] / USD_RATES[event["currency"]]
        tolerance = 0.5 if event["currency"] == "JPY" else 0.005
        assert abs(event["amount"] - expected) <= tolerance + 1e-9
        if event["transaction_type"] in ("transfer", "subscription"):
            assert event["quantity"] == 1


def test_event_returns_independent_copies() -> None:
    gen = TransactionGenerator(seed=5, config=GeneratorConfig(users=1), now=fixed_clock)
    first = gen.event()
    first["user"]["name"] = "Mallory"
    assert gen.event()["user"]["name"] == gen.users[0].name
    assert orjson.loads(gen.message()[1])["user"]["name"] == gen.users[0].name


def test_custom_config_sizes_and_all_late() -> None:
    config = GeneratorConfig(users=10, products=5, late_fraction=1.0, max_late_hours=2.0)
    gen = TransactionGenerator(seed=9, config=config, now=fixed_clock)
    events = [gen.event() for _ in range(500)]
    assert {e["user"]["user_id"] for e in events} <= {u.user_id for u in gen.users}
    assert len({e["product"]["product_id"] for e in events}) <= 5
    lags = [CLOCK - parse_time(e["event_time"]) for e in events]
    assert all(timedelta(hours=1) <= lag <= timedelta(hours=2) for lag in lags)


@pytest.mark.parametrize(
    "kwargs",
    [{"users": 0}, {"products": 0}, {"late_fraction": 1.5}, {"max_late_hours": 0.5}],
)
def test_invalid_config_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**kwargs)


def test_clock_timezones_are_normalised_to_utc() -> None:
    config = GeneratorConfig(late_fraction=0.0)
    paris = CLOCK.astimezone(timezone(timedelta(hours=1)))
    naive = CLOCK.replace(tzinfo=None)
    for clock in (paris, naive):
        event = TransactionGenerator(seed=1, config=config, now=frozen(clock)).event()
        assert timedelta(0) <= CLOCK - parse_time(event["event_time"]) < timedelta(seconds=5)


def test_default_clock_is_real_utc_time() -> None:
    gen = TransactionGenerator(seed=1, config=GeneratorConfig(late_fraction=0.0))
    before = datetime.now(UTC)
    stamp = parse_time(gen.event()["event_time"])
    assert before - timedelta(seconds=10) <= stamp <= datetime.now(UTC)


def test_unseeded_generators_differ() -> None:
    first = list(TransactionGenerator(now=fixed_clock).messages(10))
    second = list(TransactionGenerator(now=fixed_clock).messages(10))
    assert first != second


def _catalogue(seed: int, products: int = 300) -> dict[str, tuple[Any, ...]]:
    """Product and payment-method id -> attributes, as seen in 20k events of ``seed``."""
    gen = TransactionGenerator(seed, GeneratorConfig(products=products), fixed_clock)
    seen: dict[str, set[tuple[Any, ...]]] = {}
    for event in (gen.event() for _ in range(20_000)):
        product, method = event["product"], event["payment_method"]
        seen.setdefault(product["product_id"], set()).add(
            (product["name"], product["category"], product["unit_price"]))
        seen.setdefault(method["payment_method_id"], set()).add(
            (method["name"], method["category"], method["is_active"]))
    assert all(len(attributes) == 1 for attributes in seen.values()), "an id, two products"
    return {key: attributes.pop() for key, attributes in seen.items()}


def test_a_product_id_is_one_product_whatever_the_seed() -> None:
    catalogues = [_catalogue(seed) for seed in (1, 2, 3, 4)] + [_catalogue(5, products=250)]
    assert all("P0205" in c for c in catalogues)
    assert len({c["P0205"] for c in catalogues}) == 1
    for key in set.intersection(*(set(c) for c in catalogues)):
        assert len({c[key] for c in catalogues}) == 1, key
    assert {c["PM03"] for c in catalogues} == {("paypal", "wallet", True)}
    assert len({name for c in catalogues for k, (name, *_) in c.items() if k[1] != "M"}) > 200
