"""What an input topic's events must be before any statement sees them.

ksqlDB statements have no notion of a bad event: a filter drops it silently, a join
that finds no match drops it too. Lakestream's rule is that bad input goes to the
dead letters with its reason and is never lost (SPEC §8), so validation is not a
statement: it is the contract of the input topic, checked by the executor first.

``transactions`` has the contract of SPEC §3.1, the one ``lakestream process`` has
always applied, with the same reasons: decoding against the lake's schema of the
topic (a JSON error, a wrong type, an ``event_time`` that is not ISO-8601, a
missing required field), then the value rules below. A topic without a contract
is decoded against the columns its ``CREATE STREAM`` declares.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from lakestream.decode.schemas import TRANSACTION_REQUIRED, arrow_schema

DECODED = "_decoded"  # the view the rules read: the decoded batch, with ``_row``


@dataclass(frozen=True)
class TopicContract:
    """The checks of one input topic's events.

    Attributes:
        topic: The topic.
        schema: The types events are decoded with (the lake's schema of the topic); the
            event-time column is a timestamp, read as ISO-8601.
        required: Dotted paths that must be present and non-null.
        rules_sql: A DuckDB SELECT of ``(_row, reason)`` for the decoded events
            (:data:`DECODED`) that break a value rule; it may read ``exchange_rates``.
    """

    topic: str
    schema: pa.Schema
    required: tuple[str, ...]
    rules_sql: str


# One reason per broken rule, joined by "; " (the reasons of the processor before the
# statements executor, unchanged).
_TRANSACTION_RULES = f"""
SELECT _row, concat_ws('; ',
  CASE WHEN amount IS NULL OR amount <= 0 THEN 'amount must be > 0' END,
  CASE WHEN currency NOT IN (SELECT currency FROM exchange_rates)
       THEN 'unknown currency ' || coalesce(currency, 'NULL') END,
  CASE WHEN transaction_type NOT IN ('purchase', 'refund', 'transfer', 'subscription')
       THEN 'unknown transaction_type ' || transaction_type END,
  CASE WHEN status NOT IN ('completed', 'pending', 'failed') THEN 'unknown status ' || status END,
  CASE WHEN quantity IS NULL OR quantity < 1 THEN 'quantity must be >= 1' END
) AS reason
FROM {DECODED}
WHERE amount IS NULL OR amount <= 0 OR currency NOT IN (SELECT currency FROM exchange_rates)
   OR transaction_type NOT IN ('purchase', 'refund', 'transfer', 'subscription')
   OR status NOT IN ('completed', 'pending', 'failed') OR quantity IS NULL OR quantity < 1
"""

TRANSACTIONS = TopicContract("transactions", arrow_schema("transactions", "event_time"),
                             TRANSACTION_REQUIRED, _TRANSACTION_RULES)

CONTRACTS = {contract.topic: contract for contract in (TRANSACTIONS,)}
