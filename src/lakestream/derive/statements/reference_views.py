"""The reference data as the tables the shipped statements declare over topics.

``exchange_rates (currency PRIMARY KEY, to_usd, usd_to_eur)``: one row per
currency, each carrying the one USD→EUR rate. ``blacklist (entry PRIMARY KEY,
kind, value)``: one row per entry, keyed so a stream joins it on one
expression per kind — a user id as itself (``JOIN blacklist b ON f.user_id =
b.entry``), the other kinds prefixed: ``country:KP``, ``ip:10.66.``,
``card:0000`` (``ON 'country:' + f.user_country = b.entry``).
"""

from __future__ import annotations

import pyarrow as pa

from lakestream.derive.reference import BLACKLIST_KINDS, Blacklist, Rates

BLACKLIST_PREFIXES = {"user_ids": "", "countries": "country:", "ip_prefixes": "ip:",
                      "card_last4": "card:"}


def exchange_rates_table(rates: Rates) -> pa.Table:
    """The ``exchange_rates`` view of the rates in force."""
    currencies = list(rates.to_usd)
    return pa.table({"currency": pa.array(currencies, pa.string()),
                     "to_usd": pa.array([rates.to_usd[c] for c in currencies], pa.float64()),
                     "usd_to_eur": pa.array([rates.usd_to_eur] * len(currencies), pa.float64())})


def blacklist_table(blacklist: Blacklist) -> pa.Table:
    """The ``blacklist`` view of the blacklist in force (one row per entry)."""
    rows = {(BLACKLIST_PREFIXES[kind] + value, kind, value)
            for kind in BLACKLIST_KINDS for value in getattr(blacklist, kind)}
    entries, kinds, values = zip(*sorted(rows), strict=True) if rows else ((), (), ())
    return pa.table({"entry": pa.array(entries, pa.string()),
                     "kind": pa.array(kinds, pa.string()),
                     "value": pa.array(values, pa.string())})


REFERENCE_TABLES = ("exchange_rates", "blacklist")  # what `lakestream process` provides


def reference_tables(rates: Rates, blacklist: Blacklist) -> dict[str, pa.Table]:
    """The reference tables a program may join, by name, from the reference data in force."""
    return {"exchange_rates": exchange_rates_table(rates), "blacklist": blacklist_table(blacklist)}
