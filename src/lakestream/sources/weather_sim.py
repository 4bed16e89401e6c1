"""A simulated weather source: OpenWeather's "current weather" JSON, without a key.

The same document shape as the API (``units=metric``), with plausible values:
a seasonal and a diurnal temperature cycle per city (warmest mid-afternoon
local time, seasons reversed south of the equator), humidity that falls as it
warms, wind, clouds and occasional rain. Like real feeds it is imperfect: a
few records lack an optional field, and rare ones carry a bad value (an
impossible temperature or humidity, or no temperature at all), which the
silver layer must drop.

Observation times (``dt``) move in 10-minute steps, as OpenWeather's do, so
two fetches within ten minutes report the same observation (the silver layer
deduplicates them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

OBSERVATION_STEP_S = 600


@dataclass(frozen=True)
class Climate:
    """What a city's weather looks like on average."""

    country: str
    lat: float
    lon: float
    city_id: int
    tz_s: int
    mean_c: float
    seasonal_c: float
    diurnal_c: float
    humidity: float
    rain_chance: float


CLIMATES: dict[str, Climate] = {
    "Paris": Climate("FR", 48.8534, 2.3488, 2988507, 3600, 12.5, 7.5, 4.5, 75, 0.12),
    "London": Climate("GB", 51.5085, -0.1257, 2643743, 0, 11.5, 6.5, 4.0, 78, 0.15),
    "New York": Climate("US", 40.7143, -74.006, 5128581, -18000, 13.0, 11.0, 5.0, 65, 0.10),
    "Tokyo": Climate("JP", 35.6895, 139.6917, 1850147, 32400, 16.0, 9.5, 4.5, 68, 0.12),
    "Sydney": Climate("AU", -33.8679, 151.2073, 2147714, 36000, 18.5, 5.0, 4.0, 70, 0.09),
}

# (object, field) pairs a record may lack; None as field = the whole top-level entry
OPTIONAL_FIELDS: tuple[tuple[str, str | None], ...] = (
    ("main", "feels_like"), ("main", "humidity"), ("main", "pressure"), ("wind", "speed"),
    ("wind", "deg"), ("clouds", None), ("visibility", None), ("weather", None),
)  # fmt: skip

_SKIES = ((84, 804, "Clouds", "overcast clouds"), (50, 803, "Clouds", "broken clouds"),
          (25, 802, "Clouds", "scattered clouds"), (10, 801, "Clouds", "few clouds"),
          (-1, 800, "Clear", "clear sky"))  # fmt: skip


def climate_of(city: str) -> Climate:
    """The climate of a known city, or a stable made-up one for any other name."""
    if city in CLIMATES:
        return CLIMATES[city]
    digest = hashlib.sha256(city.encode()).digest()
    lat = digest[0] / 255 * 120 - 60
    lon = digest[1] / 255 * 360 - 180
    return Climate("ZZ", round(lat, 4), round(lon, 4), int.from_bytes(digest[2:5], "big"),
                   round(lon / 15) * 3600, 25 - abs(lat) * 0.3, 2 + abs(lat) / 6,
                   3 + digest[5] / 255 * 3, 55 + digest[6] / 255 * 30, 0.1)


