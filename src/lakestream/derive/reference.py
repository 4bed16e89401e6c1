"""Reference data of the derivations: exchange rates and the blacklist.

Defaults ship with Lakestream (``derive/defaults/*.json``); ``lakestream
reference`` writes changes to ``<data_dir>/reference/``, which then wins. The
processor re-reads the files when they change, so an update takes effect on
the next events.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lakestream.errors import ConfigError, UsageError

BLACKLIST_KINDS = ("user_ids", "countries", "ip_prefixes", "card_last4")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# what the shipped blacklist statement can match: 1-3 whole octets ending with '.', or a
# whole address (IPv4, or IPv6 written as the events write it)
_IP_PREFIX = re.compile(r"^(\d{1,3}\.){1,3}$"  # 10. 10.66. 198.51.100.
                        r"|^(\d{1,3}\.){3}\d{1,3}$"  # 198.51.100.7
                        r"|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$")  # 2001:db8::1


def ip_prefix_problem(value: str) -> str | None:
    """Why an ``ip_prefixes`` entry can never match an event's address (``None``: it can)."""
    if _IP_PREFIX.match(value):
        return None
    return (f"the IP prefix '{value}' is not whole octets: the blacklist matches an address's "
            "first one, two or three octets ('10.', '10.66.', '198.51.100.') or the whole "
            "address")


@dataclass(frozen=True)
class Rates:
    """Currency → USD rates and the USD → EUR rate, valid as of a date."""

    as_of: str
    to_usd: dict[str, float]
    usd_to_eur: float


@dataclass(frozen=True)
class Blacklist:
    """Users, countries, IP prefixes and card endings whose events are flagged."""

    user_ids: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    ip_prefixes: list[str] = field(default_factory=list)
    card_last4: list[str] = field(default_factory=list)


class ReferenceStore:
    """Reads and updates the reference data of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "reference"

    def _load(self, name: str) -> dict[str, Any]:
        path = self.folder / name
        try:
            text = (path.read_text() if path.exists() else
                    resources.files("lakestream.derive").joinpath("defaults", name).read_text())
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable reference data ({exc})",
                              "fix or delete the file to return to the defaults") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: must hold a JSON object")
        return data

    def version(self) -> tuple[float, float]:
        """Modification times of the override files (0 when absent): changes mean reload."""
        return tuple(  # type: ignore[return-value]
            (self.folder / n).stat().st_mtime if (self.folder / n).exists() else 0.0
            for n in ("rates.json", "blacklist.json"))

    def rates(self) -> Rates:
        """The exchange rates in force."""
        data = self._load("rates.json")
        try:
            return Rates(str(data["as_of"]), {k: float(v) for k, v in data["to_usd"].items()},
                         float(data["usd_to_eur"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"rates.json: invalid ({exc})") from None

    def blacklist(self) -> Blacklist:
        """The blacklist in force."""
        data = self._load("blacklist.json")
        return Blacklist(**{k: [str(v) for v in data.get(k, [])] for k in BLACKLIST_KINDS})

    def set_rate(self, currency: str, to_usd: float | None = None, usd_to_eur: float | None = None,
                 as_of: str | None = None) -> Rates:
        """Change one currency's USD rate and/or the USD→EUR rate."""
        current = self.rates()
        rates = dict(current.to_usd)
        if to_usd is not None:
            if not _CURRENCY.match(currency):
                raise UsageError(f"'{currency}' is not an ISO currency code (three capitals)")
            if to_usd <= 0:
                raise UsageError("a rate must be positive")
            rates[currency] = to_usd
        eur = current.usd_to_eur if usd_to_eur is None else usd_to_eur
        if eur <= 0:
            raise UsageError("a rate must be positive")
        day = as_of or dt.date.today().isoformat()
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise UsageError(f"--as-of '{day}' is not a date (YYYY-MM-DD)") from None
        new = Rates(day, rates, eur)
        self._save("rates.json", asdict(new))
        return new

    def change_blacklist(self, kind: str, value: str, add: bool) -> Blacklist:
        """Add or remove one blacklist entry."""
        if kind not in BLACKLIST_KINDS:
            raise UsageError(f"unknown blacklist kind '{kind}'", f"use one of {BLACKLIST_KINDS}")
        if add and kind == "ip_prefixes" and (problem := ip_prefix_problem(value)):
            raise UsageError(problem, "end the prefix after an octet, e.g. 10.66.")
        data = asdict(self.blacklist())
        values: list[str] = data[kind]
        if add and value not in values:
            values.append(value)
        elif not add:
            if value not in values:
                raise UsageError(f"'{value}' is not in the blacklist's {kind}")
            values.remove(value)
        self._save("blacklist.json", data)
        return Blacklist(**data)

    def _save(self, name: str, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.folder / name)
