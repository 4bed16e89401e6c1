"""Secrets stay secret: know their values, keep them out of logs, find them where they leaked.

Secrets (S3 keys, the anonymization key, the OpenWeather key, librdkafka
passwords, database passwords) come only from the environment or ``.env``;
``lakestream.config`` refuses a config file that holds one. This module adds
the runtime side:

- :func:`secret_values` lists the configured secret values;
- :func:`install_log_redaction` puts a filter on the root logger's handlers
  that replaces them with ``***`` in every log line, whoever logged it;
- :func:`find_secrets` scans text or files for them (tests, ``doctor``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from lakestream.config import SECRET_KEYS, Settings, value_at

MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words


def secret_values(settings: Settings) -> list[str]:
    """Every secret value the configuration holds (longest first)."""
    secrets = [value_at(settings, key) for key in SECRET_KEYS]
    values = [s.get_secret_value() for s in secrets if s is not None]
    for url in (settings.warehouse_url, settings.gold_url, settings.ksqldb_url):
        password = url_password(url)
        if password:
            values += [password, unquote(password)]
    values += [value.get_secret_value() for value in settings.kafka.client_config.values()
               if isinstance(value, SecretStr)]
    return sorted({v for v in values if len(v) >= _MIN_LENGTH}, key=len, reverse=True)


def url_password(url: str | None) -> str | None:
    """The password part of ``scheme://user:password@host/...`` (``None`` when absent)."""
    if not url or "://" not in url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for value in values:
        if value and value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks secret values in log records (message, arguments and exception text)."""

    def __init__(self, values: Iterable[str]) -> None:
        super().__init__("lakestream.secrets")
        self.values = list(values)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with the secrets masked; always let it through."""
        if not self.values:
            return True
        message = record.getMessage()
        masked = redact(message, self.values)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text, self.values) != text:
                record.exc_text = redact(text, self.values)
                record.exc_info = None
        return True


def install_log_redaction(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Mask this configuration's secrets on every handler of ``logger`` (default: root).

    Idempotent: a handler gets one filter, whose values are replaced on later calls.
    """
    values = secret_values(settings)
    for handler in (logger or logging.getLogger()).handlers:
        current = next((f for f in handler.filters if isinstance(f, RedactingFilter)), None)
        if current is None:
            handler.addFilter(RedactingFilter(values))
        else:
            current.values = sorted({*current.values, *values}, key=len, reverse=True)


@dataclass(frozen=True)
class Leak:
    """A secret value found where it must not be."""

    where: str
    secret_index: int


def find_secrets(texts: dict[str, str | bytes], values: Iterable[str]) -> list[Leak]:
    """Where any of ``values`` occurs in ``texts`` (name → content); the values are not repeated."""
    found: list[Leak] = []
    for index, value in enumerate(values):
        needle = value.encode()
        for where, content in texts.items():
            haystack = content if isinstance(content, bytes) else content.encode()
            if needle in haystack:
                found.append(Leak(where, index))
    return found


def files_below(folder: Path) -> dict[str, bytes]:
    """Every regular file below ``folder``, by path (for :func:`find_secrets`)."""
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
