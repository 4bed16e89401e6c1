"""The OpenWeather "current weather" API client (docs/weather.md).

One GET per city (``q=<city>&units=metric&appid=<key>``), with a timeout and
up to ``retries`` retries with exponential backoff on what waiting can fix
(timeouts, connection failures, 429, 5xx). Errors are one line that says what
to do: 401 (the key), 404 (the city), 429 (the plan's rate limit).

The API key is a query parameter, so it is redacted from everything this
module can let out: error messages and httpx's request log lines.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from lakestream.errors import TerminalError, TransientError

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.openweathermap.org/data/2.5/weather"
_KEY_PARAM = re.compile(r"(appid=)[^&\s\"']+", re.IGNORECASE)


class OpenWeatherError(TerminalError):
    """OpenWeather refused the request for a reason retrying cannot fix (key, city)."""


class OpenWeatherCityNotFound(OpenWeatherError):
    """OpenWeather does not know the city (HTTP 404)."""


class OpenWeatherUnavailableError(TransientError):
    """OpenWeather could not be reached, timed out, or rate-limited us after every retry."""


def redact(text: str) -> str:
    """``text`` with any ``appid=...`` value replaced by ``***``."""
    return _KEY_PARAM.sub(r"\1***", text)


class _RedactKeyFilter(logging.Filter):
    """Rewrites httpx's log records so that the API key never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(str(a)) if _has_key(a) else a for a in args)
        record.msg = redact(str(record.msg))
        return True


def _has_key(value: object) -> bool:
    return isinstance(value, str | httpx.URL) and "appid=" in str(value).lower()


for _name in ("httpx", "httpcore"):
    if not any(isinstance(f, _RedactKeyFilter) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_RedactKeyFilter())


@dataclass(frozen=True)
class Backoff:
    """Waits between tries: ``base_s``, then doubled, capped at ``max_s``."""

    base_s: float = 1.0
    max_s: float = 30.0

    def delay(self, retry: int, retry_after: str | None = None) -> float:
        """Seconds before retry number ``retry`` (1-based); a Retry-After header wins."""
        if retry_after is not None and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_s)
        return float(min(self.max_s, self.base_s * 2 ** (retry - 1)))


class OpenWeatherClient:
    """Fetches current weather for one city at a time.

    Args:
        api_key: The OpenWeather API key (``OPENWEATHER_API_KEY``).
        url: The current-weather endpoint.
        timeout_s: Timeout of one request (connect, read, write, pool).
        retries: Retries after a failed try (3 = up to four tries).
        backoff: Waits between tries.
        sleep: How to wait (tests pass a recorder).

    Example:
        >>> with OpenWeatherClient(SecretStr(key)) as client:  # doctest: +SKIP
        ...     client.current("Paris")["main"]["temp"]
    """

    def __init__(
        self,
        api_key: SecretStr,
        url: str = DEFAULT_URL,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key.get_secret_value():
            raise OpenWeatherError(
                "OPENWEATHER_API_KEY is empty", "set it, or use --source simulated"
            )
        self._key = api_key
        self.url = url
        self.retries = retries
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._retry_after: str | None = None
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True)

    def __enter__(self) -> OpenWeatherClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def current(self, city: str) -> dict[str, Any]:
        """The API's JSON for ``city``, as documented (``units=metric``).

        Raises:
            OpenWeatherError: 401 (bad key) or another refusal.
            OpenWeatherCityNotFound: 404 (unknown city).
            OpenWeatherUnavailableError: Still failing after every retry.
        """
        params = {"q": city, "units": "metric", "appid": self._key.get_secret_value()}
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff.delay(attempt, self._retry_after))
            self._retry_after = None
            try:
                response = self._http.get(self.url, params=params)
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.TransportError as exc:
                last = f"cannot connect: {redact(str(exc)) or type(exc).__name__}"
            else:
                outcome = self._outcome(response, city)
                if outcome is not None:
                    return outcome
                last = f"HTTP {response.status_code}: {_message(response)}"
            log.warning("OpenWeather %s for %s (try %d of %d)", last, city, attempt + 1,
                        self.retries + 1)
        raise _exhausted(city, last, self.retries)

    def _outcome(self, response: httpx.Response, city: str) -> dict[str, Any] | None:
        """The payload, ``None`` to retry, or raise for what retrying cannot fix."""
        status = response.status_code
        if status == 200:
            return _payload(response, city)
        if status == 429 or status >= 500:
            self._retry_after = response.headers.get("Retry-After")
            return None
        message = _message(response)
        if status == 401:
            raise OpenWeatherError(
                f"OpenWeather refused the API key (401: {message})",
                "check OPENWEATHER_API_KEY; a new key takes up to 2 hours to activate",
            )
        if status == 404:
            raise OpenWeatherCityNotFound(
                f"OpenWeather does not know the city '{city}' (404: {message})",
                "check the name in --cities or weather.cities (e.g. 'New York')",
            )
        raise OpenWeatherError(f"OpenWeather refused the request for '{city}' "
                               f"(HTTP {status}: {message})")


def _payload(response: httpx.Response, city: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("main"), dict):
        raise OpenWeatherError(
            f"OpenWeather answered for '{city}' with something that is not a current-weather "
            f"document: {redact(response.text[:120])!r}",
            "is weather.api_url the /data/2.5/weather endpoint?",
        )
    return data


def _message(response: httpx.Response) -> str:
    """The ``message`` of an OpenWeather error body (``{"cod": 401, "message": ...}``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return redact(str(body["message"]))
    return redact(response.reason_phrase or response.text[:80] or "no message")


def _exhausted(city: str, last: str, retries: int) -> OpenWeatherUnavailableError:
    if last.startswith("HTTP 429"):
        return OpenWeatherUnavailableError(
            f"OpenWeather rate limit reached for '{city}' after {retries} retries ({last})",
            "fetch fewer cities or less often; the free plan allows 60 calls a minute",
        )
    return OpenWeatherUnavailableError(
        f"OpenWeather unavailable for '{city}' after {retries} retries ({last})",
        "check the network and weather.api_url; the next run tries again",
    )


def iso_ms(moment: dt.datetime) -> str:
    """``moment`` as ISO-8601 UTC with milliseconds and ``Z`` (what the lake parses)."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def weather_record(payload: dict[str, Any], city: str, fetched_at: dt.datetime) -> dict[str, Any]:
    """The Kafka value (docs/weather.md): the API's JSON plus ``city`` and ``fetched_at``."""
    return {**payload, "city": city, "fetched_at": iso_ms(fetched_at)}
