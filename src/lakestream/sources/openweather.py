"""The OpenWeather "current weather" API client (docs/weather.md).

One GET per city (``q=<city>&units=metric&appid=<key>``), with a timeout and
up to ``retries`` retries on the :data:`~lakestream.retry.HTTP_API` policy
(exponential backoff with jitter; a ``Retry-After`` the API sends wins) on what
waiting can fix (timeouts, connection failures, 429, 5xx). Errors are one line
that says what to do: 401 (the key), 404 (the city), 429 (the plan's rate
limit); they name the endpoint's URL (``url``), which never holds the key.

The API key is a query parameter, so it is redacted from everything this
module can let out: error messages and httpx's request log lines.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
from pydantic import SecretStr

from lakestream.errors import HttpSourceError, TerminalError, TransientError
from lakestream.retry import HTTP_API, RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.openweathermap.org/data/2.5/weather"
_KEY_PARAM = re.compile(r"(appid=)[^&\s\"']+", re.IGNORECASE)


class OpenWeatherError(HttpSourceError, TerminalError):
    """OpenWeather refused the request for a reason retrying cannot fix (key, city)."""


class OpenWeatherCityNotFound(OpenWeatherError):
    """OpenWeather does not know the city (HTTP 404)."""


class OpenWeatherUnavailableError(HttpSourceError, TransientError):
    """OpenWeather could not be reached, timed out, or rate-limited us (after every retry).

    Attributes:
        reason: What the last try met ("timed out", "HTTP 503: ...").
        retry_after_s: The wait the API asked for (``Retry-After``), if any.
    """

    def __init__(self, message: str, hint: str | None = None, *, reason: str = "",
                 retry_after_s: float | None = None, url: object | None = None) -> None:
        super().__init__(message, hint, url=url)
        self.reason = reason or message
        self.retry_after_s = retry_after_s


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


class OpenWeatherClient:
    """Fetches current weather for one city at a time.

    Args:
        api_key: The OpenWeather API key (``OPENWEATHER_API_KEY``).
        url: The current-weather endpoint.
        timeout_s: Timeout of one request (connect, read, write, pool).
        retries: Retries after a failed try (3 = up to four tries; ``weather.retries``).
        policy: Waits between tries (:data:`~lakestream.retry.HTTP_API`); its
            ``attempts`` is replaced by ``retries + 1``.
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
        policy: RetryPolicy = HTTP_API,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key.get_secret_value():
            raise OpenWeatherError(
                "OPENWEATHER_API_KEY is empty", "set it, or use --source simulated"
            )
        self._key = api_key
        self.url = url
        self.retries = retries
        self.policy = replace(policy, attempts=retries + 1)
        self._sleep = sleep
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

        def once() -> dict[str, Any]:
            try:
                response = self._http.get(self.url, params=params)
            except httpx.TimeoutException:
                raise self._unavailable(city, "timed out") from None
            except httpx.TransportError as exc:
                reason = f"cannot connect: {redact(str(exc)) or type(exc).__name__}"
                raise self._unavailable(city, reason) from None
            return self._outcome(response, city)

        try:
            return self.policy.call(once, f"OpenWeather for {city}", logger=log,
                                    sleep=self._sleep)
        except OpenWeatherUnavailableError as exc:
            raise _exhausted(city, exc.reason, self.retries, self.url) from None

    def _unavailable(self, city: str, reason: str,
                     retry_after_s: float | None = None) -> OpenWeatherUnavailableError:
        return OpenWeatherUnavailableError(f"OpenWeather {reason} for '{city}'", reason=reason,
                                           retry_after_s=retry_after_s, url=self.url)

    def _outcome(self, response: httpx.Response, city: str) -> dict[str, Any]:
        """The payload, or raise: transient for 429 and 5xx, terminal for the rest."""
        status = response.status_code
        if status == 200:
            return _payload(response, city, self.url)
        if status == 429 or status >= 500:
            asked = (response.headers.get("Retry-After") or "").strip()
            raise self._unavailable(city, f"HTTP {status}: {_message(response)}",
                                    float(asked) if asked.isdigit() else None)
        message = _message(response)
        if status == 401:
            raise OpenWeatherError(
                f"OpenWeather refused the API key (401: {message})",
                "check OPENWEATHER_API_KEY; a new key takes up to 2 hours to activate",
                url=self.url,
            )
        if status == 404:
            raise OpenWeatherCityNotFound(
                f"OpenWeather does not know the city '{city}' (404: {message})",
                "check the name in --cities or weather.cities (e.g. 'New York')",
                url=self.url,
            )
        raise OpenWeatherError(f"OpenWeather refused the request for '{city}' "
                               f"(HTTP {status}: {message})", url=self.url)


def _payload(response: httpx.Response, city: str, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("main"), dict):
        raise OpenWeatherError(
            f"OpenWeather answered for '{city}' with something that is not a current-weather "
            f"document: {redact(response.text[:120])!r}",
            "is weather.api_url the /data/2.5/weather endpoint?",
            url=url,
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


def _exhausted(city: str, last: str, retries: int, url: str) -> OpenWeatherUnavailableError:
    if last.startswith("HTTP 429"):
        return OpenWeatherUnavailableError(
            f"OpenWeather rate limit reached for '{city}' after {retries} retries ({last})",
            "fetch fewer cities or less often; the free plan allows 60 calls a minute",
            reason=last, url=url,
        )
    return OpenWeatherUnavailableError(
        f"OpenWeather unavailable for '{city}' after {retries} retries ({last})",
        "check the network and weather.api_url; the next run tries again",
        reason=last, url=url,
    )


def iso_ms(moment: dt.datetime) -> str:
    """``moment`` as ISO-8601 UTC with milliseconds and ``Z`` (what the lake parses)."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def weather_record(payload: dict[str, Any], city: str, fetched_at: dt.datetime) -> dict[str, Any]:
    """The Kafka value (docs/weather.md): the API's JSON plus ``city`` and ``fetched_at``."""
    return {**payload, "city": city, "fetched_at": iso_ms(fetched_at)}
