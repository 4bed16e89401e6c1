"""The derivations, declared as DuckDB SQL over one decoded batch.

Inputs registered on the connection for each batch:

- ``events``: the decoded ``transactions`` batch (nested structs) plus
  ``_source_partition`` and ``_source_offset``;
- ``rates(currency, to_usd)``, ``eur(usd_to_eur)``, ``blacklist(kind, value)``;
- ``pseudonyms(user_id, pseudonym)``: HMAC-SHA256 of every user id of the batch.

Money is exact: each event's USD amount is rounded to micro-dollars
(``amount_usd_micro``), and aggregates are integer sums of those, so they do
not depend on the order or grouping in which events are added up.
"""

from __future__ import annotations

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%gZ"

# Events that pass decoding but are not valid transactions (one reason per broken rule).
INVALID = """
SELECT _source_offset,
       concat_ws('; ',
         CASE WHEN amount IS NULL OR amount <= 0 THEN 'amount must be > 0' END,
         CASE WHEN currency NOT IN (SELECT currency FROM rates)
              THEN 'unknown currency ' || coalesce(currency, 'NULL') END,
         CASE WHEN transaction_type NOT IN ('purchase', 'refund', 'transfer', 'subscription')
              THEN 'unknown transaction_type ' || transaction_type END,
         CASE WHEN status NOT IN ('completed', 'pending', 'failed')
              THEN 'unknown status ' || status END,
         CASE WHEN quantity IS NULL OR quantity < 1 THEN 'quantity must be >= 1' END
       ) AS reason
FROM events
WHERE amount IS NULL OR amount <= 0 OR currency NOT IN (SELECT currency FROM rates)
   OR transaction_type NOT IN ('purchase', 'refund', 'transfer', 'subscription')
   OR status NOT IN ('completed', 'pending', 'failed') OR quantity IS NULL OR quantity < 1
"""

FLATTENED = """
SELECT e.transaction_id, e.event_time, e.transaction_type, e.status, e.amount, e.currency,
       CAST(round(e.amount * r.to_usd * 1e6) AS BIGINT) AS amount_usd_micro,
       CAST(round(e.amount * r.to_usd * 1e6) AS BIGINT) / 1e6 AS amount_usd,
       e.quantity,
       e."user".user_id AS user_id, e."user".name AS user_name, e."user".email AS user_email,
       e."user".country AS user_country, e."user".city AS user_city,
       e.payment_method.payment_method_id AS payment_method_id,
       e.payment_method.name AS payment_method_name,
       e.payment_method.category AS payment_method_category,
       e.payment_method.is_active AS payment_method_is_active,
       e.product.product_id AS product_id, e.product.name AS product_name,
       e.product.category AS product_category, e.product.unit_price AS product_unit_price,
       e.device.ip_address AS ip_address, e.card_last4,
       e._source_partition, e._source_offset
FROM events e JOIN rates r ON r.currency = e.currency
WHERE e._source_offset NOT IN (SELECT _source_offset FROM invalid)
"""

# Columns of each derived stream as published, in order (docs/ksqldb.md).
FLATTENED_COLUMNS = (
    "transaction_id", "event_time", "transaction_type", "status", "amount", "currency",
    "amount_usd", "quantity", "user_id", "user_name", "user_email", "user_country", "user_city",
    "payment_method_id", "payment_method_name", "payment_method_category",
    "payment_method_is_active", "product_id", "product_name", "product_category",
    "product_unit_price", "ip_address", "card_last4",
)  # fmt: skip
ANONYMIZED_COLUMNS = tuple(
    c for c in FLATTENED_COLUMNS if c not in ("user_name", "user_email", "card_last4")
)
BLACKLISTED_COLUMNS = (*FLATTENED_COLUMNS, "blacklist_reason")
SOURCE_COLUMNS = ("_source_partition", "_source_offset")

ANONYMIZED = """
SELECT f.* EXCLUDE (user_id, user_name, user_email, ip_address, card_last4),
       p.pseudonym AS user_id,
       CASE WHEN regexp_matches(f.ip_address, '^\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}$')
            THEN regexp_extract(f.ip_address, '^(\\d+\\.\\d+\\.\\d+)\\.', 1) || '.0/24' END
         AS ip_address
FROM flattened f LEFT JOIN pseudonyms p ON p.user_id = f.user_id
"""

