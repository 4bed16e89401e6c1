"""``HMAC_SHA256(value, '${LAKESTREAM_ANON_KEY}')``: Lakestream's one extension to ksqlDB.

The anonymized stream's pseudonyms are the hex HMAC-SHA256 of the value, keyed
by ``LAKESTREAM_ANON_KEY`` — the function ``lakestream process`` has always
applied (``derive/processor.py``), so pseudonyms stay stable across the switch
to compiled statements. The key never appears in a statement or in SQL: before
running an output whose plan has ``pseudonym_inputs_sql``, the executor calls
:func:`register_pseudonyms`, which computes the pseudonyms of the batch's
values in Python and registers them as the table the compiled SQL looks up.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pyarrow as pa

from lakestream.errors import ConfigError

PSEUDONYMS_TABLE = "lakestream_pseudonyms"  # (value VARCHAR, pseudonym VARCHAR)


def pseudonym(key: bytes, value: str) -> str:
    """The hex HMAC-SHA256 of ``value`` under ``key``."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def pseudonym_sql(value_sql: str) -> str:
    """SQL looking up the pseudonym of ``value_sql`` (NULL for NULL)."""
    return (f"(SELECT p.pseudonym FROM {PSEUDONYMS_TABLE} AS p "
            f"WHERE p.value = ({value_sql}))")


def inputs_sql(arguments: list[str], from_sql: str) -> str | None:
    """A SELECT of the distinct values the ``arguments`` take over a batch, or ``None``."""
    if not arguments:
        return None
    selects = " UNION ".join(f"SELECT CAST({a} AS VARCHAR) AS value {from_sql}"
                             for a in arguments)
    return f"SELECT DISTINCT value FROM ({selects}) WHERE value IS NOT NULL"


def register_pseudonyms(con: Any, sql: str | None, anon_key: bytes | None,
                        cache: dict[str, str] | None = None) -> None:
    """Register :data:`PSEUDONYMS_TABLE` on ``con`` for the values ``sql`` selects.

    Args:
        con: A ``duckdb.DuckDBPyConnection`` with the batch's views registered.
        sql: An output's ``pseudonym_inputs_sql`` (``None``: nothing to do).
        anon_key: ``LAKESTREAM_ANON_KEY``; refused when missing.
        cache: Pseudonyms computed before, reused and extended (bounded by the caller).
    """
    if sql is None:
        return
    if not anon_key:
        raise ConfigError("LAKESTREAM_ANON_KEY is not set: HMAC_SHA256 needs a secret key",
                          "export LAKESTREAM_ANON_KEY=$(openssl rand -hex 32), or put it in .env")
    known = {} if cache is None else cache
    values = [row[0] for row in con.execute(sql).fetchall()]
    pseudonyms = [known.get(v) or known.setdefault(v, pseudonym(anon_key, v)) for v in values]
    con.register(PSEUDONYMS_TABLE, pa.table({"value": pa.array(values, pa.string()),
                                             "pseudonym": pa.array(pseudonyms, pa.string())}))
