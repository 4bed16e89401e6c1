"""The OpenWeather client against a local replay server (the real API is not reachable here).

The server answers in OpenWeather's documented formats: the current-weather
document for 200, and ``{"cod": ..., "message": ...}`` bodies for 401, 404
and 429, plus a 503 from the gateway and a slow answer for timeouts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import SecretStr

from lakestream.retry import HTTP_API
from lakestream.sources.openweather import (
    OpenWeatherCityNotFound,
    OpenWeatherClient,
    OpenWeatherError,
    OpenWeatherUnavailableError,
    weather_record,
)

KEY = "replay-secret-key-0123456789abcdef"

PARIS: dict[str, Any] = {  # https://openweathermap.org/current#example_JSON (units=metric)
    "coord": {"lon": 2.3488, "lat": 48.8534},
    "weather": [{"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"}],
    "base": "stations",
    "main": {"temp": 12.53, "feels_like": 11.41, "temp_min": 11.09, "temp_max": 13.92,
             "pressure": 1015, "humidity": 72, "sea_level": 1015, "grnd_level": 1005},
    "visibility": 10000,
    "wind": {"speed": 3.6, "deg": 220, "gust": 5.1},
    "clouds": {"all": 0},
    "dt": 1736942400,
    "sys": {"type": 2, "id": 2041230, "country": "FR", "sunrise": 1736926200,
            "sunset": 1736957500},
    "timezone": 3600, "id": 2988507, "name": "Paris", "cod": 200,
}  # fmt: skip
ERRORS = {
    401: {"cod": 401, "message": "Invalid API key. Please see "
          "https://openweathermap.org/faq#error401 for more info."},
    404: {"cod": "404", "message": "city not found"},
    429: {"cod": 429, "message": "Your account is temporary blocked due to exceeding of "
          "requests limitation of your subscription type."},
}


class Replay:
    """A scripted OpenWeather: a queue of (status, body, delay[, headers]) answers, then
    200 PARIS."""

    def __init__(self) -> None:
        self.script: list[tuple[Any, ...]] = []
        self.requests: list[dict[str, list[str]]] = []


@pytest.fixture
def replay() -> Iterator[tuple[Replay, str]]:
    state = Replay()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(parse_qs(urlparse(self.path).query))
            status, body, delay, *more = state.script.pop(0) if state.script else (
                200, PARIS, 0.0)
            time.sleep(delay)
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (more[0] if more else {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/data/2.5/weather"
    finally:
        server.shutdown()
        server.server_close()


def client(url: str, waits: list[float] | None = None, timeout_s: float = 2.0) -> OpenWeatherClient:
    sleep = waits.append if waits is not None else (lambda _s: None)
    policy = replace(HTTP_API, base_delay_s=0.5, max_delay_s=8, jitter_s=0)  # exact waits
    return OpenWeatherClient(SecretStr(KEY), url, timeout_s=timeout_s, retries=3,
                             policy=policy, sleep=sleep)


def test_openweather_replay_server_returns_the_document_with_metric_units(replay: Any) -> None:
    state, url = replay
    with client(url) as api:
        doc = api.current("New York")
    assert doc == PARIS
    assert state.requests == [{"q": ["New York"], "units": ["metric"], "appid": [KEY]}]
    record = weather_record(doc, "Paris", dt.datetime(2025, 1, 15, 12, 0, 1, 234567, dt.UTC))
    assert record["city"] == "Paris" and record["fetched_at"] == "2025-01-15T12:00:01.234Z"
    assert record["main"] == PARIS["main"]


def test_openweather_replay_server_retries_5xx_and_timeouts_with_backoff(replay: Any) -> None:
    state, url = replay
    state.script = [(503, b"<html>Service Unavailable</html>", 0.0), (200, PARIS, 1.5),
                    (502, {"cod": 502, "message": "bad gateway"}, 0.0)]
    waits: list[float] = []
    with client(url, waits, timeout_s=0.5) as api:
        assert api.current("Paris")["name"] == "Paris"
    assert len(state.requests) == 4
    assert waits == [0.5, 1.0, 2.0]  # doubled each retry


def test_openweather_replay_server_gives_up_after_three_retries(replay: Any) -> None:
    state, url = replay
    state.script = [(500, {"cod": 500, "message": "internal error"}, 0.0)] * 4
    with client(url) as api, pytest.raises(OpenWeatherUnavailableError) as caught:
        api.current("Paris")
    assert len(state.requests) == 4
    assert "after 3 retries" in str(caught.value) and "internal error" in str(caught.value)


def test_openweather_replay_server_401_says_check_the_key_without_retrying(replay: Any,
                                                                           caplog: Any) -> None:
    state, url = replay
    state.script = [(401, ERRORS[401], 0.0)]
    caplog.set_level(logging.DEBUG)
    with client(url) as api, pytest.raises(OpenWeatherError) as caught:
        api.current("Paris")
    assert len(state.requests) == 1
    assert "401" in str(caught.value) and "OPENWEATHER_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in caplog.text
    assert "appid=***" in caplog.text  # httpx's request line, redacted


def test_openweather_replay_server_404_names_the_city(replay: Any) -> None:
    state, url = replay
    state.script = [(404, ERRORS[404], 0.0)]
    with client(url) as api, pytest.raises(OpenWeatherCityNotFound) as caught:
        api.current("Atlantis")
    assert len(state.requests) == 1
    assert "'Atlantis'" in caught.value.message and "city not found" in caught.value.message


def test_openweather_replay_server_429_honours_retry_after_then_explains(replay: Any) -> None:
    state, url = replay
    state.script = [(429, ERRORS[429], 0.0)] * 4
    waits: list[float] = []
    with client(url, waits) as api, pytest.raises(OpenWeatherUnavailableError) as caught:
        api.current("Paris")
    assert "rate limit" in caught.value.message and "60 calls a minute" in str(caught.value)
    assert len(waits) == 3


def test_openweather_replay_server_retry_after_sets_the_wait_capped(replay: Any) -> None:
    state, url = replay
    state.script = [(429, ERRORS[429], 0.0, {"Retry-After": "7"}),
                    (503, b"busy", 0.0, {"Retry-After": "120"})]
    waits: list[float] = []
    with client(url, waits) as api:
        assert api.current("Paris")["name"] == "Paris"
    assert waits == [7.0, 8.0]  # what the API asked for, capped at the policy's 8 s


def test_openweather_errors_name_the_endpoint_never_the_key(replay: Any) -> None:
    state, url = replay
    state.script = [(500, {"cod": 500, "message": "internal error"}, 0.0)] * 4
    with client(url) as api, pytest.raises(OpenWeatherUnavailableError) as caught:
        api.current("Paris")
    assert caught.value.url == url and url in caught.value.message
    assert KEY not in str(caught.value) and KEY not in (caught.value.url or "")


def test_openweather_replay_server_non_document_answer_is_a_clear_error(replay: Any) -> None:
    state, url = replay
    state.script = [(200, {"cod": 200, "list": []}, 0.0)]
    with client(url) as api, pytest.raises(OpenWeatherError, match="not a current-weather"):
        api.current("Paris")


def test_unreachable_server_is_retried_then_reported_without_the_key() -> None:
    waits: list[float] = []
    with client("http://127.0.0.1:9/data/2.5/weather", waits) as api, \
            pytest.raises(OpenWeatherUnavailableError) as caught:
        api.current("Paris")
    assert len(waits) == 3 and KEY not in str(caught.value)
