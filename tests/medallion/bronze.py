"""Hand-written bronze: weather records landed through the real ingest sink (no broker):
``bronze/weather`` is the Delta table ``ingest`` commits to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson

from lakestream.feeds import BUILTIN_FEEDS
from lakestream.ingest.delta_sink import DeltaLakeSink
from lakestream.lake.storage import Storage
from lakestream.sources.openweather import iso_ms

WEATHER_FEED = next(f for f in BUILTIN_FEEDS if f.name == "weather")


def record(city: str | None, at: dt.datetime, temp: float | None = 12.5,
           humidity: float | None = 70, fetched: dt.datetime | None = None,
           drop: Sequence[str] = (), **main: Any) -> dict[str, Any]:
    """A current-weather document as OpenWeather sends it, plus city and fetched_at."""
    doc: dict[str, Any] = {
        "coord": {"lon": 2.35, "lat": 48.85},
        "weather": [{"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"}],
        "base": "stations",
        "main": {"temp": temp, "feels_like": (temp or 0) - 1, "temp_min": (temp or 0) - 2,
                 "temp_max": (temp or 0) + 2, "pressure": 1012, "humidity": humidity, **main},
        "visibility": 10000,
        "wind": {"speed": 3.6, "deg": 220},
        "clouds": {"all": 0},
        "dt": int(at.timestamp()),
        "sys": {"type": 2, "id": 2041230, "country": "FR"},
        "timezone": 3600, "id": 2988507, "name": city, "cod": 200,
        "fetched_at": iso_ms(fetched or at),
    }
    if city is not None:
        doc["city"] = city
    for path in drop:
        top, _, leaf = path.partition(".")
        if leaf:
            doc[top].pop(leaf, None)
        else:
            doc.pop(top, None)
    for key in ("temp", "humidity"):
        if doc["main"].get(key, 0) is None:
            doc["main"].pop(key)
    return doc


class BronzeWriter:
    """Lands records in ``bronze/weather`` exactly as ``ingest`` does, one Kafka partition."""

    def __init__(self, storage: Storage, partition: int = 0) -> None:
        self.sink = DeltaLakeSink(storage, WEATHER_FEED)
        self.partition = partition
        self.next = self.sink.recover("weather-data", partition) or 0

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        """One committed batch."""
        values = [orjson.dumps(r) for r in records]
        keys = [str(r.get("city")).encode() for r in records]
        offsets = list(range(self.next, self.next + len(records)))
        stamps = [int(dt.datetime.now(dt.UTC).timestamp() * 1000)] * len(records)
        self.sink.write("weather-data", self.partition, values, keys, offsets, stamps)
        self.next += len(records)