class SimulatedWeather:
    """Current weather for any city, in the OpenWeather response format.

    Args:
        seed: Seed for reproducible values.
        missing_rate: Share of records that lack one optional field.
        bad_rate: Share of records with a bad value (dropped by silver).
    """

    def __init__(self, seed: int | None = None, missing_rate: float = 0.03,
                 bad_rate: float = 0.004) -> None:
        self.rng = random.Random(seed)
        self.missing_rate = missing_rate
        self.bad_rate = bad_rate

    def current(self, city: str, at: dt.datetime | None = None) -> dict[str, Any]:
        """The document OpenWeather would return for ``city`` at ``at`` (default: now)."""
        moment = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        observed = int(moment.timestamp()) // OBSERVATION_STEP_S * OBSERVATION_STEP_S
        doc = self._document(city, climate_of(city), observed)
        if self.rng.random() < self.missing_rate:
            _drop(doc, self.rng.choice(OPTIONAL_FIELDS))
        if self.rng.random() < self.bad_rate:
            self._spoil(doc)
        return doc

    def _document(self, city: str, c: Climate, observed: int) -> dict[str, Any]:
        rng = self.rng
        local = dt.datetime.fromtimestamp(observed + c.tz_s, dt.UTC)
        temp, diurnal = self._temperature(c, local)
        raining = rng.random() < c.rain_chance
        clouds = rng.randint(60, 100) if raining else rng.randint(0, 100)
        wind = round(abs(rng.gauss(3.5, 2.0)), 2)
        humidity = min(100, max(5, round(c.humidity - 2.5 * diurnal + rng.gauss(0, 5))))
        doc: dict[str, Any] = {
            "coord": {"lon": c.lon, "lat": c.lat},
            "weather": [_sky(clouds, raining, 6 <= local.hour < 19)],
            "base": "stations",
            "main": {
                "temp": temp, "feels_like": round(temp - 0.3 * wind, 2),
                "temp_min": round(temp - rng.uniform(0, 1.5), 2),
                "temp_max": round(temp + rng.uniform(0, 1.5), 2),
                "pressure": round(rng.gauss(1013, 7)), "humidity": humidity,
                "sea_level": round(rng.gauss(1013, 7)), "grnd_level": round(rng.gauss(1003, 7)),
            },
            "visibility": rng.randint(4000, 9000) if raining else 10000,
            "wind": {"speed": wind, "deg": rng.randint(0, 359)},
            "clouds": {"all": clouds},
            "dt": observed,
            "sys": {"type": 2, "id": c.city_id % 100000, "country": c.country,
                    "sunrise": _local_epoch(local, c.tz_s, 6, 30),
                    "sunset": _local_epoch(local, c.tz_s, 19, 0)},
            "timezone": c.tz_s, "id": c.city_id, "name": city, "cod": 200,
        }  # fmt: skip
        if wind > 6:
            doc["wind"]["gust"] = round(wind * 1.4, 2)
        if raining:
            doc["rain"] = {"1h": round(rng.expovariate(1 / 1.2), 2)}
        return doc

    def _temperature(self, c: Climate, local: dt.datetime) -> tuple[float, float]:
        """Temperature (°C, 2 decimals) and its diurnal component."""
        day_of_year = local.timetuple().tm_yday
        season = math.cos(2 * math.pi * (day_of_year - 200) / 365.25) * (1 if c.lat >= 0 else -1)
        hour = local.hour + local.minute / 60
        diurnal = c.diurnal_c * math.cos(2 * math.pi * (hour - 15) / 24)
        temp = c.mean_c + c.seasonal_c * season + diurnal + self.rng.gauss(0, 1.0)
        return round(temp, 2), diurnal

    def _spoil(self, doc: dict[str, Any]) -> None:
        kind = self.rng.randrange(3)
        if kind == 0:
            doc["main"]["temp"] = round(self.rng.uniform(61, 90), 2)
        elif kind == 1:
            doc["main"]["humidity"] = self.rng.randint(101, 140)
        else:
            doc["main"].pop("temp", None)


def _sky(clouds: int, raining: bool, day: bool) -> dict[str, Any]:
    suffix = "d" if day else "n"
    if raining:
        return {"id": 500, "main": "Rain", "description": "light rain", "icon": f"10{suffix}"}
    for floor, code, main, description in _SKIES:
        if clouds > floor:
            icon = {800: "01", 801: "02", 802: "03"}.get(code, "04")
            return {"id": code, "main": main, "description": description,
                    "icon": f"{icon}{suffix}"}
    raise AssertionError("unreachable")  # pragma: no cover


def _local_epoch(local: dt.datetime, tz_s: int, hour: int, minute: int) -> int:
    at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return int(at.timestamp()) - tz_s


def _drop(doc: dict[str, Any], path: tuple[str, str | None]) -> None:
    top, field = path
    if field is None:
        doc.pop(top, None)
    elif isinstance(doc.get(top), dict):
        doc[top].pop(field, None)
