"""The simulated weather source: OpenWeather's document shape, plausible and imperfect values."""

from __future__ import annotations

import datetime as dt
import statistics

from lakestream.sources.weather_sim import CLIMATES, SimulatedWeather
from tests.sources.test_openweather import PARIS

DAY = dt.datetime(2025, 7, 15, tzinfo=dt.UTC)


def test_documents_have_the_openweather_shape_and_types() -> None:
    doc = SimulatedWeather(seed=1, missing_rate=0, bad_rate=0).current("Paris", DAY)
    assert set(doc) >= set(PARIS)
    assert set(doc["main"]) == set(PARIS["main"])
    assert set(doc["sys"]) == set(PARIS["sys"])
    assert set(doc["weather"][0]) == set(PARIS["weather"][0])
    assert doc["name"] == "Paris" and doc["sys"]["country"] == "FR" and doc["cod"] == 200
    assert isinstance(doc["dt"], int) and doc["dt"] % 600 == 0  # 10-minute observations
    assert isinstance(doc["main"]["humidity"], int) and 5 <= doc["main"]["humidity"] <= 100


def test_same_seed_same_weather_and_unknown_cities_get_a_stable_climate() -> None:
    first = [SimulatedWeather(seed=7).current(c, DAY) for c in ("Tokyo", "Reykjavik")]
    again = [SimulatedWeather(seed=7).current(c, DAY) for c in ("Tokyo", "Reykjavik")]
    assert first == again
    assert first[1]["coord"] == again[1]["coord"] and first[1]["name"] == "Reykjavik"


def test_afternoons_are_warmer_than_nights_and_seasons_flip_south() -> None:
    sim = SimulatedWeather(seed=3, missing_rate=0, bad_rate=0)
    paris_tz = CLIMATES["Paris"].tz_s

    def mean_temp(city: str, day: dt.datetime, local_hour: int) -> float:
        at = day.replace(hour=(local_hour - paris_tz // 3600) % 24)
        return statistics.mean(sim.current(city, at)["main"]["temp"] for _ in range(60))

    assert mean_temp("Paris", DAY, 15) > mean_temp("Paris", DAY, 4) + 5
    january = DAY.replace(month=1)
    assert mean_temp("Paris", DAY, 12) > mean_temp("Paris", january, 12) + 8
    assert mean_temp("Sydney", january, 12) > mean_temp("Sydney", DAY, 12) + 4


def test_some_records_lack_optional_fields_and_rare_ones_are_bad() -> None:
    sim = SimulatedWeather(seed=11, missing_rate=0.05, bad_rate=0.01)
    docs = [sim.current("London", DAY + dt.timedelta(hours=h)) for h in range(3000)]
    incomplete = [d for d in docs if "humidity" not in d["main"] or "visibility" not in d
                  or "clouds" not in d or "weather" not in d or "speed" not in d["wind"]
                  or "deg" not in d["wind"] or "pressure" not in d["main"]
                  or "feels_like" not in d["main"]]
    bad = [d for d in docs if "temp" not in d["main"] or d["main"]["temp"] > 60
           or d["main"].get("humidity", 0) > 100]
    assert 60 <= len(incomplete) <= 300
    assert 10 <= len(bad) <= 60
    good = [d["main"]["temp"] for d in docs if d not in bad]
    assert all(-30 < t < 40 for t in good)
