"""Database URLs from the settings: one rule for ``warehouse_url``, ``gold_url`` and ``state_url``.

A URL without a driver gets the one Lakestream ships with (``mysql://`` and
``mariadb://`` → PyMySQL, ``postgresql://`` → psycopg 3); a database Lakestream
has no driver for, or text that is not a URL, is a configuration error naming
the setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakestream.errors import ConfigError

if TYPE_CHECKING:
    import sqlalchemy as sa

DRIVERS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "sqlite": "sqlite",
}
"""The driver of each database Lakestream supports, for URLs that name none."""


def database_url(key: str, raw: str, example: str) -> sa.URL:
    """``raw``, the value of the setting ``key``, as an SQLAlchemy URL with a driver.

    Args:
        key: The setting's name, for the messages (``warehouse_url``).
        raw: Its value.
        example: A URL to show in the hint when ``raw`` is not one.

    Raises:
        ConfigError: ``raw`` is not a URL, or names a database Lakestream has no driver for.
    """
    import sqlalchemy as sa

    try:
        url = sa.make_url(raw)
    except sa.exc.ArgumentError:
        raise ConfigError(f"{key} '{raw}' is not a database URL", f"use e.g. {example}") from None
    backend = url.get_backend_name()
    if backend not in DRIVERS:
        raise ConfigError(f"{key}: unsupported database '{backend}'",
                          "use postgresql://, mysql://, mariadb:// or sqlite:///")
    return url if "+" in url.drivername else url.set(drivername=DRIVERS[backend])
