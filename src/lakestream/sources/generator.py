"""Seeded, realistic generator of e-commerce transaction events.

The generator feeds the Kafka producer, so it is built for throughput: all
reference data (users, products, payment methods) is drawn once at start-up
and each event only performs a handful of cheap random draws. With a fixed
seed and an injected clock the output is byte-identical across runs, which
makes pipeline tests reproducible.

Modelling rules (kept deliberately simple and documented so that tests and
downstream data-quality checks can rely on them):

* A user's name, email, country, city, card, preferred payment method and
  device are fixed for a given seed.
* A product id is one product (name, category, unit price) whatever the seed,
  and a payment method id one method: the catalogue depends on the id alone, so
  streams generated with different seeds agree on what ``P0205`` is. The seed
  drives only which products are popular and everything else.
* ``card_last4`` is set if and only if the payment method category is
  ``"card"``; wallet, bank and crypto payments carry ``null``.
* A payment through an inactive method always has status ``"failed"``.
* ``amount`` is ``unit_price * quantity`` (USD) converted with
  :data:`USD_RATES`, rounded to the currency's minor unit (0 for JPY).
* Transfers and subscriptions always have ``quantity == 1``.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import orjson

T = TypeVar("T")

TRANSACTION_TYPES: tuple[str, ...] = ("purchase", "refund", "transfer", "subscription")
STATUSES: tuple[str, ...] = ("completed", "pending", "failed")
CURRENCIES: tuple[str, ...] = ("USD", "EUR", "GBP", "CHF", "JPY", "CAD")
USD_RATES: Mapping[str, float] = MappingProxyType(
    {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CHF": 1.13, "JPY": 0.0067, "CAD": 0.74}
)
"""Approximate USD value of one unit of each currency (fixed for reproducibility)."""

_CURRENCY_DECIMALS: Mapping[str, int] = MappingProxyType({"JPY": 0})
_TYPE_WEIGHTS = (80.0, 7.0, 6.0, 7.0)
_STATUS_WEIGHTS = (90.0, 6.0, 4.0)
_QUANTITY_WEIGHTS = (70.0, 18.0, 7.0, 3.0, 2.0)  # quantities 1..5
_SINGLE_UNIT_TYPES = frozenset({"transfer", "subscription"})
_HOME_CURRENCY_SHARE = 0.85
_PREFERRED_METHOD_SHARE = 0.75
_PRIMARY_DEVICE_SHARE = 0.9
_RECENT_MAX_MS = 3_000
_MS_PER_HOUR = 3_600_000
_LATE_MIN_MS = _MS_PER_HOUR
_RESERVED_FIRST_OCTETS = frozenset({10, 100, 127, 169, 172, 192, 198, 203})
_CATALOGUE_SEED = 20250115  # fixed: product ids mean the same product in every stream

# (country, home currency, population weight, cities)
_COUNTRIES: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("US", "USD", 25, ("New York", "Los Angeles", "Chicago", "Houston", "Seattle", "Boston")),
    ("CA", "CAD", 7, ("Toronto", "Montreal", "Vancouver", "Calgary")),
    ("GB", "GBP", 12, ("London", "Manchester", "Birmingham", "Edinburgh", "Bristol")),
    ("IE", "EUR", 3, ("Dublin", "Cork", "Galway")),
    ("FR", "EUR", 10, ("Paris", "Lyon", "Marseille", "Toulouse", "Bordeaux", "Lille")),
    ("DE", "EUR", 10, ("Berlin", "Munich", "Hamburg", "Frankfurt", "Cologne")),
    ("ES", "EUR", 6, ("Madrid", "Barcelona", "Valencia", "Seville")),
    ("IT", "EUR", 6, ("Rome", "Milan", "Naples", "Turin", "Florence")),
    ("NL", "EUR", 5, ("Amsterdam", "Rotterdam", "Utrecht", "The Hague")),
    ("BE", "EUR", 4, ("Brussels", "Antwerp", "Ghent", "Liège")),
    ("CH", "CHF", 4, ("Zürich", "Geneva", "Basel", "Lausanne", "Bern")),
    ("JP", "JPY", 8, ("Tokyo", "Osaka", "Yokohama", "Kyoto", "Sapporo")),
)
_FIRST_NAMES = (
    "Alice",
    "Liam",
    "Emma",
    "Noah",
    "Olivia",
    "Lucas",
    "Mia",
    "Hugo",
    "Sofia",
    "Leon",
    "Chloe",
    "Mateo",
    "Hannah",
    "Louis",
    "Giulia",
    "Daniel",
    "Sara",
    "Ethan",
    "Yuki",
    "Kenji",
    "Amelia",
    "Oscar",
    "Lea",
    "Jack",
    "Marie",
    "Paul",
    "Elena",
    "David",
    "Laura",
    "Thomas",
    "Nina",
    "Samuel",
    "Julia",
    "Felix",
    "Ava",
    "Leo",
    "Ines",
    "Max",
)
_LAST_NAMES = (
    "Martin",
    "Smith",
    "Johnson",
    "Brown",
    "Garcia",
    "Muller",
    "Schmidt",
    "Rossi",
    "Bernard",
    "Dubois",
    "Lopez",
    "Fernandez",
    "Jansen",
    "Peeters",
    "Murphy",
    "Kelly",
    "Tanaka",
    "Suzuki",
    "Sato",
    "Wilson",
    "Taylor",
    "Moreau",
    "Fischer",
    "Weber",
    "Bianchi",
    "Romano",
    "Visser",
    "Meier",
    "Keller",
    "Walsh",
    "Roux",
    "Clark",
)
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "LakeShop/4.2.1 (iOS 17.2; iPhone15,2)",
)
# (name, category, is_active, popularity weight)
_PAYMENT_METHODS: tuple[tuple[str, str, bool, float], ...] = (
    ("credit_card", "card", True, 40),
    ("debit_card", "card", True, 25),
    ("paypal", "wallet", True, 15),
    ("apple_pay", "wallet", True, 10),
    ("bank_transfer", "bank", True, 8),
    ("crypto", "crypto", False, 2),
)
_BRANDS = ("Acme", "Northwind", "Evergreen", "Bluepeak", "Lumen", "Terra", "Kinetic", "Harbor")
# category -> (product noun, typical USD price)
_CATALOG: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "electronics": (
            ("Wireless Mouse", 29),
            ("Mechanical Keyboard", 99),
            ("USB-C Hub", 39),
            ("Bluetooth Speaker", 69),
            ("Noise-Cancelling Headphones", 249),
            ("27-inch Monitor", 279),
            ("HD Webcam", 59),
            ("Portable SSD", 119),
            ("Smartwatch", 199),
            ("Phone Charger", 19),
        ),
        "books": (
            ("Mystery Novel", 14),
            ("Cookbook", 29),
            ("Science Fiction Novel", 16),
            ("Biography", 22),
            ("Travel Guide", 19),
            ("Picture Book", 12),
            ("Programming Handbook", 45),
            ("History Atlas", 35),
            ("Graphic Novel", 18),
        ),
        "clothing": (
            ("T-Shirt", 19),
            ("Hoodie", 49),
            ("Denim Jeans", 59),
            ("Rain Jacket", 89),
            ("Running Shoes", 109),
            ("Wool Sweater", 79),
            ("Baseball Cap", 24),
            ("Leather Belt", 35),
            ("Winter Coat", 159),
            ("Socks 5-Pack", 15),
        ),
        "home": (
            ("Coffee Maker", 79),
            ("Chef's Knife", 59),
            ("Nonstick Pan", 39),
            ("Bath Towel Set", 34),
            ("Desk Lamp", 42),
            ("Throw Blanket", 38),
            ("Scented Candle", 18),
            ("Cutting Board", 25),
            ("Air Purifier", 149),
        ),
        "beauty": (
            ("Face Moisturizer", 24),
            ("Shampoo", 11),
            ("Eau de Parfum", 79),
            ("Lipstick", 19),
            ("Sunscreen SPF 50", 16),
            ("Electric Toothbrush", 69),
            ("Hair Dryer", 59),
            ("Beard Trimmer", 45),
            ("Vitamin C Serum", 32),
        ),
        "sports": (
            ("Yoga Mat", 29),
            ("Dumbbell Set", 89),
            ("Tennis Racket", 119),
            ("Cycling Helmet", 65),
            ("Water Bottle", 19),
            ("Resistance Bands", 22),
            ("Football", 25),
            ("Hiking Backpack", 95),
            ("Fitness Tracker", 79),
        ),
        "toys": (
            ("Building Blocks Set", 49),
            ("Jigsaw Puzzle", 19),
            ("Board Game", 35),
            ("Plush Bear", 17),
            ("Remote Control Car", 55),
            ("Card Game", 12),
            ("Science Kit", 39),
            ("Wooden Train Set", 45),
            ("Art Supplies Kit", 27),
        ),
        "grocery": (
            ("Organic Coffee Beans", 16),
            ("Green Tea", 8),
            ("Extra Virgin Olive Oil", 14),
            ("Dark Chocolate", 4),
            ("Whole Wheat Pasta", 3),
            ("Granola", 6),
            ("Wildflower Honey", 9),
            ("Roasted Almonds", 11),
            ("Protein Bars 12-Pack", 24),
        ),
    }
)


@dataclass(frozen=True)
class GeneratorConfig:
    """Size and lateness knobs of the generated stream.

    Attributes:
        users: Number of distinct reference users.
        products: Number of distinct products in the catalogue.
        late_fraction: Share of events whose ``event_time`` lags the clock by
            one hour up to ``max_late_hours`` (exercises watermarking).
        max_late_hours: Maximum lateness of a late event, in hours (>= 1).
    """

    users: int = 5000
    products: int = 300
    late_fraction: float = 0.02
    max_late_hours: float = 72.0

    def __post_init__(self) -> None:
        """Reject configurations that cannot produce a valid stream."""
        if self.users < 1 or self.products < 1:
            raise ValueError("users and products must be >= 1")
        if not 0.0 <= self.late_fraction <= 1.0:
            raise ValueError("late_fraction must be within [0, 1]")
        if self.max_late_hours < 1.0:
            raise ValueError("max_late_hours must be >= 1")


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """A payment method as exposed in events."""

    payment_method_id: str
    name: str
    category: str
    is_active: bool

    def as_dict(self) -> dict[str, Any]:
        """Return the event representation of this payment method."""
        return {
            "payment_method_id": self.payment_method_id,
            "name": self.name,
            "category": self.category,
            "is_active": self.is_active,
        }


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue product; ``unit_price`` is in USD."""

    product_id: str
    name: str
    category: str
    unit_price: float

    def as_dict(self) -> dict[str, Any]:
        """Return the event representation of this product."""
        return {
            "product_id": self.product_id,
            "name": self.name,
            "category": self.category,
            "unit_price": self.unit_price,
        }