BLACKLISTED = """
SELECT * FROM (
  SELECT f.*, concat_ws('; ',
    CASE WHEN f.user_id IN (SELECT value FROM blacklist WHERE kind = 'user_ids')
         THEN 'blacklisted user ' || f.user_id END,
    CASE WHEN f.user_country IN (SELECT value FROM blacklist WHERE kind = 'countries')
         THEN 'blacklisted country ' || f.user_country END,
    CASE WHEN EXISTS (SELECT 1 FROM blacklist b WHERE b.kind = 'ip_prefixes'
                      AND starts_with(f.ip_address, b.value))
         THEN 'blacklisted IP range ' || f.ip_address END,
    CASE WHEN f.card_last4 IN (SELECT value FROM blacklist WHERE kind = 'card_last4')
         THEN 'blacklisted card ending ' || f.card_last4 END) AS blacklist_reason
  FROM flattened f)
WHERE blacklist_reason <> ''
"""

# Deltas of the aggregate state contributed by one batch (completed events only).
USER_DELTAS = """
SELECT _source_partition AS part, user_id, transaction_type,
       CAST(sum(amount_usd_micro) AS BIGINT) AS total_micro, count(*) AS n,
       CAST(sum(round(amount_usd_micro * (SELECT usd_to_eur FROM eur))) AS BIGINT)
         AS total_eur_micro
FROM flattened WHERE status = 'completed' GROUP BY ALL
"""

# A batch holds one partition's events. Within it, a key's latest event (by event time,
# then offset) gives its non-key attributes, with the event's time and offset so the
# state can compare them with the attributes it holds (LATEST_BY_OFFSET, see state.py).
LATEST = ("row_number() OVER (PARTITION BY _source_partition, {key} "
          "ORDER BY event_time DESC, _source_offset DESC) = 1 AS latest")

PAYMENT_DELTAS = f"""
SELECT _source_partition AS part, payment_method_id,
       max(payment_method_name) FILTER (WHERE latest) AS name,
       max(epoch_us(event_time)) FILTER (WHERE latest) AS attr_time_us,
       max(_source_offset) FILTER (WHERE latest) AS attr_offset,
       CAST(sum(amount_usd_micro) AS BIGINT) AS total_micro, count(*) AS n
FROM (SELECT *, {LATEST.format(key="payment_method_id")}
      FROM flattened WHERE status = 'completed')
GROUP BY part, payment_method_id
"""

PRODUCT_DELTAS = f"""
SELECT _source_partition AS part, product_id,
       max(product_name) FILTER (WHERE latest) AS name,
       max(product_category) FILTER (WHERE latest) AS category,
       max(epoch_us(event_time)) FILTER (WHERE latest) AS attr_time_us,
       max(_source_offset) FILTER (WHERE latest) AS attr_offset,
       count(*) AS n, CAST(sum(amount_usd_micro) AS BIGINT) AS revenue_micro,
       CAST(sum(round(product_unit_price * 1e6)) AS BIGINT) AS price_micro,
       count(product_unit_price) AS price_n
FROM (SELECT *, {LATEST.format(key="product_id")}
      FROM flattened WHERE status = 'completed' AND transaction_type = 'purchase')
GROUP BY part, product_id
"""

PRODUCT_BUYERS = """
SELECT DISTINCT _source_partition AS part, product_id, user_id
FROM flattened WHERE status = 'completed' AND transaction_type = 'purchase'
"""

# Table name -> (key columns, value columns) of the published aggregates (docs/ksqldb.md).
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "user_transaction_summary": (
        ("user_id", "transaction_type"), ("total_amount", "transaction_count", "avg_amount")),
    "user_transaction_summary_eur": (
        ("user_id", "transaction_type"),
        ("total_amount_eur", "transaction_count", "avg_amount_eur", "exchange_rate")),
    "payment_method_totals": (
        ("payment_method_id",),
        ("payment_method_name", "total_amount", "transaction_count", "avg_amount")),
    "product_purchase_counts": (
        ("product_id",),
        ("product_name", "product_category", "purchase_count", "total_revenue", "avg_price",
         "unique_buyers")),
}  # fmt: skip
