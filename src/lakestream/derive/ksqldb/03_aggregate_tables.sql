-- The aggregate tables of SPEC §3.3 (completed events only, amounts in USD / EUR).
--
-- LATEST_BY_OFFSET(name/category): `lakestream process` takes the attributes of the key's
-- latest counted event by event_time, then input offset, then partition, all from that one
-- event (nulls included). ksqlDB takes the last non-null value it reads, in arrival order:
-- with late or out-of-order events the two can differ (docs/ksqldb.md).

CREATE TABLE user_transaction_summary WITH (
  KAFKA_TOPIC = 'user_transaction_summary', KEY_FORMAT = 'JSON', VALUE_FORMAT = 'JSON'
) AS SELECT
  user_id,
  transaction_type,
  SUM(amount_usd) AS total_amount,
  COUNT(*) AS transaction_count,
  AVG(amount_usd) AS avg_amount
FROM transaction_flattened
WHERE status = 'completed'
GROUP BY user_id, transaction_type
EMIT CHANGES;

CREATE TABLE user_transaction_summary_eur WITH (
  KAFKA_TOPIC = 'user_transaction_summary_eur', KEY_FORMAT = 'JSON', VALUE_FORMAT = 'JSON'
) AS SELECT
  f.user_id AS user_id,
  f.transaction_type AS transaction_type,
  SUM(f.amount_usd * r.usd_to_eur) AS total_amount_eur,
  COUNT(*) AS transaction_count,
  AVG(f.amount_usd * r.usd_to_eur) AS avg_amount_eur,
  LATEST_BY_OFFSET(r.usd_to_eur) AS exchange_rate
FROM transaction_flattened f
JOIN exchange_rates r ON 'EUR' = r.currency
WHERE f.status = 'completed'
GROUP BY f.user_id, f.transaction_type
EMIT CHANGES;

CREATE TABLE payment_method_totals WITH (
  KAFKA_TOPIC = 'payment_method_totals', VALUE_FORMAT = 'JSON'
) AS SELECT
  payment_method_id,
  LATEST_BY_OFFSET(payment_method_name) AS payment_method_name,
  SUM(amount_usd) AS total_amount,
  COUNT(*) AS transaction_count,
  AVG(amount_usd) AS avg_amount
FROM transaction_flattened
WHERE status = 'completed'
GROUP BY payment_method_id
EMIT CHANGES;

CREATE TABLE product_purchase_counts WITH (
  KAFKA_TOPIC = 'product_purchase_counts', VALUE_FORMAT = 'JSON'
) AS SELECT
  product_id,
  LATEST_BY_OFFSET(product_name) AS product_name,
  LATEST_BY_OFFSET(product_category) AS product_category,
  COUNT(*) AS purchase_count,
  SUM(amount_usd) AS total_revenue,
  AVG(product_unit_price) AS avg_price,
  COUNT_DISTINCT(user_id) AS unique_buyers
FROM transaction_flattened
WHERE status = 'completed' AND transaction_type = 'purchase'
GROUP BY product_id
EMIT CHANGES;