@dataclass(frozen=True, slots=True)
class User:
    """A reference user with stable identity, location, card and device.

    Only the identity/location fields appear in the ``user`` object of an
    event; the rest drives per-user behaviour (currency, payment, device).
    """

    user_id: str
    name: str
    email: str
    country: str
    city: str
    currency: str
    card_last4: str
    preferred_method: int
    ip_addresses: tuple[str, ...]
    user_agent: str

    def as_dict(self) -> dict[str, Any]:
        """Return the event representation of this user."""
        return {
            "user_id": self.user_id,
            "name": self.name,
            "email": self.email,
            "country": self.country,
            "city": self.city,
        }


class _Weighted(Generic[T]):
    """Weighted sampler using precomputed cumulative weights (O(log n) per draw)."""

    def __init__(self, items: Iterable[T], weights: Iterable[float]) -> None:
        self.items: tuple[T, ...] = tuple(items)
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1]
        self._last = len(self.items) - 1

    def pick(self, rand: Callable[[], float]) -> T:
        """Draw one item using the uniform source ``rand``."""
        index = bisect_right(self._cum, rand() * self._total)
        return self.items[min(index, self._last)]


def _utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (the default clock)."""
    return datetime.now(UTC)


def _random_ip(rng: random.Random) -> str:
    """Draw a public-looking IPv4 address (avoids private/test first octets)."""
    first = rng.randint(1, 223)
    while first in _RESERVED_FIRST_OCTETS:
        first = rng.randint(1, 223)
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _build_payment_methods() -> list[PaymentMethod]:
    """Create the fixed payment-method table (PM01..PM06)."""
    return [
        PaymentMethod(f"PM{i:02d}", name, category, active)
        for i, (name, category, active, _) in enumerate(_PAYMENT_METHODS, start=1)
    ]


def _build_products(count: int) -> list[Product]:
    """The first ``count`` products of the catalogue (brand x noun across categories).

    Drawn from a fixed seed, one product after the other, so product ``i`` is the
    same whatever ``count`` and the generator's seed.
    """
    rng = random.Random(_CATALOGUE_SEED)
    combos = [
        (category, noun, price, brand)
        for category, items in _CATALOG.items()
        for noun, price in items
        for brand in _BRANDS
    ]
    rng.shuffle(combos)
    width = max(4, len(str(count)))
    products = []
    for i in range(count):
        category, noun, typical, brand = combos[i % len(combos)]
        edition = i // len(combos)
        name = f"{brand} {noun}" + (f" Gen {edition + 1}" if edition else "")
        price = round(max(0.99, round(typical * rng.uniform(0.75, 1.35)) - 0.01), 2)
        products.append(Product(f"P{i + 1:0{width}d}", name, category, price))
    return products


def _build_users(rng: random.Random, count: int) -> list[User]:
    """Draw ``count`` users with unique emails and stable per-user behaviour."""
    countries = _Weighted(_COUNTRIES, (c[2] for c in _COUNTRIES))
    methods = _Weighted(range(len(_PAYMENT_METHODS)), (m[3] for m in _PAYMENT_METHODS))
    width = max(5, len(str(count)))
    seen: dict[str, int] = {}
    users = []
    for i in range(1, count + 1):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        local = f"{first}.{last}".lower()
        clash = seen.get(local, 0)
        seen[local] = clash + 1
        country, currency, _, cities = countries.pick(rng.random)
        ips = tuple(_random_ip(rng) for _ in range(rng.randint(1, 3)))
        users.append(
            User(
                user_id=f"U{i:0{width}d}",
                name=f"{first} {last}",
                email=f"{local}{clash or ''}@{rng.choice(_EMAIL_DOMAINS)}",
                country=country,
                city=rng.choice(cities),
                currency=currency,
                card_last4=f"{rng.randrange(10_000):04d}",
                preferred_method=methods.pick(rng.random),
                ip_addresses=ips,
                user_agent=rng.choice(_USER_AGENTS),
            )
        )
    return users


def _uuid4(bits: int) -> str:
    """Format 128 random bits as an RFC 4122 version-4 UUID string."""
    value = (bits & ~(0xF << 76) & ~(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class TransactionGenerator:
    """Produce realistic transaction events, reproducibly for a given seed.

    Args:
        seed: Seed of the private random generator; ``None`` draws from OS entropy.
        config: Sizes and lateness settings; ``None`` means ``GeneratorConfig()``
            (a ``None`` default rather than a call in the signature, per ruff B008).
        now: Clock returning the current time (naive values are taken as UTC);
            defaults to the real UTC clock. Inject a fixed clock for
            byte-identical output.
    """

    def __init__(
        self,
        seed: int | None = None,
        config: GeneratorConfig | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config if config is not None else GeneratorConfig()
        self._rng = random.Random(seed)
        self._now = now if now is not None else _utc_now
        self._methods = _build_payment_methods()
        self._users = tuple(_build_users(self._rng, self.config.users))
        products = _build_products(self.config.products)
        self._method_dicts = [m.as_dict() for m in self._methods]
        self._user_dicts = [u.as_dict() for u in self._users]
        self._user_picker = _Weighted(
            range(len(self._users)), [self._rng.lognormvariate(0.0, 0.75) for _ in self._users]
        )
        self._product_picker = _Weighted(
            [(p, p.as_dict()) for p in products],
            [self._rng.lognormvariate(0.0, 1.0) for _ in products],
        )
        self._method_picker = _Weighted(range(len(self._methods)), (m[3] for m in _PAYMENT_METHODS))
        self._type_picker = _Weighted(TRANSACTION_TYPES, _TYPE_WEIGHTS)
        self._status_picker = _Weighted(STATUSES, _STATUS_WEIGHTS)
        self._quantity_picker = _Weighted(range(1, len(_QUANTITY_WEIGHTS) + 1), _QUANTITY_WEIGHTS)
        self._late_max_ms = int(self.config.max_late_hours * _MS_PER_HOUR)

    @property
    def users(self) -> Sequence[User]:
        """The reference users events are drawn from (stable for a seed)."""
        return self._users

    @property
    def payment_methods(self) -> Sequence[PaymentMethod]:
        """The fixed payment-method table."""
        return tuple(self._methods)

    def event(self) -> dict[str, Any]:
        """Return one event as a dict whose nested objects the caller may mutate."""
        event = self._draw()
        for key in ("user", "payment_method", "product"):
            event[key] = dict(event[key])
        return event

    def message(self) -> tuple[bytes, bytes]:
        """Return one Kafka message as ``(user_id key, JSON value)`` bytes."""
        event = self._draw()
        return event["user"]["user_id"].encode(), orjson.dumps(event)

    def messages(self, n: int) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``n`` Kafka messages (see :meth:`message`)."""
        draw, dumps = self._draw, orjson.dumps
        for _ in range(n):
            event = draw()
            yield event["user"]["user_id"].encode(), dumps(event)

    def _event_time(self) -> str:
        """Format the clock minus a recent (or, sometimes, late) offset, ms precision."""
        now = self._now()
        if now.tzinfo is not None:
            now = now.astimezone(UTC).replace(tzinfo=None)
        now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        rng = self._rng
        if rng.random() < self.config.late_fraction:
            offset_ms = rng.randint(_LATE_MIN_MS, self._late_max_ms)
        else:
            offset_ms = rng.randrange(_RECENT_MAX_MS)
        stamp = now - timedelta(milliseconds=offset_ms)
        return stamp.isoformat(timespec="milliseconds") + "Z"

    def _draw(self) -> dict[str, Any]:
        """Draw one event; nested dicts are shared with the reference tables."""
        rng = self._rng
        rand = rng.random
        user_index = self._user_picker.pick(rand)
        user = self._users[user_index]
        product, product_dict = self._product_picker.pick(rand)
        if rand() < _PREFERRED_METHOD_SHARE:
            method_index = user.preferred_method
        else:
            method_index = self._method_picker.pick(rand)
        method = self._methods[method_index]
        tx_type = self._type_picker.pick(rand)
        status = self._status_picker.pick(rand) if method.is_active else "failed"
        quantity = 1 if tx_type in _SINGLE_UNIT_TYPES else self._quantity_picker.pick(rand)
        currency = user.currency if rand() < _HOME_CURRENCY_SHARE else rng.choice(CURRENCIES)
        amount = round(
            product.unit_price * quantity / USD_RATES[currency], _CURRENCY_DECIMALS.get(currency, 2)
        )
        primary = rand() < _PRIMARY_DEVICE_SHARE
        return {
            "transaction_id": _uuid4(rng.getrandbits(128)),
            "event_time": self._event_time(),
            "transaction_type": tx_type,
            "status": status,
            "amount": amount,
            "currency": currency,
            "quantity": quantity,
            "user": self._user_dicts[user_index],
            "payment_method": self._method_dicts[method_index],
            "product": product_dict,
            "device": {
                "ip_address": user.ip_addresses[0] if primary else rng.choice(user.ip_addresses),
                "user_agent": user.user_agent if primary else rng.choice(_USER_AGENTS),
            },
            "card_last4": user.card_last4 if method.category == "card" else None,
        }
