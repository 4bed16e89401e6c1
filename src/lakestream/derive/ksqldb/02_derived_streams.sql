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
  -- the /24 of an IPv4 address; NULL for anything else (an IPv6 address is not truncated here:
  -- it would identify the user, so it is left out)
  REGEXP_EXTRACT('^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$', ip_address, 1) + '.0/24'
    AS ip_address
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
  CONCAT_WS('; ',
    CASE WHEN bu.entry IS NOT NULL THEN 'blacklisted user ' + f.user_id END,
    CASE WHEN bc.entry IS NOT NULL THEN 'blacklisted country ' + f.user_country END,
    CASE WHEN b1.entry IS NOT NULL OR b2.entry IS NOT NULL OR b3.entry IS NOT NULL
              OR b4.entry IS NOT NULL THEN 'blacklisted IP range ' + f.ip_address END,
    CASE WHEN bk.entry IS NOT NULL THEN 'blacklisted card ending ' + f.card_last4 END
  ) AS blacklist_reason
FROM transaction_flattened f
-- one lookup per kind of entry (reference_views.py keys them: U00013, country:KP,
-- ip:10.66., card:0000); an IP prefix is whole octets, matched on the address's first
-- one, two or three octets, or the whole address
LEFT JOIN blacklist bu ON f.user_id = bu.entry
LEFT JOIN blacklist bc ON 'country:' + f.user_country = bc.entry
LEFT JOIN blacklist b1 ON 'ip:' + REGEXP_EXTRACT('^(\d{1,3}\.)', f.ip_address, 1) = b1.entry
LEFT JOIN blacklist b2 ON 'ip:' + REGEXP_EXTRACT('^(\d{1,3}\.\d{1,3}\.)', f.ip_address, 1)
  = b2.entry
LEFT JOIN blacklist b3
  ON 'ip:' + REGEXP_EXTRACT('^(\d{1,3}\.\d{1,3}\.\d{1,3}\.)', f.ip_address, 1) = b3.entry
LEFT JOIN blacklist b4 ON 'ip:' + f.ip_address = b4.entry
LEFT JOIN blacklist bk ON 'card:' + f.card_last4 = bk.entry
WHERE bu.entry IS NOT NULL OR bc.entry IS NOT NULL OR b1.entry IS NOT NULL
   OR b2.entry IS NOT NULL OR b3.entry IS NOT NULL OR b4.entry IS NOT NULL
   OR bk.entry IS NOT NULL
EMIT CHANGES;
-- Every kind in one statement gives one record per event, its reasons joined by '; ' (the
-- lake's ingest keeps one record per source event). A ksqlDB server that refuses to join one
-- table several times needs one INSERT INTO transaction_stream_blacklisted per kind instead;
-- an event matching several kinds then gives one record per kind (docs/ksqldb.md).
